"""The two load clients: direct to the fake claude.ai, and through the daemon.

Both are raw aiohttp (an SDK's own overhead would dominate what we measure), read the body with
``iter_any()`` and timestamp every read with ``time.perf_counter_ns()``; each SSE event gets the
time of the read it arrived in. Both do the same work per event (split frames, ``json.loads``
the data line), so their difference is what the daemon adds.

The direct client performs the daemon's own upstream calls: POST the completion with the body the
daemon would build (``Generation2026.completion_body``, 2026 protocol, conversation created on the fly) and the
daemon's headers, parse the stream, then DELETE the conversation in the background as the
daemon's janitor does.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from claude2api.core.catalog import ModelCatalog
from claude2api.core.tools import tool_wire
from claude2api.core.types import Message, TextPart, ToolDefinition, UpstreamTurn
from claude2api.pipeline.transcript import build_prompt
from claude2api.upstream import browser
from claude2api.upstream.protocol import TurnOptions, generation

from .fake_server import delta_texts, tool_fragments

_now = time.perf_counter_ns
_CATALOG = ModelCatalog()
MODEL = _CATALOG.default
UPSTREAM_MODEL = _CATALOG.resolve(MODEL).upstream


#: The client tools of the tool-call scenario: ``bench_0``, ``bench_1``, ... with one string argument.
_TOOL_SCHEMA = {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}


def tool_names(calls: int) -> list[str]:
    return [f"bench_{i}" for i in range(calls)]


def directive(deltas: int, pace_ms: float = 0.0, **extra: object) -> str:
    """The user message that scripts the fake (see ``fake_server``)."""
    items = [f"deltas={deltas}", f"pace_ms={pace_ms:g}"] + [f"{k}={v}" for k, v in extra.items()]
    return "bench:" + ";".join(items)


@dataclass(slots=True)
class StreamResult:
    """One stream as the client saw it; times are ``perf_counter_ns`` values."""

    t_start: int
    t_headers: int = 0
    t_first: int = 0  # first content event (a text delta)
    t_end: int = 0  # end of reply: message_stop (direct) or [DONE] (proxied)
    t_error: int = 0
    error: str | None = None
    times: list[int] = field(default_factory=list)  # arrival of each content event
    reads: int = 0  # body reads that carried at least one content event
    text: list[str] = field(default_factory=list)
    #: Tool turns: each call's name and argument fragments, in call order, and the finish reason.
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    finish: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.t_end > 0

    @property
    def events(self) -> int:
        return len(self.times)

    def ttft_ms(self) -> float:
        return (self.t_first - self.t_start) / 1e6

    def total_ms(self) -> float:
        return (self.t_end - self.t_start) / 1e6

    def gaps_ms(self) -> list[float]:
        t = self.times
        return [(t[i] - t[i - 1]) / 1e6 for i in range(1, len(t))]

    def text_matches(self, deltas: int) -> bool:
        return "".join(self.text) == "".join(delta_texts(deltas))

    def calls_match(self, calls: int, deltas: int) -> bool:
        """Every scripted call, with its name and exactly its arguments, and nothing else."""
        wanted = "".join(tool_fragments(deltas))
        return [(name, "".join(parts)) for name, parts in self.calls] == [(n, wanted) for n in tool_names(calls)]


def new_session(sock_read: float | None = 120.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=sock_read),
    )


class _Reader:
    """Splits SSE bytes into frames (both servers send LF-terminated, one ``data:`` line each)."""

    __slots__ = ("tail",)

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        frames = (self.tail + chunk).split(b"\n\n") if self.tail else chunk.split(b"\n\n")
        self.tail = frames.pop()
        return [frame[frame.index(b"data: ") + 6 :] for frame in frames if b"data: " in frame]


class DirectClient:
    """Client -> fake claude.ai, doing what the daemon does upstream."""

    def __init__(self, http: aiohttp.ClientSession, fake_info: dict) -> None:
        self.http = http
        self.base = fake_info["base_url"]
        self.key = fake_info["session_key"]
        self.org = fake_info["org_id"]
        self._cleanup: set[asyncio.Task] = set()

    def _headers(self, key: str, referer: str, accept: str = "application/json") -> dict[str, str]:
        """The headers the daemon's aiohttp transport sends (browser.api_headers plus the cookie)."""
        headers = browser.api_headers(
            browser.profile(browser.DEFAULT_PROFILE), self.base, referer=referer, accept=accept, impersonating=False
        )
        headers["cookie"] = f"sessionKey={key}"
        return headers

    def _url(self, conv: str, tail: str = "") -> str:
        return f"{self.base}/api/organizations/{self.org}/chat_conversations/{conv}{tail}"

    async def stream(
        self,
        content: str,
        *,
        disconnect_after: int | None = None,
        stop_on_disconnect: bool = True,
        on_first: Callable[[], None] | None = None,
    ) -> StreamResult:
        """One completion. ``disconnect_after=n``: drop the connection after n content events,
        then send ``stop_response`` (the best a direct client can do to stop the generation).
        ``on_first`` is called when the first content event arrives."""
        conv = str(uuid.uuid4())
        prompt, _ = build_prompt([Message("user", [TextPart(content)])])
        body = generation("2026").completion_body(UpstreamTurn(prompt=prompt), TurnOptions(model=UPSTREAM_MODEL))
        headers = self._headers(self.key, f"/chat/{conv}", accept="text/event-stream")
        result = StreamResult(t_start=_now())
        dropped = False
        try:
            async with self.http.post(self._url(conv, "/completion"), json=body, headers=headers) as resp:
                result.t_headers = _now()
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}"
                    result.t_error = _now()
                    return result
                reader = _Reader()
                async for chunk in resp.content.iter_any():
                    t = _now()
                    before = len(result.times)
                    for data in reader.feed(chunk):
                        frame = json.loads(data)
                        kind = frame.get("type")
                        if kind == "content_block_delta":
                            delta = frame["delta"]
                            if delta.get("type") == "text_delta":
                                result.times.append(t)
                                result.text.append(delta["text"])
                        elif kind == "message_stop":
                            result.t_end = t
                        elif kind == "error":
                            result.error, result.t_error = "error frame", t
                    if len(result.times) > before:
                        if not before:
                            result.t_first = result.times[0]
                            if on_first is not None:
                                on_first()
                        result.reads += 1
                    if disconnect_after is not None and len(result.times) >= disconnect_after:
                        resp.close()
                        result.t_error = _now()
                        dropped = True
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.error, result.t_error = type(exc).__name__, _now()
        if dropped and stop_on_disconnect:
            await self._call("POST", conv, "/stop_response")
        self._background(self._call("DELETE", conv, "", {"uuid": conv}))
        return result

    async def tool_stream(self, content: str, calls: int) -> StreamResult:
        """One tool turn as the daemon runs it upstream: the completion carries the client tools; the
        first comment ping after a ``tool_use`` block ends the turn (``t_end``), then ``stop_response``
        and ``DELETE``. ``t_first`` is the first ``tool_use`` block start, ``times`` the fragments."""
        conv = str(uuid.uuid4())
        prompt, _ = build_prompt([Message("user", [TextPart(content)])])
        tools = [tool_wire(ToolDefinition(name, "A bench tool.", _TOOL_SCHEMA)) for name in tool_names(calls)]
        options = TurnOptions(model=UPSTREAM_MODEL, tools=tools)
        body = generation("2026").completion_body(UpstreamTurn(prompt=prompt), options)
        headers = self._headers(self.key, f"/chat/{conv}", accept="text/event-stream")
        result = StreamResult(t_start=_now())
        blocks: dict[int, list[str]] = {}
        paused = False
        try:
            async with self.http.post(self._url(conv, "/completion"), json=body, headers=headers) as resp:
                result.t_headers = _now()
                if resp.status != 200:
                    result.error, result.t_error = f"HTTP {resp.status}", _now()
                    return result
                tail = b""
                async for chunk in resp.content.iter_any():
                    t = _now()
                    frames = (tail + chunk).split(b"\n\n")
                    tail = frames.pop()
                    before = len(result.times)
                    for raw in frames:
                        if raw.startswith(b":"):
                            if paused:
                                result.t_end, result.finish = t, "tool_use"
                            continue
                        frame = json.loads(raw[raw.index(b"data: ") + 6 :])
                        kind = frame.get("type")
                        if kind == "content_block_start" and frame["content_block"].get("type") == "tool_use":
                            result.t_first = result.t_first or t
                            blocks[frame["index"]] = []
                            result.calls.append((frame["content_block"]["name"], blocks[frame["index"]]))
                        elif kind == "content_block_delta" and frame["index"] in blocks:
                            result.times.append(t)
                            blocks[frame["index"]].append(frame["delta"]["partial_json"])
                        elif kind == "content_block_stop" and frame["index"] in blocks:
                            paused = True
                        elif kind == "error":
                            result.error, result.t_error = "error frame", t
                    if len(result.times) > before:
                        result.reads += 1
                    if result.t_end:
                        resp.close()
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.error, result.t_error = type(exc).__name__, _now()
        await self._call("POST", conv, "/stop_response")
        self._background(self._call("DELETE", conv, "", {"uuid": conv}))
        return result

    async def _call(self, method: str, conv: str, tail: str, body: object = None) -> None:
        headers = self._headers(self.key, f"/chat/{conv}")
        try:
            async with self.http.request(method, self._url(conv, tail), json=body, headers=headers) as resp:
                await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            pass

    def _background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def idle(self) -> None:
        while self._cleanup:
            await asyncio.gather(*list(self._cleanup))


