"""A fake claude.ai web API on a loopback port, for testing clients over real sockets.

It speaks claude.ai's web API as ``docs/protocol.md`` describes it: the organizations list, conversation
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
``"both"`` accepts either switch and sends 2026-shaped frames. ``"extended"`` and ``"auto"`` turn
thinking on, and only on paid plans.

2026 additions
--------------
Models (docs/protocol.md §9). :attr:`FakeClaude.models` is the catalog (:func:`default_models`: the docs/protocol.md §9.4
ids, each with its thinking options as a :class:`FakeModel`); tests may edit it. ``GET
/edge-api/bootstrap/{org}/app_start`` (and ``/api/bootstrap/{org}/app_start``) serves
``claude_ai_available_models`` and the ``chat`` surface of ``model_selector_config`` (``disabled``
when the plan is below ``minimum_tier``). :attr:`Account.models` (a list of ids, default all) narrows
one account's catalog. A completion whose model is in the catalog but not usable by the account
gets the 403 ``permission_error`` of docs/protocol.md §11.5, "This model isn't available right now…".
``FakeClaude(strict_models=True)`` (attribute ``strict_models``, default False so today's daemon
keeps working) also refuses ids outside the catalog with that 403 and checks ``thinking_mode`` /
``effort`` against the model's selector: an unlisted value is a 400 ``invalid_request_error`` in
the 2026 envelope (``details``, ``request_id``) — claude.ai's body for this is unpublished.

Usage and limits (docs/protocol.md §10, §11.1), per account: :attr:`Account.limit_shape` ``"basic"`` (default: the
captured 2026-03 frame with ``5h``/``7d`` windows and the old ``/usage`` body), ``"full"`` (the
2026-08 ``message_limit`` with ``7d_oi``, ``overage``, ``resolved``; ``/usage`` with every window
key, ``extra_usage`` and ``limits[]``), ``"free"`` (``/usage`` windows all null, ``limits: []``).
:attr:`Account.resets_at_format` ``"s"`` (default) / ``"ms"`` / ``"iso"`` for ``windows.*.resets_at``.
:attr:`Account.exhausted` ``None`` / ``"all"`` (every send: 429 whose message is the 2026
``exceeded_limit`` object with the ``5h`` window exceeded) / a model id (sends with that model:
429 with ``7d_oi`` exceeded, ``perModelLimit: true`` and a ``weekly_scoped`` ``resolved.limit``
naming the model; other models stream, their ``message_limit`` showing ``7d_oi`` exceeded).
``behaviour="exceeded_in_stream"`` with a non-basic shape sends that 2026 object in-stream.

Session keys: :func:`make_session_key` ``("sid02")`` gives ``sk-ant-sid02-…`` keys.

Client tools (docs/protocol.md §6). Completion ``tools`` entries are validated (client tools need a ``name`` and an
object ``input_schema``; built-ins ``{"type", "name"}``): a malformed one is a 400
``invalid_request_error`` (body unpublished). Directives in what the model reads (attachments,
uploaded files, prompt): ``[[tool:NAME {json args}]]`` calls the declared client tool NAME.
Directives with only whitespace between them are one parallel turn; later runs are later turns. A
directive counts as answered once its call id (``toolu_…``, 24 characters after the prefix) appears
in what the model reads — so a replayed transcript must carry the ids. The turn streams a short text
block, then each ``tool_use`` block with ``input_json_delta`` fragments (docs/protocol.md §6.2), then no
``message_delta``: the response stays open with ``: ping - …`` comments every
:attr:`FakeClaude.ping_interval` s (default 1) until every call has a ``POST …/tool_result`` (docs/protocol.md §6.3;
the stream resumes with an echoed ``tool_result`` block, a text reply quoting the results and the
usual end), ``stop_response`` (``user_canceled``), the client's disconnect, or
:attr:`FakeClaude.tool_wait_timeout` s (default 300; ends with ``stop_reason: "tool_use"``).
:attr:`FakeClaude.tool_calls` (id -> :class:`ToolCall`) records each call and its ``outcome``.
The default echo reply appends ``[tool result NAME ID: …]`` for each known call id it read, quoting
the text after the id's last mention.

Web search (docs/protocol.md §7). A ``[[search:QUERY]]`` directive searches only when the conversation's
``enabled_web_search`` is true (settings PUT, ``create_conversation_params``, or inherited from the
account default, ``PATCH /api/account/settings`` / :attr:`Account.enabled_web_search`) *and*
``tools`` has ``{"type": "web_search_v0", "name": "web_search"}``; it streams the ``tool_use`` (docs/protocol.md §7.2),
``tool_result`` (one delta holding the whole ``knowledge`` list) and a text block with
``citation_start_delta`` / ``citation_end_delta``. :attr:`FakeClaude.searches` lists the queries.

Uploads (docs/protocol.md §8). The wiggle endpoint works before the conversation exists, answers 400 for an id that
is no uuid and 404 when :attr:`Account.wiggle_upload` is False (to exercise ``/api/{org}/upload``).
Images, PDFs, text and office files are accepted; other types are a 400 naming the type; more than
:attr:`FakeClaude.upload_max_bytes` (default 30 MiB) a 413 (status and bodies unpublished, docs/protocol.md §8.5).
Upload records carry ``conversation`` (wiggle) or None (legacy), ``session_key`` and ``org_id``;
deleting a conversation deletes its wiggle uploads, legacy ones stay (:meth:`FakeClaude.uploads_of`).
Completion ``files`` must name the account's uploads (else 400 ``files.N: File not found``); the
default echo appends ``[file NAME: TEXT]`` for each non-image file (PDF text from its ``Tj``
strings) and each ``kind: "file"`` attachment.
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
    "FakeModel",
    "Faults",
    "Framing",
    "Reply",
    "ToolCall",
    "default_models",
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


def make_session_key(generation: str = "sid01") -> str:
    """A random key in the real ``sessionKey`` format (``sk-ant-sid01-…AA``, docs/protocol.md §1.2);
    ``generation="sid02"`` gives the newer ``sk-ant-sid02-…`` form."""
    if not re.fullmatch(r"sid\d\d", generation):
        raise ValueError(f"generation must look like 'sid01' / 'sid02', not {generation!r}")
    middle = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(86 + secrets.randbelow(35)))
    tail = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(6))
    return f"sk-ant-{generation}-{middle}-{tail}AA"


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
    # 2026 additions (see the module docstring)
    models: list[str] | None = None
    limit_shape: str = "basic"
    resets_at_format: str = "s"
    exhausted: str | None = None
    wiggle_upload: bool = True
    enabled_web_search: bool | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "behaviour" and value not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {value!r}; expected one of {sorted(BEHAVIOURS)}")
        if name == "limit_shape" and value not in LIMIT_SHAPES:
            raise ValueError(f"unknown limit_shape {value!r}; expected one of {sorted(LIMIT_SHAPES)}")
        if name == "resets_at_format" and value not in RESETS_AT_FORMATS:
            raise ValueError(
                f"unknown resets_at_format {value!r}; expected one of {sorted(RESETS_AT_FORMATS)}"
            )
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
    (a moment later, once they have arrived) or pause ``stall_seconds`` (then go on).
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
        """A built-in ``web_search`` call and its result (docs/protocol.md §7.2): web-only, never for a client."""
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


# --------------------------------------------------------------------------- 2026 additions
# Live model list and thinking options, 2026 usage shapes, client tools, claude.ai's web search
# and uploads (docs/protocol.md §6 to §10). Kept apart so the older code stays as it was.

TIERS = ("free", "pro", "max")
LIMIT_SHAPES = frozenset({"basic", "full", "free"})
RESETS_AT_FORMATS = frozenset({"s", "ms", "iso"})
MODEL_NOT_AVAILABLE = (
    "This model isn't available right now. You can switch to another model to continue using Claude."
)
_EFFORT_NAMES = {"low": "Low", "medium": "Medium", "high": "High", "xhigh": "Extra", "max": "Max"}
_CAPABILITIES = {"mm_pdf": True, "mm_images": True, "web_search": True, "gsuite_tools": True, "compass": True}
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TOOL_DIRECTIVE = re.compile(r"\[\[tool:([A-Za-z0-9_-]+)\s*")
_SEARCH_DIRECTIVE = re.compile(r"\[\[search:([^\]]+)\]\]")
_WEB_SEARCH_TOOL_TYPE = "web_search_v0"
_UPLOAD_TOO_LARGE = "Upload file is too large. Try uploading a smaller part of the document, or copy/pasting an excerpt from the file"
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "application/x-python",
        "application/x-sh",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)
_TEXT_SUFFIXES = frozenset(
    {
        "txt",
        "md",
        "csv",
        "tsv",
        "json",
        "xml",
        "yaml",
        "yml",
        "py",
        "js",
        "ts",
        "go",
        "rs",
        "java",
        "c",
        "h",
        "cpp",
        "rb",
        "sh",
        "html",
        "css",
        "sql",
        "toml",
        "ini",
        "log",
        "pdf",
        "docx",
        "xlsx",
        "pptx",
    }
)


@dataclass
class FakeModel:
    """One model of the catalog: its ``app_start`` entries and the thinking its selector allows.

    ``thinking`` is the ``model_selector_config`` thinking object (docs/protocol.md §9.3): ``type`` is
    ``effort_and_mode``, ``effort``, ``mode`` or ``none``; ``mode_options`` / ``effort_options`` list
    the allowed ``thinking_mode`` / ``effort`` ids.
    """

    id: str
    name: str
    minimum_tier: str = "free"
    modes: tuple[str, ...] = ("auto", "off")
    efforts: tuple[str, ...] = ("low", "medium", "high", "xhigh", "max")
    default_effort: str | None = "medium"
    section: str = "main"

    @property
    def thinking(self) -> dict[str, Any]:
        if not self.modes and not self.efforts:
            return {"type": "none"}
        thinking: dict[str, Any] = {
            "type": "effort_and_mode" if self.modes and self.efforts else "mode" if self.modes else "effort"
        }
        if self.modes:
            names = {"auto": "Thinking", "extended": "Extended thinking", "off": "Off"}
            thinking["mode_options"] = [{"id": m, "name": names.get(m, m)} for m in self.modes]
        if self.efforts:
            thinking["effort_options"] = [
                {
                    "id": e,
                    "name": _EFFORT_NAMES.get(e, e),
                    **({"recommended": True} if e == self.default_effort else {}),
                }
                for e in self.efforts
            ]
        return thinking


def default_models() -> list[FakeModel]:
    """The 2026 catalog (docs/protocol.md §9.4) with each model's thinking options (docs/protocol.md §9.3).

    Modes follow what HAR-0812's client sends: ``auto``/``off`` on the effort-and-mode models,
    ``extended``/``off`` on Opus 4.6 and on Haiku (mode only, no effort). docs/protocol.md leaves
    Haiku's chat ``mode_options`` ids unverified.
    """
    four = ("low", "medium", "high", "max")
    return [
        FakeModel("claude-sonnet-5", "Sonnet 5"),
        FakeModel("claude-sonnet-4-6", "Sonnet 4.6", efforts=four),
        FakeModel(
            "claude-haiku-4-5-20251001",
            "Haiku 4.5",
            modes=("extended", "off"),
            efforts=(),
            default_effort=None,
        ),
        FakeModel("claude-opus-4-8", "Opus 4.8", "pro", default_effort="high"),
        FakeModel("claude-opus-4-7", "Opus 4.7", "pro", default_effort="xhigh"),
        FakeModel(
            "claude-opus-4-6", "Opus 4.6", "pro", modes=("extended", "off"), efforts=four, section="overflow"
        ),
        FakeModel("claude-opus-5", "Opus 5", "pro", default_effort="high"),
        FakeModel("claude-fable-5", "Fable 5", "pro", default_effort="high"),
        FakeModel(
            "claude-opus-3", "Opus 3", "pro", modes=(), efforts=(), default_effort=None, section="overflow"
        ),
    ]


@dataclass
class ToolCall:
    """A client tool call the fake streamed (docs/protocol.md §6.2).

    ``outcome``: ``pending`` while the stream is held, then ``answered`` (a ``tool_result`` POST
    arrived), ``stopped`` (``stop_response``), ``disconnected`` (the client closed the stream) or
    ``timed_out``. ``result`` is the POSTed ``tool_result`` body.
    """

    id: str
    name: str
    input: Any
    conversation: str
    key: tuple[str, str, int]
    result: dict[str, Any] | None = None
    outcome: str = "pending"


@dataclass
class _Directive:
    name: str
    args: Any
    key: tuple[str, str, int]
    start: int
    end: int


def _tool_directives(text: str) -> list[_Directive]:
    """Every ``[[tool:NAME {json}]]`` in *text*, in order; the nth identical call gets occurrence n."""
    found: list[_Directive] = []
    seen: dict[tuple[str, str], int] = {}
    decoder = json.JSONDecoder()
    for match in _TOOL_DIRECTIVE.finditer(text):
        pos = match.end()
        args: dict[str, Any] = {}
        if text.startswith("{", pos):
            try:
                args, pos = decoder.raw_decode(text, pos)
            except ValueError:
                continue
        close = re.compile(r"\s*\]\]").match(text, pos)
        if close is None:
            continue
        name, canonical = match.group(1), json.dumps(args, sort_keys=True)
        occurrence = seen.get((name, canonical), 0)
        seen[(name, canonical)] = occurrence + 1
        found.append(_Directive(name, args, (name, canonical, occurrence), match.start(), close.end()))
    return found


def _next_tool_group(text: str, answered: Callable[[_Directive], bool]) -> list[_Directive]:
    """The first run of directives (only whitespace between them) that has unanswered calls: those
    calls go out together, as parallel calls; the next run waits for the next turn."""
    group: list[_Directive] = []
    for directive in _tool_directives(text):
        if group and text[group[-1].end : directive.start].strip():
            if any(not answered(d) for d in group):
                break
            group = []
        group.append(directive)
    return [d for d in group if not answered(d)]


def _tool_id() -> str:
    return f"toolu_01{_token(_BASE62, 22)}"


def _json_fragments(value: Any, size: int = 8) -> list[str]:
    """The compact JSON of *value*, ASCII-escaped and cut into pieces as claude.ai streams it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return [text[i : i + size] for i in range(0, len(text), size)] or ["{}"]


