"""A fake claude.ai web API on a loopback port, for testing clients over real sockets.

It speaks the wire contract of ``claude-web-protocol.md``: the organizations list, conversation
create / settings / delete, uploads, ``stop_response``, ``/usage`` and the completion SSE stream.
Error bodies, pages and stream frames are built from the captured fixtures in ``fixtures/``.

Every request needs the ``sessionKey`` cookie of an added account (else 403
``account_session_invalid``), and an ``{org}`` in the path must be one of that account's orgs
(else 403 ``permission_error``). :attr:`Account.behaviour` makes an account fail the way claude.ai
fails; a test may change it at any time:

``ok``
    Everything works.
``dead`` / ``dead_401`` / ``cloudflare`` / ``cloudflare_302`` / ``unable_to_serve``
    Every call fails: 403 ``account_session_invalid``; 401 ``authentication_error``; 403 Cloudflare
    challenge page with ``cf-mitigated: challenge``; 302 to a challenge URL (which itself answers
    with the challenge page); 403 "We are unable to serve your request".
``org_disabled``
    Creating a conversation (either way) and completions: 400 "This organization has been disabled."
``rate_limited`` / ``rate_limited_no_reset`` / ``rate_limited_header_only``
    Completions: 429. The first has the JSON-in-a-string ``exceeded_limit`` message with
    ``resetsAt`` and the ``anthropic-ratelimit-unified-reset`` header; the second a plain-text
    message and no reset; the third a plain-text message plus the header.
``exceeded_in_stream``
    Completions stream the reply, then ``message_limit`` of type ``exceeded_limit``.
``overloaded``
    Completions: 200, ``message_start``, then the in-stream ``overloaded_error`` frame.
``server_error``
    Completions: 500 with a JSON error body.

A model in :attr:`Account.denied_models` gets 403 ``model_not_allowed`` from completions and from
creates that name it.

:attr:`FakeClaude.faults` (a :class:`Faults`) breaks the transport the way networks and fronts do:
connection resets, stalls, a 1 MB SSE line, HTML error pages, truncated JSON frames, and
claude.ai down for a while (every call answers an HTML 503 page until a given time).

Generations (``protocol``): ``"2025"`` ignores ``create_conversation_params`` and the body's
``thinking_mode`` (thinking is the conversation's ``paprika_mode``) and sends 2025-shaped frames
(no ``trace_id``, no ``windows``); ``"2026"`` creates conversations from
``create_conversation_params`` and takes thinking only from the body's ``thinking_mode``;
``"both"`` accepts either switch and sends 2026-shaped frames. Only ``"extended"`` turns thinking
on, and only on paid plans.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import dataclasses
import itertools
import json
import random
import re
import secrets
import signal
import string
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from aiohttp.typedefs import Handler
from yarl import URL

__all__ = [
    "ACCOUNT_WIDE_BEHAVIOURS",
    "BEHAVIOURS",
    "Account",
    "Call",
    "Conversation",
    "FakeClaude",
    "Faults",
    "Framing",
    "Reply",
    "fixture_bytes",
    "main",
    "make_session_key",
]

BEHAVIOURS = frozenset(
    {
        "ok",
        "dead",
        "dead_401",
        "cloudflare",
        "cloudflare_302",
        "unable_to_serve",
        "org_disabled",
        "rate_limited",
        "rate_limited_no_reset",
        "rate_limited_header_only",
        "exceeded_in_stream",
        "overloaded",
        "server_error",
    }
)
ACCOUNT_WIDE_BEHAVIOURS = frozenset({"dead", "dead_401", "cloudflare", "cloudflare_302", "unable_to_serve"})
PROTOCOLS = frozenset({"2025", "2026", "both"})
PLAN_CAPABILITIES = {"free": ["chat"], "pro": ["chat", "claude_pro"], "max": ["chat", "claude_max"]}

_FIXED_FAILURES = {  # behaviour -> (status, fixture body), for the JSON bodies served verbatim
    "dead": (403, "error-403-account-session-invalid.json"),
    "dead_401": (401, "error-401-authentication-error.json"),
    "unable_to_serve": (403, "error-403-unable-to-serve.json"),
}
_CREATE_FIELDS = frozenset({"uuid", "name", "model", "is_temporary", "include_conversation_preferences"})
_CHALLENGE_PATH = "/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1"
_PLAIN_RATE_LIMIT = "Rate limited. Please try again later."
_THINKING_SUMMARY = "Thinking it over"
_PADS = (15, 4, 15, 6, 2, 1, 15, 6, 11)  # the space runs of the 2025-07-30 capture, in order
_KEY_ALPHABET = string.ascii_letters + string.digits + "_-"
_BASE62 = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- fixtures


@cache
def fixture_bytes(name: str) -> bytes:
    """The captured fixture file *name* from ``claude2api/testing/fixtures``, byte-exact."""
    return (resources.files("claude2api.testing") / "fixtures" / name).read_bytes()


def _fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@cache
def _sse_frames(name: str) -> tuple[dict[str, Any], ...]:
    lines = fixture_bytes(name).decode().splitlines()
    return tuple(json.loads(line.removeprefix("data:")) for line in lines if line.startswith("data:"))


def _frame_template(name: str, type_: str) -> dict[str, Any]:
    """A fresh copy of the first ``data`` object of type *type_* in the fixture stream *name*."""
    return copy.deepcopy(next(f for f in _sse_frames(name) if f.get("type") == type_))


# --------------------------------------------------------------------------- public records


def make_session_key() -> str:
    """A random key in the real ``sessionKey`` format (``sk-ant-sid01-…AA``, reference section 2)."""
    middle = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(86 + secrets.randbelow(35)))
    tail = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(6))
    return f"sk-ant-sid01-{middle}-{tail}AA"


@dataclass
class Account:
    """A claude.ai account: its cookie, its orgs and how it behaves (see the module docstring)."""

    session_key: str
    orgs: list[dict[str, Any]]
    plan: str = "pro"
    behaviour: str = "ok"
    reset_at: float | None = None
    denied_models: set[str] = field(default_factory=set)
    utilization: float = 0.05

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "behaviour" and value not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {value!r}; expected one of {sorted(BEHAVIOURS)}")
        super().__setattr__(name, value)

    @property
    def org_id(self) -> str:
        """UUID of the chat org: the first org whose capabilities include ``chat``."""
        chat = [org for org in self.orgs if "chat" in org.get("capabilities", ())]
        return str((chat or self.orgs)[0]["uuid"])

    @property
    def paid(self) -> bool:
        return self.plan != "free"


@dataclass
class Call:
    """One request as the fake received it. ``headers`` has lowercase keys; ``json`` is the parsed
    body (``None`` when empty or not JSON); ``file`` is the uploaded ``file`` part, if any."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    session_key: str | None
    file: dict[str, Any] | None
    time: float
    body: bytes = b""