class ProxiedClient:
    """Client -> daemon ``/v1/chat/completions`` with ``stream: true``."""

    def __init__(self, http: aiohttp.ClientSession, daemon_url: str, api_key: str) -> None:
        self.http = http
        self.url = daemon_url + "/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def stream(
        self, content: str, *, disconnect_after: int | None = None, on_first: Callable[[], None] | None = None
    ) -> StreamResult:
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": content}]}
        result = StreamResult(t_start=_now())
        try:
            async with self.http.post(self.url, json=body, headers=self.headers) as resp:
                result.t_headers = _now()
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    result.t_error = _now()
                    return result
                reader = _Reader()
                async for chunk in resp.content.iter_any():
                    t = _now()
                    before = len(result.times)
                    for data in reader.feed(chunk):
                        if data == b"[DONE]":
                            result.t_end = t
                            continue
                        frame = json.loads(data)
                        choices = frame.get("choices")
                        if choices:
                            text = choices[0]["delta"].get("content")
                            if text:
                                result.times.append(t)
                                result.text.append(text)
                        elif "error" in frame:
                            result.error, result.t_error = frame["error"].get("message", "error"), t
                    if len(result.times) > before:
                        if not before:
                            result.t_first = result.times[0]
                            if on_first is not None:
                                on_first()
                        result.reads += 1
                    if disconnect_after is not None and len(result.times) >= disconnect_after:
                        resp.close()
                        result.t_error = _now()
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.error, result.t_error = type(exc).__name__, _now()
        return result

    async def tool_stream(self, content: str, calls: int) -> StreamResult:
        """One streamed OpenAI chat turn with ``tools``: ``t_first`` is the first ``delta.tool_calls``,
        ``times`` the argument fragments, ``t_end`` the ``[DONE]``."""
        tools = [
            {"type": "function", "function": {"name": name, "description": "A bench tool.", "parameters": _TOOL_SCHEMA}}
            for name in tool_names(calls)
        ]
        body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": content}], "tools": tools}
        result = StreamResult(t_start=_now())
        try:
            async with self.http.post(self.url, json=body, headers=self.headers) as resp:
                result.t_headers = _now()
                if resp.status != 200:
                    result.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                    result.t_error = _now()
                    return result
                reader = _Reader()
                async for chunk in resp.content.iter_any():
                    t = _now()
                    before = len(result.times)
                    for data in reader.feed(chunk):
                        if data == b"[DONE]":
                            result.t_end = t
                            continue
                        frame = json.loads(data)
                        choices = frame.get("choices")
                        if not choices:
                            if "error" in frame:
                                result.error, result.t_error = frame["error"].get("message", "error"), t
                            continue
                        result.finish = choices[0].get("finish_reason") or result.finish
                        for call in choices[0]["delta"].get("tool_calls") or ():
                            result.t_first = result.t_first or t
                            if call["index"] == len(result.calls):
                                result.calls.append((call["function"]["name"], []))
                            arguments = call["function"].get("arguments")
                            if arguments:
                                result.times.append(t)
                                result.calls[call["index"]][1].append(arguments)
                    if len(result.times) > before:
                        result.reads += 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.error, result.t_error = type(exc).__name__, _now()
        return result

    async def idle(self) -> None:
        """Nothing to wait for: the daemon cleans up on its own."""