def _validate_tools(tools: Any) -> str | None:
    """Why the completion's ``tools`` array is malformed, or None.

    No claude.ai body for a bad tool definition is published (docs/protocol.md §11.6); the fake answers
    400 ``invalid_request_error`` with a pydantic-style message, as for other body errors.
    """
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for n, tool in enumerate(tools):
        where = f"tools.{n}"
        if not isinstance(tool, dict):
            return f"{where}: Input should be a valid dictionary"
        name, type_ = tool.get("name"), tool.get("type")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            return f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
        if type_ is not None and type_ != "custom":
            if not isinstance(type_, str):
                return f"{where}.type: Input should be a valid string"
            continue  # a built-in or widget: {"type": …, "name": …}
        schema = tool.get("input_schema", (tool.get("custom") or {}).get("input_schema"))
        if not isinstance(schema, dict):
            return f"{where}.input_schema: Input should be a valid dictionary"
        if schema.get("type") != "object":
            return f"{where}.input_schema.type: Input should be 'object'"
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            return f"{where}.description: Input should be a valid string"
    return None


def _client_tool_names(tools: Any) -> set[str]:
    if not isinstance(tools, list):
        return set()
    return {t["name"] for t in tools if isinstance(t, dict) and t.get("type") in (None, "custom")}