@dataclass
class Conversation:
    """A conversation that exists on the fake; ``messages`` are the completion bodies sent to it."""

    uuid: str
    org_id: str
    session_key: str
    settings: dict[str, Any]
    is_temporary: bool
    model: str | None
    created_at: float
    name: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Framing:
    """How completion streams go on the wire. Read once per completion; tests may change it.

    ``split``: ``"none"`` writes one frame per write; ``"bytes"`` writes ``split_size`` bytes at a
    time and ``"random"`` pieces of 1-64 bytes (seeded by ``seed``), each its own TCP segment, so
    lines and UTF-8 characters break across reads. ``noise`` adds a built-in ``tool_use`` /
    ``tool_result`` pair and citation deltas; ``legacy`` sends 2023-style ``completion`` chunks
    (text only), as ``rendering_mode: "raw"`` does.
    """

    crlf: bool = False
    padding: bool = True
    split: Literal["none", "bytes", "random"] = "none"
    split_size: int = 5
    seed: int = 0
    noise: bool = False
    legacy: bool = False


@dataclass
class Faults:
    """Transport and front-end failures of completions. Read once per completion; tests may change it.

    The conversation exists before any fault strikes (claude.ai creates it first), so a client
    that gives up must still delete it. Frame counts include ``message_start``.

    ``reset_before_headers``: the connection is aborted before any response byte.
    ``stall_before_headers``: seconds of silence before the response starts.
    ``reset_after_frames`` / ``stall_after_frames``: after that many frames, abort the connection
    or pause ``stall_seconds`` (then go on).
    ``truncate_after_frames``: after that many frames, send the next frame's JSON cut in half,
    then end the stream cleanly (no ``message_stop``).
    ``long_line_bytes``: the first text delta carries this many extra bytes of text (one SSE line
    longer than any read buffer).
    ``html_error``: answer completions with this status and an HTML error page (a proxy or front
    in the way; 200 too, as some proxies do).
    ``down_until``: until this :attr:`FakeClaude.clock` time every API call answers 503 with an
    HTML page, as when claude.ai is down (cleanup calls included).
    """

    reset_before_headers: bool = False
    stall_before_headers: float = 0.0
    reset_after_frames: int | None = None
    stall_after_frames: int | None = None
    stall_seconds: float = 0.0
    truncate_after_frames: int | None = None
    long_line_bytes: int = 0
    html_error: int | None = None
    down_until: float = 0.0


