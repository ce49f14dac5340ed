"""The fake claude.ai, scripted per request for the benchmark.

Wraps :class:`claude2api.testing.FakeClaude` without changing it. A completion is scripted by a
directive in its prompt, e.g. ``bench:deltas=50000;pace_ms=0;tag=r17``, which the client writes in
its user message. The daemon passes the message through to the prompt unchanged, so a direct run
and a proxied run script the fake identically. Keys:

``deltas``      number of ``text_delta`` frames (default 20), texts ``"t0 "``, ``"t1 "``, ...
``pace_ms``     pause before each delta (0 = burst: written back to back)
``stall_after`` after this many deltas, pause ``stall_s`` seconds once (an upstream stall)
``stall_s``     length of that pause
``tag``         a name to look the conversation up by on the control port
``calls``       tool turns only: ``tool_use`` blocks per turn (default 1)

A completion whose body carries client tools (``tools`` entries without a ``type``) is a tool turn
(docs/protocol.md §6.2): ``message_start``, then ``calls`` ``tool_use`` blocks naming the declared
tools in turn, each with ``deltas`` ``input_json_delta`` fragments (:func:`tool_fragments`, paced
like text deltas), then one comment ping at once, as claude.ai does when it starts waiting for the
results; the response then stays open (a ping a second) until ``stop_response``, the client's
disconnect or :data:`TOOL_HOLD_S`.

Hooks used, all from outside the fake: ``reply_factory`` (parses the directive), ``calls``
(replaced by a recorder that timestamps ``stop_response`` and ``DELETE`` and keeps no bodies) and
the module's ``_pause`` (replaced: one pause of a stream can be a stall, and plain pacing uses a
cheaper sleep). Timestamps are
``time.perf_counter_ns()``, i.e. CLOCK_MONOTONIC on Linux, comparable with the client's.

A second small HTTP app on another port (the control port) answers ``GET /trace/{tag}`` with what
the fake saw of that conversation, and ``GET /stats`` with call counts.

Run: ``python bench/fake_server.py [--port 0]``; prints one JSON line (base_url, control_url,
session_key, org_id), serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import re
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from claude2api.testing import fake_claude
from claude2api.testing.fake_claude import Call, FakeClaude, Reply

_DIRECTIVE = re.compile(r"bench:(\S+)")
_CONV_PATH = re.compile(r"/chat_conversations/([0-9a-f-]{36})(/[a-z_]+)?$")
_MAX_TRACES = 20_000


@dataclass
class Script:
    """One completion's script, parsed from the prompt directive."""

    deltas: int = 20
    pace_ms: float = 0.0
    stall_after: int | None = None
    stall_s: float = 0.0
    tag: str | None = None
    calls: int = 1

    @classmethod
    def parse(cls, prompt: str) -> Script:
        script = cls()
        match = _DIRECTIVE.search(prompt)
        if not match:
            return script
        for item in match.group(1).split(";"):
            key, _, value = item.partition("=")
            if key == "deltas":
                script.deltas = int(value)
            elif key == "pace_ms":
                script.pace_ms = float(value)
            elif key == "stall_after":
                script.stall_after = int(value)
            elif key == "stall_s":
                script.stall_s = float(value)
            elif key == "tag":
                script.tag = value
            elif key == "calls":
                script.calls = int(value)
        return script


def delta_texts(n: int) -> list[str]:
    """The text deltas of a scripted reply; the client checks the relayed text against them."""
    return [f"t{i} " for i in range(n)]


def tool_fragments(n: int) -> list[str]:
    """The ``partial_json`` fragments of one scripted tool call: together ``{"k":"t0 t1 … "}``."""
    pieces = [f"t{i} " for i in range(n)]
    pieces[0] = '{"k":"' + pieces[0]
    pieces[-1] += '"}'
    return pieces


#: How long a tool turn stays open waiting for results (a bench client stops it long before).
TOOL_HOLD_S = 60.0


@dataclass
class Trace:
    """What the fake saw of one tagged conversation (``perf_counter_ns`` times, or None)."""

    conv: str
    completion_ns: int | None = None
    stall_ns: int | None = None
    stop_ns: int | None = None
    delete_ns: int | None = None


@dataclass
class _Live:
    """The script of the completion being streamed by the current task, and its pause count."""

    script: Script
    trace: Trace | None
    paced: int = 0


_current: contextvars.ContextVar[_Live | None] = contextvars.ContextVar("bench_live", default=None)