def _has_web_search_tool(tools: Any) -> bool:
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("type") == _WEB_SEARCH_TOOL_TYPE for t in tools
    )


def _pdf_text(data: bytes) -> str:
    """The literal strings shown by ``Tj`` / ``TJ`` in an uncompressed PDF: enough for tests."""
    found = re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", data) + re.findall(
        rb"\(((?:\\.|[^\\)])*)\)", b"".join(re.findall(rb"\[([^\]]*)\]\s*TJ", data))
    )
    return " ".join(part.decode("latin-1").replace("\\(", "(").replace("\\)", ")") for part in found)


def _file_text(info: dict[str, Any]) -> str:
    """What the model 'reads' of an upload: the text of a PDF or text file; nothing for images."""
    data: bytes = info["bytes"]
    if info["content_type"] == "application/pdf" or data.startswith(b"%PDF-"):
        return _pdf_text(data)
    if info["content_type"] in _IMAGE_TYPES:
        return ""
    return data.decode("utf-8", "replace")


def _upload_refusal(info: dict[str, Any], max_bytes: int) -> web.Response | None:
    """claude.ai's refusal of an upload, or None (docs/protocol.md §8.5).

    Status and body are unpublished: oversize is a 413 carrying the UI's text in the error envelope;
    a type claude.ai does not read is a 400 ``invalid_request_error`` naming the type.
    """
    if info["size"] > max_bytes:
        return _error(413, "request_too_large", _UPLOAD_TOO_LARGE)
    content_type = info["content_type"].split(";")[0].strip().lower()
    suffix = info["filename"].rsplit(".", 1)[-1].lower() if "." in info["filename"] else ""
    readable = (
        content_type in _IMAGE_TYPES
        or content_type in _DOCUMENT_TYPES
        or content_type.startswith("text/")
        or (content_type == "application/octet-stream" and suffix in _TEXT_SUFFIXES)
    )
    if not readable:
        return _error(
            400, "invalid_request_error", f"Unsupported file type: {content_type} ({info['filename']})"
        )
    return None


def _error_2026(status: int, type_: str, message: str) -> web.Response:
    """The 2026 error envelope with ``details`` and ``request_id`` (HAR-0518, docs/protocol.md §11.5)."""
    body = {
        "type": "error",
        "error": {"type": type_, "message": message, "details": {"error_visibility": "user_facing"}},
        "request_id": f"req_011C{_token(_BASE62, 20)}",
    }
    return web.json_response(body, status=status, dumps=_compact)


def _ping_comment(clock: Callable[[], float], newline: str) -> bytes:
    """An SSE comment keep-alive as claude.ai sends them (docs/protocol.md §5.1)."""
    stamp = datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f": ping - {stamp}{newline}{newline}".encode()


def _tool_use_start(index: int, call_id: str, name: str, now: str, **overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "start_timestamp": now,
        "stop_timestamp": None,
        "flags": None,
        "type": "tool_use",
        "id": call_id,
        "name": name,
        "input": {},
        "message": None,
        "integration_name": None,
        "integration_icon_url": None,
        "icon_name": None,
        "context": None,
        "display_content": None,
        "approval_options": None,
        "approval_key": None,
        "is_mcp_app": None,
        "mcp_server_url": None,
    }
    block.update(overrides)
    return {"type": "content_block_start", "index": index, "content_block": block}