#: What a front (nginx, a load balancer) sends when claude.ai behind it is unreachable.
_HTML_ERROR_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def _html_error(status: int) -> web.Response:
    reason = {200: "OK", 502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
    text = _HTML_ERROR_PAGE.format(status=status, reason=reason.get(status, "Error"))
    return web.Response(status=status, text=text, content_type="text/html")


@dataclass
class Reply:
    """A scripted assistant turn.

    ``text=None`` echoes the prompt; ``deltas`` gives the ``text_delta`` pieces explicitly.
    ``thinking`` is only sent when the request turned thinking on. ``delay`` is the pause in seconds
    before each ``content_block_delta``. ``error_after=n`` sends the ``overloaded_error`` frame
    instead of the ``n``-th text delta (0-based) and ends the stream there.
    """

    text: str | None = None
    thinking: str | None = None
    stop_reason: str = "end_turn"
    error_after: int | None = None
    delay: float = 0.0
    deltas: list[str] | None = None

    def text_deltas(self, prompt: str) -> list[str]:
        if self.deltas is not None:
            return list(self.deltas)
        text = self.text if self.text is not None else f"Hello from fake claude.ai. You said: {prompt[:40]}"
        return _pieces(text)


def _pieces(text: str) -> list[str]:
    """Word-sized deltas that concatenate back to *text*."""
    return re.findall(r"\S+\s*|\s+", text)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --------------------------------------------------------------------------- responses


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _error(status: int, type_: str, message: str) -> web.Response:
    body = {"type": "error", "error": {"type": type_, "message": message}}
    return web.json_response(body, status=status, dumps=_compact)


def _fixture_response(
    status: int, name: str, content_type: str = "application/json", headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=fixture_bytes(name), headers={"content-type": content_type, **(headers or {})}
    )


def _challenge() -> web.Response:
    headers = {"cf-mitigated": "challenge"}
    return _fixture_response(403, "error-403-cloudflare-challenge.html", "text/html", headers)


def _org_disabled() -> web.Response:
    return _error(400, "invalid_request_error", _fixture_json("error-400-organization-disabled.message.json"))


def _not_found(what: str) -> web.Response:
    return _error(404, "not_found_error", f"{what} not found")


_CALL = web.RequestKey("call", Call)
_ACCOUNT = web.RequestKey("account", Account)


# --------------------------------------------------------------------------- the stream


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _is_paced(frame: dict[str, Any]) -> bool:
    """Frames preceded by the reply's delay: block deltas, and every legacy ``completion`` chunk."""
    return frame.get("type") == "content_block_delta" or "completion" in frame


@dataclass
class _Turn:
    """The frames of one completion, in order. The driver (`FakeClaude._stream`) writes them,
    pauses before paced frames and, on ``stop_response``, switches to :meth:`cancel`."""

    start: dict[str, Any]
    limit: dict[str, Any]
    deltas: list[str]
    thinking: list[str] | None
    stop_reason: str
    error_after: int | None
    noise: bool
    legacy: bool
    overloaded: bool
    clock: Callable[[], float]

    def events(self) -> Iterator[dict[str, Any]]:
        if self.legacy:
            yield from self._legacy()
            return
        yield self.start
        if self.overloaded:
            yield _frame_template("stream-error-overloaded.sse", "error")
            return
        index = 0
        if self.thinking:
            yield from self._thinking_block(index, self.thinking)
            index += 1
        if self.noise:
            yield from self._tool_blocks(index)
            index += 2
        completed = yield from self._text_block(index)
        if completed:
            yield from self._finish(self.stop_reason)

    def cancel(self, open_block: int | None) -> Iterator[dict[str, Any]]:
        """The tail of a stream ended by ``stop_response``."""
        if self.legacy:
            yield self._legacy_chunk("", "user_canceled")
            return
        if open_block is not None:
            yield self._block_stop(open_block)
        yield from self._finish("user_canceled")

    def _now(self) -> str:
        return _iso(self.clock())

    def _block_start(self, index: int, block: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_start", "index": index, "content_block": block}

    def _block_stop(self, index: int) -> dict[str, Any]:
        return {"type": "content_block_stop", "index": index, "stop_timestamp": self._now()}

    def _thinking_block(self, index: int, pieces: list[str]) -> Iterator[dict[str, Any]]:
        start = _frame_template("stream-2025-07-30-thinking.sse", "content_block_start")
        start["index"] = index
        start["content_block"]["start_timestamp"] = self._now()
        yield start
        for n, piece in enumerate(pieces):
            yield _delta(index, {"type": "thinking_delta", "thinking": piece})
            if n == 0:
                summary = {"type": "thinking_summary_delta", "summary": {"summary": _THINKING_SUMMARY}}
                yield _delta(index, summary)
        yield self._block_stop(index)

    def _tool_blocks(self, index: int) -> Iterator[dict[str, Any]]:
        """A built-in ``web_search`` call and its result (reference 5.3): web-only, never for a client."""
        common = {
            "start_timestamp": self._now(),
            "stop_timestamp": None,
            "name": "web_search",
            "display_content": None,
            "icon_name": "globe",
            "flags": None,
        }
        yield self._block_start(
            index,
            {**common, "type": "tool_use", "id": "tool_1", "input": None, "message": "Searching the web"},
        )
        yield _delta(index, {"type": "input_json_delta", "partial_json": '{"query": "fake'})
        yield _delta(index, {"type": "input_json_delta", "partial_json": ' claude"}'})
        yield _delta(
            index,
            {"type": "tool_use_block_update_delta", "message": "Searching the web", "display_content": None},
        )
        yield self._block_stop(index)
        yield self._block_start(
            index + 1,
            {
                **common,
                "type": "tool_result",
                "tool_use_id": "tool_1",
                "content": [],
                "is_error": False,
                "message": "Found 3 sources",
            },
        )
        yield _delta(
            index + 1,
            {"type": "input_json_delta", "partial_json": '[{"type": "knowledge", "title": "Example"}]'},
        )
        yield self._block_stop(index + 1)

    def _text_block(self, index: int) -> Generator[dict[str, Any], None, bool]:
        """Yields the text block; returns False when it ended with the scripted in-stream error."""
        start = _frame_template("stream-2026-03-text.sse", "content_block_start")
        start["index"] = index
        start["content_block"]["start_timestamp"] = self._now()
        yield start
        citation = {"uuid": str(uuid.uuid4()), "title": "Example", "url": "https://example.com/"}
        if self.noise:
            yield _delta(index, {"type": "citation_start_delta", "citation": citation})
        for n, piece in enumerate(self.deltas):
            if n == self.error_after:
                break
            yield _delta(index, {"type": "text_delta", "text": piece})
        if self.error_after is not None:
            yield _frame_template("stream-error-overloaded.sse", "error")
            return False
        if self.noise:
            yield _delta(index, {"type": "citation_end_delta", "citation_uuid": citation["uuid"]})
        yield self._block_stop(index)
        return True

    def _finish(self, stop_reason: str) -> Iterator[dict[str, Any]]:
        yield {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
        yield self.limit
        yield {"type": "message_stop"}

    def _legacy_chunk(self, text: str, stop_reason: str | None) -> dict[str, Any]:
        chunk = copy.deepcopy(_sse_frames("stream-legacy-completion.sse")[0])
        chunk.update(completion=text, stop_reason=stop_reason)
        return chunk

    def _legacy(self) -> Iterator[dict[str, Any]]:
        for piece in self.deltas:
            yield self._legacy_chunk(piece, None)
        yield self._legacy_chunk("", self.stop_reason)


class _Wire:
    """Encodes frames per :class:`Framing` and writes them to the response, split as configured."""

    def __init__(self, resp: web.StreamResponse, framing: Framing) -> None:
        self._resp = resp
        self._framing = framing
        self._newline = "\r\n" if framing.crlf else "\n"
        self._pads = itertools.cycle(_PADS)
        self._rng = random.Random(framing.seed)

    def encode(self, frame: dict[str, Any]) -> bytes:
        payload = _compact(frame)
        if self._framing.padding:
            payload = payload[:-1] + " " * next(self._pads) + "}"
        nl = self._newline
        event = f"event: {frame['type']}{nl}" if "type" in frame else ""
        return f"{event}data: {payload}{nl}{nl}".encode()

    async def send(self, frame: dict[str, Any]) -> None:
        data = self.encode(frame)
        if self._framing.split == "none":
            await self._resp.write(data)
            return
        for piece in self._pieces(data):
            await self._resp.write(piece)
            await asyncio.sleep(0)  # a loop turn per piece, so each leaves as its own TCP segment

    def _pieces(self, data: bytes) -> Iterator[bytes]:
        if self._framing.split not in ("bytes", "random"):
            raise ValueError(f"unknown Framing.split {self._framing.split!r}")
        pos = 0
        while pos < len(data):
            size = self._framing.split_size if self._framing.split == "bytes" else self._rng.randint(1, 64)
            yield data[pos : pos + size]
            pos += size


async def _pause(stop: asyncio.Event, delay: float) -> None:
    """Sleep *delay* seconds, waking early when *stop* is set."""
    if delay > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()


def _open_block(open_block: int | None, frame: dict[str, Any]) -> int | None:
    if frame.get("type") == "content_block_start":
        return int(frame["index"])
    if frame.get("type") == "content_block_stop":
        return None
    return open_block


# --------------------------------------------------------------------------- the server


class FakeClaude:
    """A claude.ai look-alike HTTP server; see the module docstring for behaviours and generations."""

    def __init__(self, *, protocol: str = "both", clock: Callable[[], float] = time.time) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}")
        self.protocol = protocol
        self.clock = clock
        self.base_url = ""
        self.accounts: list[Account] = []
        self.calls: list[Call] = []
        self.conversations: dict[str, Conversation] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.stopped: list[str] = []
        self.framing = Framing()
        self.faults = Faults()
        self.reply_factory: Callable[[Call], Reply] | None = None
        self._reply = Reply()
        self._by_key: dict[str, Account] = {}
        self._live: dict[str, asyncio.Event] = {}
        self._org_numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # -- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on *host*:*port* (0 = any free port) and set :attr:`base_url`."""
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self.base_url = str(URL.build(scheme="http", host=host, port=bound_port))

    async def close(self) -> None:
        """Stop live streams (as ``stop_response`` would) and shut the server down."""
        for stop in self._live.values():
            stop.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeClaude:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- test API

    def add_account(
        self,
        session_key: str | None = None,
        *,
        orgs: list[dict[str, Any]] | None = None,
        plan: str = "pro",
        behaviour: str = "ok",
        reset_at: float | None = None,
        denied_models: Iterable[str] = frozenset(),
        utilization: float = 0.05,
    ) -> Account:
        """Add an account. Each entry of *orgs* overrides fields of a default org for *plan*
        (e.g. ``[{"capabilities": ["api"]}, {}]`` = an api-only org, then the chat org)."""
        if plan not in PLAN_CAPABILITIES:
            raise ValueError(f"unknown plan {plan!r}; expected one of {sorted(PLAN_CAPABILITIES)}")
        key = session_key or make_session_key()
        if key in self._by_key:
            raise ValueError("an account with this session key already exists")
        account = Account(
            session_key=key,
            orgs=[self._org(plan, overrides) for overrides in (orgs or [{}])],
            plan=plan,
            behaviour=behaviour,
            reset_at=reset_at,
            denied_models=set(denied_models),
            utilization=utilization,
        )
        self.accounts.append(account)
        self._by_key[key] = account
        return account

    def reply(
        self,
        text: str | None = None,
        *,
        thinking: str | None = None,
        stop_reason: str = "end_turn",
        error_after: int | None = None,
        delay: float = 0.0,
        deltas: list[str] | None = None,
    ) -> None:
        """Script the reply of every following completion (unless :attr:`reply_factory` is set)."""
        self._reply = Reply(text, thinking, stop_reason, error_after, delay, deltas)

    def calls_to(self, pattern: str | re.Pattern[str]) -> list[Call]:
        """Recorded calls whose path ends with *pattern* (a str) or matches it (a compiled regex)."""
        if isinstance(pattern, str):
            return [call for call in self.calls if call.path.endswith(pattern)]
        return [call for call in self.calls if pattern.search(call.path)]

    # -- plumbing

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate], client_max_size=32 * 1024 * 1024)
        org, conv = "/api/organizations/{org}", "/api/organizations/{org}/chat_conversations/{conv}"
        app.router.add_get("/api/organizations", self._organizations)
        app.router.add_put("/api/account", self._account_settings)
        app.router.add_get(f"{org}/usage", self._usage)
        app.router.add_post(f"{org}/chat_conversations", self._create_conversation)
        app.router.add_put(conv, self._update_conversation)
        app.router.add_delete(conv, self._delete_conversation)
        app.router.add_post(f"{conv}/completion", self._completion)
        app.router.add_post(f"{conv}/stop_response", self._stop_response)
        app.router.add_post("/api/{org}/upload", self._upload)
        app.router.add_post(f"{org}/upload", self._upload)
        app.router.add_post(f"{org}/conversations/{{conv}}/wiggle/upload-file", self._upload)
        app.router.add_route("*", "/cdn-cgi/{tail:.*}", self._challenge_target)
        return app

    def _org(self, plan: str, overrides: dict[str, Any]) -> dict[str, Any]:
        org: dict[str, Any] = _fixture_json("organizations.response.json")[0]
        org.update(
            id=next(self._org_numbers),
            uuid=str(uuid.uuid4()),
            name="Fake organization",
            capabilities=list(PLAN_CAPABILITIES[plan]),
            active_flags=[],
            settings={},
        )
        org.update(overrides)
        return org

    async def _record(self, request: web.Request) -> Call:
        body = b"" if request.content_type.startswith("multipart/") else await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            json=parsed,
            session_key=request.cookies.get("sessionKey"),
            file=None,
            time=self.clock(),
            body=body,
        )
        self.calls.append(call)
        return call

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record the call, then apply the cookie, account-wide behaviour and org checks."""
        call = request[_CALL] = await self._record(request)
        if not request.path.startswith("/api/"):
            return await handler(request)
        if self.clock() < self.faults.down_until:
            return _html_error(503)
        account = self._by_key.get(call.session_key or "")
        if account is None:
            return _fixture_response(403, "error-403-account-session-invalid.json")
        if account.behaviour in ACCOUNT_WIDE_BEHAVIOURS:
            return self._account_failure(request, account.behaviour)
        org = request.match_info.get("org")
        if org is not None and org not in {o["uuid"] for o in account.orgs}:
            return _error(403, "permission_error", "You do not have access to this organization.")
        request[_ACCOUNT] = account
        return await handler(request)

    @staticmethod
    def _account_failure(request: web.Request, behaviour: str) -> web.Response:
        if behaviour in _FIXED_FAILURES:
            return _fixture_response(*_FIXED_FAILURES[behaviour])
        if behaviour == "cloudflare":
            return _challenge()
        # cloudflare_302: a redirect whose target answers with the challenge page
        location = str(request.url.origin().with_path(_CHALLENGE_PATH))
        return _fixture_response(302, "error-302-cloudflare.html", "text/html", {"location": location})

    def _reset_at(self, account: Account) -> int:
        return int(account.reset_at if account.reset_at is not None else self.clock() + 3600)

    def _rate_limited(self, account: Account) -> web.Response:
        body = _fixture_json("error-429-exceeded-limit-extension.json")
        if account.behaviour == "rate_limited":
            inner = json.loads(body["error"]["message"])
            inner["resetsAt"] = self._reset_at(account)
            body["error"]["message"] = json.dumps(inner)  # Python-style ", " / ": " as captured
        else:
            body["error"]["message"] = _PLAIN_RATE_LIMIT
        headers = {"content-type": "application/json"}
        if account.behaviour != "rate_limited_no_reset":
            headers["anthropic-ratelimit-unified-reset"] = str(self._reset_at(account))
        return web.Response(status=429, body=json.dumps(body).encode(), headers=headers)

    @staticmethod
    def _create_failure(account: Account, model: str | None) -> web.Response | None:
        if account.behaviour == "org_disabled":
            return _org_disabled()
        if model is not None and model in account.denied_models:
            return _fixture_response(403, "error-403-model-not-allowed.json")
        return None

    def _completion_failure(self, account: Account, model: str | None) -> web.Response | None:
        if failure := self._create_failure(account, model):
            return failure
        if account.behaviour.startswith("rate_limited"):
            return self._rate_limited(account)
        if account.behaviour == "server_error":
            return _error(500, "api_error", "Internal server error")
        return None

    def _conversation(self, request: web.Request) -> Conversation | None:
        conv = self.conversations.get(request.match_info["conv"])
        return conv if conv is not None and conv.org_id == request.match_info["org"] else None

    def _new_conversation(
        self, org_id: str, conv_id: str, account: Account, params: dict[str, Any]
    ) -> Conversation:
        """Create from a create body or ``create_conversation_params``; other keys become settings."""
        settings = _fixture_json("create-conversation-2025-07-30.response.json")["settings"]
        settings["paprika_mode"] = None
        settings.update({k: v for k, v in params.items() if k not in _CREATE_FIELDS})
        conv = Conversation(
            uuid=conv_id,
            org_id=org_id,
            session_key=account.session_key,
            settings=settings,
            is_temporary=bool(params.get("is_temporary", False)),
            model=params.get("model"),
            created_at=self.clock(),
            name=str(params.get("name") or ""),
        )
        self.conversations[conv_id] = conv
        return conv

    @staticmethod
    def _conversation_json(conv: Conversation) -> dict[str, Any]:
        body: dict[str, Any] = _fixture_json("create-conversation-2025-07-30.response.json")
        created = _iso(conv.created_at)
        body.update(
            uuid=conv.uuid,
            name=conv.name,
            model=conv.model,
            created_at=created,
            updated_at=created,
            settings=conv.settings,
            is_temporary=conv.is_temporary,
        )
        return body

    def _window_reset(self, account: Account, hours: int) -> int:
        if hours == 5 and account.reset_at is not None:
            return int(account.reset_at)
        return (int(self.clock()) // 3600 + hours) * 3600

    def _limit_frame(self, account: Account) -> dict[str, Any]:
        if account.behaviour == "exceeded_in_stream":
            frame = _frame_template("stream-message-limit-exceeded-crlf.sse", "message_limit")
            frame["message_limit"]["resetsAt"] = self._reset_at(account)
            return frame
        if self.protocol == "2025":
            return _frame_template("stream-2025-07-30-thinking.sse", "message_limit")
        frame = _frame_template("stream-2026-03-text.sse", "message_limit")
        frame["message_limit"]["windows"] = {
            name: {
                "status": "within_limit",
                "resets_at": self._window_reset(account, hours),
                "utilization": account.utilization,
            }
            for name, hours in (("5h", 5), ("7d", 7 * 24))
        }
        return frame

    def _message_start(self, body: dict[str, Any]) -> dict[str, Any]:
        source = "stream-2025-07-30-thinking.sse" if self.protocol == "2025" else "stream-2026-03-text.sse"
        frame = _frame_template(source, "message_start")
        turn_ids = body.get("turn_message_uuids") or {}
        message = frame["message"]
        message["id"] = f"chatcompl_01{_token(_BASE62, 22)}"
        message["parent_uuid"] = (
            turn_ids.get("human_message_uuid") or turn_ids.get("user_message_uuid") or str(uuid.uuid4())
        )
        message["uuid"] = turn_ids.get("assistant_message_uuid") or str(uuid.uuid4())
        if "trace_id" in message:
            message["trace_id"] = secrets.token_hex(16)
            message["request_id"] = f"req_011C{_token(_BASE62, 20)}"
        return frame

    def _thinking_requested(self, conv: Conversation, body: dict[str, Any]) -> bool:
        by_settings = self.protocol != "2026" and conv.settings.get("paprika_mode") == "extended"
        by_body = self.protocol != "2025" and body.get("thinking_mode") == "extended"
        return by_settings or by_body

    # -- handlers

    async def _challenge_target(self, request: web.Request) -> web.Response:
        return _challenge()

    async def _organizations(self, request: web.Request) -> web.Response:
        return web.json_response(request[_ACCOUNT].orgs)

    async def _account_settings(self, request: web.Request) -> web.Response:
        """Account-wide settings: accepted and recorded, since clients should never call it."""
        return web.json_response(request[_CALL].json or {})

    async def _usage(self, request: web.Request) -> web.Response:
        account = request[_ACCOUNT]
        body = _fixture_json("usage.response.json")
        percent = round(account.utilization * 100, 2)
        resets_at = _iso(self._window_reset(account, 5))[:-4] + "Z"  # milliseconds, as captured
        body["five_hour"].update(utilization=percent, resets_at=resets_at)
        body["seven_day"]["utilization"] = percent
        return web.json_response(body)

    async def _create_conversation(self, request: web.Request) -> web.Response:
        body = request[_CALL].json
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "Request body must be a JSON object")
        conv_id = str(body.get("uuid") or uuid.uuid4())
        if conv_id in self.conversations:
            return _error(409, "invalid_request_error", "Conversation already exists")
        account = request[_ACCOUNT]
        if failure := self._create_failure(account, body.get("model")):
            return failure
        conv = self._new_conversation(request.match_info["org"], conv_id, account, body)
        return web.json_response(self._conversation_json(conv), status=201)

    async def _update_conversation(self, request: web.Request) -> web.Response:
        conv, body = self._conversation(request), request[_CALL].json
        if conv is None:
            return _not_found("Conversation")
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "Request body must be a JSON object")
        conv.settings.update(body.get("settings") or {})
        if "name" in body:
            conv.name = str(body["name"])
        return web.json_response(self._conversation_json(conv), status=202)

    async def _delete_conversation(self, request: web.Request) -> web.Response:
        conv = self._conversation(request)
        if conv is None:
            return _not_found("Conversation")
        del self.conversations[conv.uuid]
        return web.Response(status=204)

    async def _stop_response(self, request: web.Request) -> web.Response:
        conv = self._conversation(request)
        if conv is None:
            return _not_found("Conversation")
        stop = self._live.get(conv.uuid)
        if stop is not None and not stop.is_set():
            stop.set()
            self.stopped.append(conv.uuid)
        return web.Response(status=200)

    async def _upload(self, request: web.Request) -> web.Response:
        info = await _read_file_part(request)
        if info is None:
            return _error(400, "invalid_request_error", "A multipart part 'file' with a filename is required")
        file_uuid = str(uuid.uuid4())
        info["file_uuid"] = file_uuid
        self.uploads[file_uuid] = request[_CALL].file = info
        body = _fixture_json("wiggle-upload-file-2026-05-27.response.json")
        name = info["filename"]
        body.update(
            path=f"/mnt/user-data/uploads/{name}",
            sanitized_name=name,
            file_name=name,
            file_kind="image" if info["content_type"].startswith("image/") else "blob",
            file_uuid=file_uuid,
            uuid=file_uuid,
            size_bytes=info["size"],
        )
        return web.json_response(body)

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        call, account = request[_CALL], request[_ACCOUNT]
        body = call.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            return _error(400, "invalid_request_error", "prompt: Field required")
        if body.get("rendering_mode") not in ("messages", "raw"):
            return _error(400, "invalid_request_error", "rendering_mode: expected 'messages' or 'raw'")
        conv = self._conversation(request)
        params = body.get("create_conversation_params") if self.protocol != "2025" else None
        if conv is None and not isinstance(params, dict):
            return _not_found("Conversation")
        model = body.get("model") or (params or {}).get("model") or (conv.model if conv else None)
        if failure := self._completion_failure(account, model):
            return failure
        if conv is None:
            assert isinstance(params, dict)
            org_id, conv_id = request.match_info["org"], request.match_info["conv"]
            conv = self._new_conversation(org_id, conv_id, account, params)
        conv.messages.append(body)
        faults = dataclasses.replace(self.faults)
        if faults.reset_before_headers:
            _abort(request)
            return web.Response()  # never sent: the connection is gone
        if faults.stall_before_headers:
            await asyncio.sleep(faults.stall_before_headers)
        if faults.html_error is not None:
            return _html_error(faults.html_error)
        reply = self.reply_factory(call) if self.reply_factory is not None else self._reply
        framing = dataclasses.replace(self.framing)
        thinking = reply.thinking if account.paid and self._thinking_requested(conv, body) else None
        turn = _Turn(
            start=self._message_start(body),
            limit=self._limit_frame(account),
            deltas=_lengthen_first(reply.text_deltas(body["prompt"]), faults.long_line_bytes),
            thinking=_pieces(thinking) if thinking else None,
            stop_reason=reply.stop_reason,
            error_after=reply.error_after,
            noise=framing.noise,
            legacy=framing.legacy or body["rendering_mode"] == "raw",
            overloaded=account.behaviour == "overloaded",
            clock=self.clock,
        )
        return await self._stream(request, conv, turn, framing, reply.delay, faults)

    async def _stream(
        self,
        request: web.Request,
        conv: Conversation,
        turn: _Turn,
        framing: Framing,
        delay: float,
        faults: Faults | None = None,
    ) -> web.StreamResponse:
        faults = faults or Faults()
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        wire = _Wire(resp, framing)
        stop = self._live[conv.uuid] = asyncio.Event()
        open_block: int | None = None
        try:
            for sent, frame in enumerate(turn.events()):
                if sent == faults.reset_after_frames:
                    _abort(request)
                    return resp
                if sent == faults.truncate_after_frames:
                    payload = _compact(frame).encode()
                    await resp.write(b"data: " + payload[: len(payload) // 2] + b"\n\n")
                    break
                if sent == faults.stall_after_frames:
                    await _pause(stop, faults.stall_seconds)
                if _is_paced(frame):
                    await _pause(stop, delay)
                if stop.is_set():
                    for tail in turn.cancel(open_block):
                        await wire.send(tail)
                    break
                open_block = _open_block(open_block, frame)
                await wire.send(frame)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away mid-stream; nothing left to tell it
        finally:
            if self._live.get(conv.uuid) is stop:
                del self._live[conv.uuid]
        return resp


def _abort(request: web.Request) -> None:
    """Drop the connection at once, as a reset would (no response, no FIN handshake)."""
    if request.transport is not None:
        request.transport.abort()


def _lengthen_first(deltas: list[str], extra: int) -> list[str]:
    """``deltas`` with ``extra`` more characters of text in the first one (ASCII: bytes = characters)."""
    if extra <= 0 or not deltas:
        return deltas
    filler = ("0123456789abcdef" * (extra // 16 + 1))[:extra]
    return [deltas[0] + filler, *deltas[1:]]


async def _read_file_part(request: web.Request) -> dict[str, Any] | None:
    """The multipart part named ``file`` (it must carry a filename), or None."""
    if not request.content_type.startswith("multipart/"):
        return None
    try:
        async for part in await request.multipart():
            if isinstance(part, BodyPartReader) and part.name == "file" and part.filename:
                data = bytes(await part.read())
                content_type = part.headers.get("content-type", "application/octet-stream")
                return {
                    "filename": part.filename,
                    "content_type": content_type,
                    "size": len(data),
                    "bytes": data,
                }
    except ValueError:
        return None
    return None


# --------------------------------------------------------------------------- CLI


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeClaude(protocol=args.protocol)
    if args.deltas is not None:
        fake.reply(deltas=["token "] * args.deltas, delay=args.delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await fake.start(args.host, args.port)
    try:
        accounts = [fake.add_account() for _ in range(args.accounts)]
        print(
            json.dumps(
                {
                    "base_url": fake.base_url,
                    "session_keys": [a.session_key for a in accounts],
                    "org_ids": [a.org_id for a in accounts],
                }
            ),
            flush=True,
        )
        await stop.wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    """Run a fake alone; print its base URL and session keys as one JSON line; serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m claude2api.testing.fake_claude", description=main.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="both")
    parser.add_argument("--deltas", type=int, help="reply with this many text deltas instead of the echo")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each delta (with --deltas)")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