class CallRecorder:
    """Stands in for ``FakeClaude.calls``: timestamps what the benchmark needs, keeps no bodies."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_conv: dict[str, Trace] = {}
        self.by_tag: dict[str, Trace] = {}

    def append(self, call: Call) -> None:
        now = time.perf_counter_ns()
        match = _CONV_PATH.search(call.path)
        self.counts[call.method + " " + ((match.group(2) or "/") if match else call.path)] += 1
        if not match:
            return
        trace = self.by_conv.get(match.group(1))
        if trace is None:
            return
        if match.group(2) == "/stop_response":
            trace.stop_ns = trace.stop_ns or now
        elif call.method == "DELETE":
            trace.delete_ns = trace.delete_ns or now

    def start(self, conv: str, tag: str) -> Trace:
        if len(self.by_tag) >= _MAX_TRACES:
            self.by_tag.clear()
            self.by_conv.clear()
        trace = Trace(conv=conv, completion_ns=time.perf_counter_ns())
        self.by_conv[conv] = self.by_tag[tag] = trace
        return trace

    def __iter__(self):  # FakeClaude.calls_to() iterates; nothing is kept
        return iter(())


def install(fake: FakeClaude) -> CallRecorder:
    """Script ``fake`` from prompt directives; returns the recorder that replaced ``fake.calls``."""
    recorder = CallRecorder()
    fake.calls = recorder  # type: ignore[assignment]

    def reply_factory(call: Call) -> Reply:
        prompt = call.json.get("prompt", "") if isinstance(call.json, dict) else ""
        script = Script.parse(prompt)
        trace = None
        if script.tag:
            match = _CONV_PATH.search(call.path)
            trace = recorder.start(match.group(1) if match else "", script.tag)
        # Set on every completion, so nothing leaks to a later request of the same connection task.
        _current.set(_Live(script, trace) if (script.stall_after is not None or trace) else None)
        return Reply(deltas=delta_texts(script.deltas), delay=script.pace_ms / 1000)

    fake.reply_factory = reply_factory
    original_pause = fake_claude._pause

    async def pause(stop: asyncio.Event, delay: float) -> None:
        live = _current.get()
        if live is not None:
            live.paced += 1
            if live.script.stall_after is not None and live.paced == live.script.stall_after + 1:
                if live.trace is not None:
                    live.trace.stall_ns = time.perf_counter_ns()
                await original_pause(stop, live.script.stall_s)  # a stall still ends on stop_response
                return
        if delay > 0 and not stop.is_set():
            # A plain sleep: the original's timeout context costs several times more CPU per paced
            # frame, which on a shared core caps the load the harness can offer. A stop_response
            # is then seen at the next frame, at most one pace later.
            await asyncio.sleep(delay)

    fake_claude._pause = pause  # type: ignore[assignment]
    original_2026 = fake._completion_2026

    async def completion_2026(
        request: web.Request, conv: Any, turn: Any, framing: Any, reply: Reply
    ) -> web.StreamResponse | None:
        body = request[fake_claude._CALL].json
        names = [t["name"] for t in body.get("tools") or () if isinstance(t, dict) and "type" not in t]
        if not names or turn.legacy:
            return await original_2026(request, conv, turn, framing, reply)
        return await _tool_turn(fake, request, conv, turn, framing, Script.parse(body["prompt"]), names)

    fake._completion_2026 = completion_2026  # type: ignore[method-assign]
    return recorder


async def _tool_turn(
    fake: FakeClaude, request: web.Request, conv: Any, turn: Any, framing: Any, script: Script, names: list[str]
) -> web.StreamResponse:
    """Stream ``script.calls`` client tool calls, ping, and hold the response open (docs/protocol.md §6.2)."""
    resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
    await resp.prepare(request)
    wire = fake_claude._Wire(resp, framing)
    stop = fake._live[conv.uuid] = asyncio.Event()
    delay = script.pace_ms / 1000
    now = fake._now_iso()
    open_block = None
    try:
        await wire.send(turn.start)
        for index in range(script.calls):
            call_id = fake_claude._tool_id()
            await wire.send(fake_claude._tool_use_start(index, call_id, names[index % len(names)], now))
            open_block = index
            for piece in tool_fragments(script.deltas):
                await fake_claude._pause(stop, delay)
                if stop.is_set():
                    break
                await wire.send(fake_claude._delta(index, {"type": "input_json_delta", "partial_json": piece}))
            if stop.is_set():
                break
            await wire.send(turn._block_stop(index))
            open_block = None
        deadline = time.monotonic() + TOOL_HOLD_S
        while not stop.is_set() and time.monotonic() < deadline:
            await resp.write(fake_claude._ping_comment(fake.clock, "\n"))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        tail = turn.cancel(open_block) if stop.is_set() else turn._finish("tool_use")
        for frame in tail:
            await wire.send(frame)
        await resp.write_eof()
    except ConnectionResetError:
        pass
    finally:
        if fake._live.get(conv.uuid) is stop:
            del fake._live[conv.uuid]
    return resp


def control_app(recorder: CallRecorder) -> web.Application:
    async def trace(request: web.Request) -> web.Response:
        found = recorder.by_tag.get(request.match_info["tag"])
        if found is None:
            raise web.HTTPNotFound()
        return web.json_response(asdict(found))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(dict(recorder.counts))

    app = web.Application()
    app.router.add_get("/trace/{tag}", trace)
    app.router.add_get("/stats", stats)
    return app


async def serve(host: str, port: int, control_port: int) -> None:
    fake = FakeClaude(protocol="both")
    recorder = install(fake)
    await fake.start(host, port)
    account = fake.add_account()
    control = web.AppRunner(control_app(recorder), access_log=None)
    await control.setup()
    await web.TCPSite(control, host, control_port).start()
    control_url = f"http://{host}:{control.addresses[0][1]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    line: dict[str, Any] = {
        "base_url": fake.base_url,
        "control_url": control_url,
        "session_key": account.session_key,
        "org_id": account.org_id,
    }
    print(json.dumps(line), flush=True)
    try:
        await stop.wait()
    finally:
        await control.cleanup()
        await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.control_port))


if __name__ == "__main__":
    main()