def _tool_result_start(index: int, call_id: str, name: str, now: str, **overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "start_timestamp": now,
        "stop_timestamp": None,
        "flags": None,
        "type": "tool_result",
        "tool_use_id": call_id,
        "name": name,
        "content": [],
        "is_error": False,
        "structured_content": None,
        "meta": None,
        "message": None,
        "integration_name": None,
        "mcp_server_url": None,
        "integration_icon_url": None,
        "icon_name": None,
        "display_content": None,
    }
    block.update(overrides)
    return {"type": "content_block_start", "index": index, "content_block": block}


def _search_results(query: str) -> list[dict[str, Any]]:
    """Two made-up ``knowledge`` items for *query*, shaped as in the 2026-04-30 capture."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-") or "query"
    items = []
    for n in (1, 2):
        domain = f"example{n}.org"
        items.append(
            {
                "type": "knowledge",
                "title": f"{query} - result {n}",
                "url": f"https://{domain}/{slug}",
                "metadata": {
                    "type": "webpage_metadata",
                    "site_domain": domain,
                    "favicon_url": f"https://www.google.com/s2/favicons?sz=64&domain={domain}",
                    "site_name": f"Example {n}",
                },
                "is_missing": False,
            }
        )
    return items


def _citation(item: dict[str, Any]) -> dict[str, Any]:
    cite_id = str(uuid.uuid4())
    meta = item["metadata"]
    return {
        "uuid": cite_id,
        "title": item["title"],
        "url": item["url"],
        "metadata": meta,
        "origin_tool_name": "web_search",
        "sources": [
            {
                "title": item["title"],
                "subtitles": None,
                "url": item["url"],
                "resource_type": None,
                "icon_url": meta["favicon_url"],
                "source": meta["site_name"],
                "content_body": None,
                "uuid": cite_id,
            }
        ],
    }


def _text_start(index: int, now: str) -> dict[str, Any]:
    start = _frame_template("stream-2026-03-text.sse", "content_block_start")
    start["index"] = index
    start["content_block"]["start_timestamp"] = now
    return start


def _text_frames(index: int, text: str, now: str, stop: str) -> Iterator[dict[str, Any]]:
    yield _text_start(index, now)
    for piece in _pieces(text):
        yield _delta(index, {"type": "text_delta", "text": piece})
    yield {"type": "content_block_stop", "index": index, "stop_timestamp": stop}


def _search_frames(index: int, query: str, tail: str, now: str) -> Iterator[dict[str, Any]]:
    """One web search as claude.ai streams it (docs/protocol.md §7.2): the ``tool_use`` block, the
    ``tool_result`` block whose one delta holds the whole result list, then text with a citation."""
    call_id = _tool_id()
    yield _tool_use_start(index, call_id, "web_search", now, icon_name="globe", message="Searching the web")
    for piece in _json_fragments({"query": query}):
        yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
    yield {"type": "content_block_stop", "index": index, "stop_timestamp": now}
    results = _search_results(query)
    yield _tool_result_start(index + 1, call_id, "web_search", now, icon_name="globe")
    yield _delta(index + 1, {"type": "input_json_delta", "partial_json": json.dumps(results)})
    yield {"type": "content_block_stop", "index": index + 1, "stop_timestamp": now}
    text = index + 2
    citation = _citation(results[0])
    yield _text_start(text, now)
    yield _delta(text, {"type": "text_delta", "text": f"Searched the web for {query}. "})
    yield _delta(text, {"type": "citation_start_delta", "citation": citation})
    yield _delta(text, {"type": "text_delta", "text": f"According to {results[0]['title']}, it is covered."})
    yield _delta(text, {"type": "citation_end_delta", "citation_uuid": citation["uuid"]})
    for piece in _pieces(" " + tail):
        yield _delta(text, {"type": "text_delta", "text": piece})
    yield {"type": "content_block_stop", "index": text, "stop_timestamp": now}


@dataclass
class _HeldTurn:
    """A completion paused at client tool calls, waiting for ``tool_result`` POSTs (docs/protocol.md §6.2 to §6.4)."""

    calls: list[ToolCall]
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def complete(self) -> bool:
        return all(call.result is not None for call in self.calls)


def _severity(percent: float) -> str:
    return "critical" if percent >= 100 else "warning" if percent >= 80 else "normal"


@dataclass
class _ScriptedTurn(_Turn):
    """A turn whose middle blocks come from *middle(first_index)* (e.g. a web search)."""

    middle: Callable[[int], Iterator[dict[str, Any]]] = lambda index: iter(())

    def events(self) -> Iterator[dict[str, Any]]:
        yield self.start
        index = 0
        if self.thinking:
            yield from self._thinking_block(index, self.thinking)
            index += 1
        yield from self.middle(index)
        yield from self._finish(self.stop_reason)


# --------------------------------------------------------------------------- the server


class FakeClaude:
    """A claude.ai look-alike HTTP server; see the module docstring for behaviours and generations."""

    def __init__(
        self, *, protocol: str = "both", clock: Callable[[], float] = time.time, strict_models: bool = False
    ) -> None:
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
        # 2026 additions (see the module docstring)
        self.models: list[FakeModel] = default_models()
        self.strict_models = strict_models
        self.tool_calls: dict[str, ToolCall] = {}
        self.searches: list[str] = []
        self.ping_interval = 1.0
        self.tool_wait_timeout = 300.0
        self.upload_max_bytes = 30 * 1024 * 1024
        self._held: dict[str, _HeldTurn] = {}

    # -- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on *host*:*port* (0 = any free port) and set :attr:`base_url`."""
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        # claude.ai's edge does not drop connection bursts; aiohttp's default queue of 128 would
        # (Linux then drops SYNs, resent after 1, 3, 7... s), so a load test would measure that.
        await web.TCPSite(self._runner, host, port, backlog=4096).start()
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
        **options: Any,
    ) -> Account:
        """Add an account. Each entry of *orgs* overrides fields of a default org for *plan*
        (e.g. ``[{"capabilities": ["api"]}, {}]`` = an api-only org, then the chat org).
        *options* set the other :class:`Account` fields (``models``, ``limit_shape``, …)."""
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
            **options,
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
        # 2026 additions
        for prefix in ("/edge-api", "/api"):
            app.router.add_get(f"{prefix}/bootstrap/{{org}}/app_start", self._app_start)
            app.router.add_get(f"{prefix}/bootstrap", self._bootstrap)
        app.router.add_patch("/api/account/settings", self._account_settings_patch)
        app.router.add_post(f"{conv}/tool_result", self._tool_result)
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
        if not request.path.startswith(("/api/", "/edge-api/")):
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
        settings["enabled_web_search"] = account.enabled_web_search
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
        if self.protocol != "2025" and (
            account.limit_shape != "basic" or account.exhausted is not None or account.resets_at_format != "s"
        ):
            return self._limit_frame_2026(account)
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
        by_body = self.protocol != "2025" and body.get("thinking_mode") in ("extended", "auto")
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
        if account.limit_shape != "basic" or account.exhausted is not None:
            return web.json_response(self._usage_2026(account))
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
        self._drop_uploads(conv.uuid)
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
        wiggle = "conv" in request.match_info
        if wiggle and (failure := self._wiggle_failure(request)):
            return failure
        info = await _read_file_part(request)
        if info is None:
            return _error(400, "invalid_request_error", "A multipart part 'file' with a filename is required")
        if refusal := _upload_refusal(info, self.upload_max_bytes):
            return refusal
        file_uuid = str(uuid.uuid4())
        info.update(
            file_uuid=file_uuid,
            conversation=request.match_info["conv"] if wiggle else None,
            session_key=request[_ACCOUNT].session_key,
            org_id=request.match_info["org"],
        )
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
        if wiggle and body["file_kind"] == "image":  # images: a timestamp and preview urls (docs/protocol.md §8.1)
            asset = f"/api/{request.match_info['org']}/files/{file_uuid}"
            body.update(
                created_at=self._now_iso(),
                thumbnail_url=f"{asset}/thumbnail",
                preview_url=f"{asset}/preview",
                thumbnail_asset={"url": f"{asset}/thumbnail", "file_variant": "thumbnail"},
                preview_asset={"url": f"{asset}/preview", "file_variant": "preview"},
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
        if failure := self._completion_failure_2026(account, model, body):
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
        deltas = reply.text_deltas(body["prompt"])
        if reply.text is None and reply.deltas is None and (reveal := self._reveal(body)):
            deltas += _pieces(reveal)
        turn = _Turn(
            start=self._message_start(body),
            limit=self._limit_frame(account),
            deltas=_lengthen_first(deltas, faults.long_line_bytes),
            thinking=_pieces(thinking) if thinking else None,
            stop_reason=reply.stop_reason,
            error_after=reply.error_after,
            noise=framing.noise,
            legacy=framing.legacy or body["rendering_mode"] == "raw",
            overloaded=account.behaviour == "overloaded",
            clock=self.clock,
        )
        if special := await self._completion_2026(request, conv, turn, framing, reply):
            return special
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
                    await asyncio.sleep(_RESET_GRACE)
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

    # -- 2026 additions: models, thinking, usage, client tools, web search, uploads

    def models_of(self, account: Account) -> list[FakeModel]:
        """The catalog *account* sees in ``app_start``: :attr:`Account.models` (ids) or all models."""
        if account.models is None:
            return list(self.models)
        return [m for m in self.models if m.id in account.models]

    def can_use(self, account: Account, model: FakeModel) -> bool:
        """Whether *account* may send *model*: it is in its catalog and its plan reaches the tier."""
        listed = account.models is None or model.id in account.models
        return listed and TIERS.index(model.minimum_tier) <= TIERS.index(account.plan)

    def _model_failure(
        self, account: Account, model_id: str | None, body: dict[str, Any]
    ) -> web.Response | None:
        """403 model not available (docs/protocol.md §11.5) and, with :attr:`strict_models`, the
        thinking check (docs/protocol.md §9.3)."""
        if model_id is None:
            return None
        model = next((m for m in self.models if m.id == model_id), None)
        if model is None:
            return _error(403, "permission_error", MODEL_NOT_AVAILABLE) if self.strict_models else None
        if not self.can_use(account, model):
            return _error(403, "permission_error", MODEL_NOT_AVAILABLE)
        return self._thinking_failure(model, body) if self.strict_models else None

    @staticmethod
    def _thinking_failure(model: FakeModel, body: dict[str, Any]) -> web.Response | None:
        """400 for a ``thinking_mode`` / ``effort`` the model's selector does not list.

        claude.ai's body for this is unpublished (docs/protocol.md §9.3); the fake uses the
        documented 2026 envelope (``details``, ``request_id``) with ``invalid_request_error``.
        ``thinking_mode: "off"`` (or none) is accepted on every model.
        """
        mode, effort = body.get("thinking_mode"), body.get("effort")
        if mode not in (None, "off") and mode not in model.modes:
            allowed = ", ".join(model.modes) or "none"
            return _error_2026(
                400,
                "invalid_request_error",
                f"thinking_mode {mode!r} is not available for {model.id} (allowed: {allowed})",
            )
        if effort is not None and effort not in model.efforts:
            allowed = ", ".join(model.efforts) or "none"
            return _error_2026(
                400,
                "invalid_request_error",
                f"effort {effort!r} is not available for {model.id} (allowed: {allowed})",
            )
        return None

    def _selector_entry(self, account: Account, model: FakeModel) -> dict[str, Any]:
        return {
            "id": model.id,
            "name": model.name,
            "short_name": model.name.split(" ")[0],
            "description": f"{model.name} (fake)",
            "section": model.section,
            "quick_select": model.section == "main",
            "disabled": not self.can_use(account, model),
            "capabilities": dict(_CAPABILITIES),
            "thinking": model.thinking,
            "hard_limit": 190000,
        }

    async def _app_start(self, request: web.Request) -> web.Response:
        """``GET /edge-api/bootstrap/{org}/app_start`` (docs/protocol.md §9.1 to §9.3)."""
        account = request[_ACCOUNT]
        catalog = self.models_of(account)
        usable = [m for m in catalog if self.can_use(account, m)]
        body = await self._bootstrap_body(request)
        body.update(
            org_statsig={},
            org_growthbook={},
            system_prompts=None,
            current_user_access={"plan": account.plan},
            model_selector_state=[{"id": "chat", "model": usable[0].id if usable else None}],
            model_selector_config=[
                {"id": "chat", "models": [self._selector_entry(account, m) for m in catalog]}
            ],
            claude_ai_available_models={
                "models": [
                    {"model_id": m.id, "name": m.name, "minimum_tier": m.minimum_tier} for m in catalog
                ]
            },
            memory_mode=None,
            org_feature_flags={},
        )
        return web.json_response(body)

    async def _bootstrap_body(self, request: web.Request) -> dict[str, Any]:
        account = request[_ACCOUNT]
        memberships = [
            {"organization": {**org, "claude_ai_bootstrap_models_config": None}} for org in account.orgs
        ]
        return {
            "account": {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_OID, account.session_key)),
                "memberships": memberships,
            }
        }

    async def _bootstrap(self, request: web.Request) -> web.Response:
        """``GET /edge-api/bootstrap`` without an org: the account identity only."""
        return web.json_response(await self._bootstrap_body(request))

    async def _account_settings_patch(self, request: web.Request) -> web.Response:
        """``PATCH /api/account/settings``: the account default for ``enabled_web_search`` (docs/protocol.md §7.1)."""
        body = request[_CALL].json
        if isinstance(body, dict) and "enabled_web_search" in body:
            request[_ACCOUNT].enabled_web_search = True if body["enabled_web_search"] else None
        return web.json_response(None)

    # usage and limits (docs/protocol.md §10)

    def _window_time(self, account: Account, epoch: int) -> int | str:
        if account.resets_at_format == "ms":
            return epoch * 1000
        if account.resets_at_format == "iso":
            return datetime.fromtimestamp(epoch, UTC).isoformat()
        return epoch

    def _window(
        self, account: Account, epoch: int, utilization: float, exceeded: bool = False
    ) -> dict[str, Any]:
        window: dict[str, Any] = {
            "status": "exceeded_limit" if exceeded else "within_limit",
            "resets_at": self._window_time(account, epoch),
            "utilization": utilization,
        }
        if exceeded:
            window["surpassed_threshold"] = 1.0
        return window

    def _scoped_model(self, account: Account) -> FakeModel | None:
        if account.exhausted in (None, "all"):
            return None
        known = next((m for m in self.models if m.id == account.exhausted), None)
        return known or FakeModel(str(account.exhausted), str(account.exhausted))

    def _exceeded_object(self, account: Account, scoped: FakeModel | None) -> dict[str, Any]:
        """The 2026 ``exceeded_limit`` object (fixture ``error-429-exceeded-limit-2026``): the all-model
        five-hour window, or *scoped*'s weekly window (``7d_oi``, ``weekly_scoped``)."""
        inner: dict[str, Any] = _fixture_json("error-429-exceeded-limit-2026.message.json")
        r5, r7 = self._window_reset(account, 5), self._window_reset(account, 7 * 24)
        u = account.utilization
        if scoped is None:
            inner["resetsAt"] = r5
            inner["windows"] = {
                "5h": self._window(account, r5, 1.0, True),
                "7d": self._window(account, r7, u),
            }
            inner["resolved"]["limit"]["resets_at"] = datetime.fromtimestamp(r5, UTC).isoformat()
        else:
            inner.update(resetsAt=r7, perModelLimit=True, representativeClaim="seven_day")
            inner["windows"] = {
                "5h": self._window(account, r5, u),
                "7d": self._window(account, r7, u),
                "7d_oi": self._window(account, r7, 1.0, True),
            }
            inner["resolved"]["limit"] = self._scoped_limit(scoped, 100, r7)
        inner["resolved"].update(spend=None, disabled_reason=None, notice={"title": "Limit reached"})
        return inner

    @staticmethod
    def _scoped_limit(model: FakeModel, percent: int, resets_at: int) -> dict[str, Any]:
        return {
            "kind": "weekly_scoped",
            "group": "weekly",
            "percent": percent,
            "severity": _severity(percent),
            "resets_at": datetime.fromtimestamp(resets_at, UTC).isoformat(),
            "scope": {"model": {"id": model.id, "display_name": model.name}, "surface": None},
            "is_active": percent >= 100,
        }

    def _exhausted_failure(self, account: Account, model_id: str | None) -> web.Response | None:
        """429 for a send that an exhausted window refuses (docs/protocol.md §11.1)."""
        scoped = self._scoped_model(account)
        if account.exhausted == "all":
            inner = self._exceeded_object(account, None)
        elif scoped is not None and model_id == scoped.id:
            inner = self._exceeded_object(account, scoped)
        else:
            return None
        return _error(429, "rate_limit_error", _compact(inner))

    def _limit_frame_2026(self, account: Account) -> dict[str, Any]:
        """In-stream ``message_limit`` in the 2026 shapes (docs/protocol.md §10.2)."""
        if account.behaviour == "exceeded_in_stream":
            return {"type": "message_limit", "message_limit": self._exceeded_object(account, None)}
        r5, r7 = self._window_reset(account, 5), self._window_reset(account, 7 * 24)
        u = account.utilization
        windows = {"5h": self._window(account, r5, u), "7d": self._window(account, r7, u)}
        scoped = self._scoped_model(account)
        if account.limit_shape == "full" or scoped is not None:
            windows["7d_oi"] = self._window(account, r7, 1.0 if scoped else u, scoped is not None)
        frame = _frame_template("stream-2026-03-text.sse", "message_limit")
        if account.limit_shape != "full":
            frame["message_limit"]["windows"] = windows
            return frame
        windows["overage"] = self._window(account, r7 + 86400, 0.0)
        percent = round(u * 100)
        session = {
            "kind": "session",
            "group": "session",
            "percent": percent,
            "severity": _severity(percent),
            "resets_at": datetime.fromtimestamp(r5, UTC).isoformat(),
            "scope": None,
            "is_active": True,
        }
        frame["message_limit"] = {
            "type": "within_limit",
            "overageStatus": "rejected",
            "resetsAt": None,
            "remaining": None,
            "perModelLimit": None,
            "representativeClaim": "five_hour",
            "overageResetsAt": None,
            "overageInUse": False,
            "windows": windows,
            "resolved": {
                "status": "within",
                "limit": self._scoped_limit(scoped, 100, r7) if scoped else session,
                "spend": None,
                "disabled_reason": None,
                "notice": None,
            },
        }
        return frame

    def _usage_2026(self, account: Account) -> dict[str, Any]:
        """``/usage`` in the 2026 shape (docs/protocol.md §10.1); ``free``: every window null, no limits."""
        keys = (
            "five_hour",
            "seven_day",
            "seven_day_oauth_apps",
            "seven_day_opus",
            "seven_day_sonnet",
            "seven_day_cowork",
            "seven_day_omelette",
            "tangelo",
            "iguana_necktie",
            "omelette_promotional",
        )
        body: dict[str, Any] = dict.fromkeys(keys)
        body.update(extra_usage=None, limits=[])
        if account.limit_shape == "free":
            return body
        r5, r7 = self._window_reset(account, 5), self._window_reset(account, 7 * 24)
        pct = round(account.utilization * 100, 1)
        five = 100.0 if account.exhausted == "all" else pct

        def window(utilization: float, epoch: int) -> dict[str, Any]:
            return {"utilization": utilization, "resets_at": datetime.fromtimestamp(epoch, UTC).isoformat()}

        body.update(five_hour=window(five, r5), seven_day=window(pct, r7), seven_day_sonnet=window(pct, r7))
        body["extra_usage"] = {
            "is_enabled": False,
            "monthly_limit": None,
            "used_credits": None,
            "utilization": None,
            "currency": None,
            "disabled_reason": None,
        }
        scoped = self._scoped_model(account) or next(m for m in default_models() if m.id == "claude-fable-5")
        scoped_percent = 100 if account.exhausted not in (None, "all") else round(pct)
        limits = [
            {
                "kind": "session",
                "group": "session",
                "percent": round(five),
                "severity": _severity(round(five)),
                "resets_at": window(five, r5)["resets_at"],
                "scope": None,
                "is_active": False,
            },
            {
                "kind": "weekly_all",
                "group": "weekly",
                "percent": round(pct),
                "severity": _severity(round(pct)),
                "resets_at": window(pct, r7)["resets_at"],
                "scope": None,
                "is_active": False,
            },
            self._scoped_limit(scoped, scoped_percent, r7),
        ]
        binding = max(limits, key=lambda limit: limit["percent"])
        for limit in limits:
            limit["is_active"] = limit is binding
        body["limits"] = limits
        return body

    # completions: tools, search, files

    def _completion_failure_2026(
        self, account: Account, model: str | None, body: dict[str, Any]
    ) -> web.Response | None:
        if reason := _validate_tools(body.get("tools")):
            return _error(400, "invalid_request_error", reason)
        if failure := self._model_failure(account, model, body):
            return failure
        if failure := self._exhausted_failure(account, model):
            return failure
        files = body.get("files") or []
        if not isinstance(files, list):
            return _error(400, "invalid_request_error", "files: Input should be a valid list")
        for n, file_uuid in enumerate(files):
            info = self.uploads.get(file_uuid) if isinstance(file_uuid, str) else None
            if info is None or info.get("session_key") not in (None, account.session_key):
                return _error(400, "invalid_request_error", f"files.{n}: File not found")
        return None

    def _seen_text(self, body: dict[str, Any]) -> str:
        """Everything the model reads: attachments, uploaded files' text, then the prompt."""
        parts = [
            a.get("extracted_content") or "" for a in body.get("attachments") or [] if isinstance(a, dict)
        ]
        parts += [_file_text(self.uploads[f]) for f in body.get("files") or [] if f in self.uploads]
        parts.append(str(body.get("prompt") or ""))
        return "\n".join(parts)

    def _reveal(self, body: dict[str, Any]) -> str:
        """What the default echo adds so tests see what reached the model: uploaded documents (name
        and text) and tool results found in the transcript (text after the call id's last mention)."""
        lines = []
        for file_uuid in body.get("files") or []:
            info = self.uploads[file_uuid]
            if info["content_type"] not in _IMAGE_TYPES:
                text = " ".join(_file_text(info).split())[:200]
                lines.append(f"[file {info['filename']}: {text}]")
        for attachment in body.get("attachments") or []:
            if isinstance(attachment, dict) and attachment.get("kind") == "file":
                text = " ".join(str(attachment.get("extracted_content") or "").split())[:200]
                lines.append(f"[file {attachment.get('file_name')}: {text}]")
        seen = self._seen_text(body)
        for call in self.tool_calls.values():
            suffix = call.id.removeprefix("toolu_")
            at = seen.rfind(suffix)
            if at >= 0:
                after = " ".join(seen[at + len(suffix) : at + len(suffix) + 300].split())
                lines.append(f"[tool result {call.name} {call.id}: {after}]")
        return (" " + " ".join(lines)) if lines else ""

    def _answered(self, seen: str) -> Callable[[_Directive], bool]:
        answered = {c.key for c in self.tool_calls.values() if c.id.removeprefix("toolu_") in seen}
        return lambda directive: directive.key in answered

    async def _completion_2026(
        self, request: web.Request, conv: Conversation, turn: _Turn, framing: Framing, reply: Reply
    ) -> web.StreamResponse | None:
        """Stream client tool calls or a web search when the prompt asks for them, else None."""
        body = request[_CALL].json
        if turn.legacy or turn.overloaded or turn.error_after is not None:
            return None
        seen = self._seen_text(body)
        tools = body.get("tools")
        client_tools = _client_tool_names(tools)
        group = [d for d in _next_tool_group(seen, self._answered(seen)) if d.name in client_tools]
        if group:
            calls = [ToolCall(_tool_id(), d.name, d.args, conv.uuid, d.key) for d in group]
            for call in calls:
                self.tool_calls[call.id] = call
            return await self._stream_tool_turn(request, conv, turn, framing, reply.delay, calls)
        searches = _SEARCH_DIRECTIVE.findall(seen)
        if searches and conv.settings.get("enabled_web_search") is True and _has_web_search_tool(tools):
            query, tail = searches[-1].strip(), "".join(turn.deltas)
            now = self._now_iso()
            scripted = _ScriptedTurn(
                **{f.name: getattr(turn, f.name) for f in dataclasses.fields(_Turn)},
                middle=lambda index: _search_frames(index, query, tail, now),
            )
            self.searches.append(query)
            return await self._stream(request, conv, scripted, framing, reply.delay)
        return None

    def _now_iso(self) -> str:
        return _iso(self.clock())

    async def _stream_tool_turn(
        self,
        request: web.Request,
        conv: Conversation,
        turn: _Turn,
        framing: Framing,
        delay: float,
        calls: list[ToolCall],
    ) -> web.StreamResponse:
        """Stream the ``tool_use`` blocks, then hold the response open with comment pings
        (docs/protocol.md §6.2, §6.4) until every call has a ``tool_result`` POST (the stream resumes with the results echoed
        and a text reply), ``stop_response``, the client's disconnect, or :attr:`tool_wait_timeout`
        (then ``message_delta`` ``tool_use``)."""
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        )
        await resp.prepare(request)
        wire = _Wire(resp, framing)
        stop = self._live[conv.uuid] = asyncio.Event()
        held = self._held[conv.uuid] = _HeldTurn(calls)
        outcome, open_block = "disconnected", None
        try:
            for frame in self._tool_call_frames(turn, calls):
                if _is_paced(frame):
                    await _pause(stop, delay)
                if stop.is_set():
                    break
                open_block = _open_block(open_block, frame)
                await wire.send(frame)
            outcome = "stopped" if stop.is_set() else await self._hold(resp, framing, stop, held)
            if outcome == "stopped":
                tail = turn.cancel(open_block)
            elif outcome == "answered":
                tail = self._resumed_frames(turn, calls)
            else:
                tail = turn._finish("tool_use")
            for frame in tail:
                await wire.send(frame)
            await resp.write_eof()
        except ConnectionResetError:
            outcome = "disconnected"
        finally:
            for call in calls:
                if call.outcome == "pending":
                    call.outcome = outcome
            if self._live.get(conv.uuid) is stop:
                del self._live[conv.uuid]
            if self._held.get(conv.uuid) is held:
                del self._held[conv.uuid]
        return resp

    def _tool_call_frames(self, turn: _Turn, calls: list[ToolCall]) -> Iterator[dict[str, Any]]:
        yield turn.start
        index = 0
        if turn.thinking:
            yield from turn._thinking_block(index, turn.thinking)
            index += 1
        now = self._now_iso()
        yield from _text_frames(index, f"Calling {', '.join(c.name for c in calls)}.", now, now)
        for call in calls:
            index += 1
            yield _tool_use_start(index, call.id, call.name, now)
            for piece in _json_fragments(call.input):
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
            yield turn._block_stop(index)

    def _resumed_frames(self, turn: _Turn, calls: list[ToolCall]) -> Iterator[dict[str, Any]]:
        """After the results: their echo as ``tool_result`` blocks (CLOVE drops these, docs/protocol.md §6.2), then a
        reply that quotes them, then the usual end of message."""
        index = (1 if turn.thinking else 0) + 1 + len(calls)
        now = self._now_iso()
        quoted = []
        for call in calls:
            result = call.result or {}
            content = result.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            content = content if isinstance(content, list) else []
            yield _tool_result_start(index, call.id, call.name, now, is_error=bool(result.get("is_error")))
            yield _delta(index, {"type": "input_json_delta", "partial_json": json.dumps(content)})
            yield turn._block_stop(index)
            index += 1
            text = " ".join(str(i.get("text", "")) for i in content if isinstance(i, dict))
            quoted.append(f"[tool result {call.name} {call.id}: {text}]")
        yield from _text_frames(index, "Got the results: " + " ".join(quoted), now, now)
        yield from turn._finish(turn.stop_reason)

    async def _hold(
        self, resp: web.StreamResponse, framing: Framing, stop: asyncio.Event, held: _HeldTurn
    ) -> str:
        """Idle with comment pings until the results, a stop, or the timeout; returns the outcome."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.tool_wait_timeout
        next_ping = loop.time() + self.ping_interval
        newline = "\r\n" if framing.crlf else "\n"
        while True:
            if stop.is_set():
                return "stopped"
            if held.complete():
                return "answered"
            now = loop.time()
            if now >= deadline:
                return "timed_out"
            if now >= next_ping:
                await resp.write(_ping_comment(self.clock, newline))
                next_ping = now + self.ping_interval
            held.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(next_ping, deadline, now + 0.05) - now)):
                    await held.wake.wait()

    async def _tool_result(self, request: web.Request) -> web.Response:
        """``POST …/tool_result`` (docs/protocol.md §6.3): resumes the held stream once every call of
        the turn has its result. Failure bodies are unpublished (docs/protocol.md §11.6): 404 in the 2026 envelope for
        an unknown conversation or call, 400 for a body that is not a ``tool_result``."""
        conv, body = self._conversation(request), request[_CALL].json
        if conv is None:
            return _error_2026(404, "not_found_error", "Not found")
        if (
            not isinstance(body, dict)
            or body.get("type") != "tool_result"
            or not isinstance(body.get("tool_use_id"), str)
        ):
            return _error(400, "invalid_request_error", "Body must be a tool_result with a tool_use_id")
        held = self._held.get(conv.uuid)
        call = next((c for c in held.calls if c.id == body["tool_use_id"]), None) if held else None
        if held is None or call is None or call.result is not None:
            return _error_2026(404, "not_found_error", "Not found")
        call.result, call.outcome = body, "answered"
        held.wake.set()
        return web.json_response({})

    # uploads

    def _wiggle_failure(self, request: web.Request) -> web.Response | None:
        """404 when the account's wiggle endpoint is off; 400 for an id that is no conversation uuid
        (docs/protocol.md §8.5: a cowork ``cse_…`` id gets 400; body unpublished)."""
        if not request[_ACCOUNT].wiggle_upload:
            return _error_2026(404, "not_found_error", "Not found")
        try:
            uuid.UUID(request.match_info["conv"])
        except ValueError:
            return _error(400, "invalid_request_error", "Invalid conversation id")
        return None

    def uploads_of(self, account: Account) -> dict[str, dict[str, Any]]:
        """The uploads *account* still has (file uuid -> info)."""
        return {k: v for k, v in self.uploads.items() if v.get("session_key") == account.session_key}

    def _drop_uploads(self, conv_id: str) -> None:
        """Deleting a conversation deletes its wiggle uploads; legacy uploads stay."""
        for file_uuid in [k for k, v in self.uploads.items() if v.get("conversation") == conv_id]:
            del self.uploads[file_uuid]


#: Seconds between the last frame and a mid-stream reset. A connection breaking mid-generation
#: does so after the frames before it arrived; a reset in the same instant would race the reader
#: (aiohttp drops what it had buffered but not yet handed out when the connection fails).
_RESET_GRACE = 0.2


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
