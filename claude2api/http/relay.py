"""Running the chat chain for an HTTP request: commit point, streaming and collecting.

The HTTP status must be decided before the first byte, so the chain is started and read up to its
first content event before any response exists: every failure up to there (bad input, no session,
upstream refusal after failover) becomes a JSON error with the right status. After that the reply
is streamed (or collected), and a late failure becomes an in-band error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncGenerator, Callable
from typing import Any

from aiohttp import web

from claude2api.core.failures import APIError, UpstreamError, bad_request, upstream_api_error
from claude2api.core.record import RequestRecord
from claude2api.core.types import CONTENT_EVENTS, ChatContext, ChatRequest, Event, Stop, ToolCallStart
from claude2api.dialects.base import Collector, Dialect, StreamRenderer
from claude2api.http.metrics import METRICS
from claude2api.http.services import MIRROR_CREDENTIALS, RECORD, REQUEST_ID, SERVICES
from claude2api.logs import get_logger

log = get_logger(__name__)

#: What a stream says when a chat middleware raised something other than an upstream failure.
CHAIN_FAILED = APIError(500, "internal error in claude2api (a chat middleware failed)", type="server_error")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


#: Deepest nesting of arrays and objects accepted in a request body. Real requests stay under 20
#: (a JSON schema in ``response_format`` or a tool call's input goes deepest); the bound keeps
#: everything that later walks the body (parsers, ``json.dumps``) far from Python's recursion limit.
MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS_OR_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 / -1 as signed bytes


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 that says what is wrong with it.

    The body must be UTF-8 (RFC 8259) and nested at most :data:`MAX_JSON_DEPTH` deep; linear in
    the body size. Lone surrogates (``"\\ud800"``) are left to the dialect's parser
    (:func:`claude2api.dialects.base.without_lone_surrogates`), which every caller goes through.
    """
    raw = await request.read()
    if not raw.strip():
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        text = raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    too_deep = bad_request(f"The request body is nested too deeply: at most {MAX_JSON_DEPTH} levels.")
    try:
        body = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise too_deep
    return body


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in ``raw`` (valid JSON), in a few C-speed passes.

    Escaped backslashes and quotes go first (in that order, so ``\\\\"`` still ends a string);
    then everything but quotes and brackets; then pairs of adjacent quotes (which changes no
    bracket's inside-or-outside of a string) and the strings left; the depth is the highest
    running sum of +1 per opening and -1 per closing bracket. Cheaper than ``json.loads`` itself.
    """
    marks = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKETS_OR_QUOTES)
    brackets = _JSON_STRING.sub(b"", marks.replace(b'""', b""))
    steps = memoryview(brackets.translate(_BRACKET_STEPS)).cast("b")
    return max(itertools.accumulate(steps), default=0)


def chat_context(request: web.Request, chat_request: ChatRequest, dialect: str) -> ChatContext:
    services = request.app[SERVICES]
    ctx = ChatContext(
        request=chat_request,
        request_id=request[REQUEST_ID],
        dialect=dialect,
        settings=services.settings,  # this request keeps them through a reload
        internal=services,
        record=request[RECORD],
    )
    mirror = request.get(MIRROR_CREDENTIALS)
    if mirror is not None:
        ctx.mirror_session = services.mirror_session(*mirror)
    return ctx


async def start(ctx: ChatContext) -> tuple[AsyncGenerator[Event, None], list[Event]]:
    """Run the chain up to its first content event; anything failing before that raises."""
    # ChatHandler promises an AsyncIterator; every chain is an async generator (aclose() below relies on it).
    events: AsyncGenerator[Event, None] = ctx.internal.chain(ctx)  # type: ignore[assignment]
    head: list[Event] = []
    try:
        async for event in events:
            head.append(event)
            if isinstance(event, CONTENT_EVENTS):
                break
    except UpstreamError as exc:
        await events.aclose()
        raise upstream_api_error(exc) from None
    except BaseException:
        await events.aclose()
        raise
    return events, head


async def stream(
    request: web.Request,
    events: AsyncGenerator[Event, None],
    head: list[Event],
    renderer: StreamRenderer,
    dialect: Dialect,
    *,
    keepalive_interval: float = 0,
) -> web.StreamResponse:
    """Relay the chain's events as SSE; a late upstream failure becomes the dialect's error frame,
    typed as its HTTP error would have been (:data:`~claude2api.core.failures.CLIENT_ERRORS`)."""
    record = request[RECORD]
    active_streams = request.app[METRICS].active_streams
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    active_streams.inc()
    pinger = KeepAlive(response, renderer, keepalive_interval)
    tool_calls = 0  # counted here, recorded once at the end: nothing per event but this
    try:
        out = b"".join(renderer.feed(event) for event in head)
        tool_calls = sum(type(event) is ToolCallStart for event in head)
        if out:
            await response.write(out)
        if not renderer.done:
            async for event in events:
                if type(event) is ToolCallStart:
                    tool_calls += 1
                out = renderer.feed(event)
                if out:
                    pinger.writes += 1
                    await response.write(out)
                if renderer.done and not isinstance(event, Stop):
                    break  # cut short (stop sequence, max_tokens): stop the upstream generation
        pinger.stop()
        await response.write(renderer.finish())
    except UpstreamError as exc:
        pinger.stop()
        log.warning("stream_failed_after_commit", failure=exc.failure.value, error=exc.message)
        error = upstream_api_error(exc)
        record.error_code, record.error = error.code or error.type, error.message
        await _write_quietly(response, dialect.error_frame(renderer, error), record)
    except APIError as exc:  # the output guard: the reply broke the request's contract (not JSON, no tool call)
        pinger.stop()
        log.warning("reply_rejected_after_commit", code=exc.code, error=exc.message)
        record.error_code, record.error = exc.code or exc.type, exc.message
        await _write_quietly(response, dialect.error_frame(renderer, exc), record)
    except ConnectionResetError:
        record.client_gone = True
        log.info("client_disconnected")
    except Exception:
        # A chat middleware (a plugin, usually) failed mid-stream: the client gets an error frame
        # where a connection cut would leave it guessing; the traceback goes to the log.
        pinger.stop()
        log.exception("chat_chain_failed_after_commit")
        record.error_code, record.error = CHAIN_FAILED.code or CHAIN_FAILED.type, CHAIN_FAILED.message
        await _write_quietly(response, dialect.error_frame(renderer, CHAIN_FAILED), record)
    finally:
        active_streams.dec()
        record.tool_calls, record.output_tokens = tool_calls, renderer.output_tokens
        record.web_searches = renderer.web_searches
        pinger.stop()
        await events.aclose()
    return response


class KeepAlive:
    """Writes the renderer's keep-alive frame when a stream has been silent for ``interval`` seconds
    (long thinking pauses), so proxies and clients with idle timeouts do not drop the connection."""

    def __init__(self, response: web.StreamResponse, renderer: StreamRenderer, interval: float) -> None:
        self.writes = 0
        self._task: asyncio.Task[None] | None = None
        if interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(response, renderer.keepalive, interval))

    async def _run(self, response: web.StreamResponse, frame: Callable[[], bytes], interval: float) -> None:
        seen = -1
        try:
            while True:
                await asyncio.sleep(interval)
                if self.writes == seen:
                    data = frame()
                    if data:
                        await response.write(data)
                seen = self.writes
        except ConnectionResetError:
            pass

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


async def collect(
    events: AsyncGenerator[Event, None], head: list[Event], collector: Collector, record: RequestRecord
) -> dict[str, Any]:
    """Read the whole reply into the dialect's collector (non-streaming responses)."""
    tool_calls = 0
    try:
        for event in head:
            collector.feed(event)
        tool_calls = sum(type(event) is ToolCallStart for event in head)
        if not collector.done:
            async for event in events:
                if type(event) is ToolCallStart:
                    tool_calls += 1
                collector.feed(event)
                if collector.done and not isinstance(event, Stop):
                    break
    except UpstreamError as exc:
        raise upstream_api_error(exc) from None
    finally:
        record.tool_calls, record.output_tokens = tool_calls, collector.output_tokens
        record.web_searches = collector.web_searches
        await events.aclose()
    return collector.result()


async def _write_quietly(response: web.StreamResponse, data: bytes, record: RequestRecord) -> None:
    try:
        await response.write(data)
    except ConnectionResetError:
        record.client_gone = True
        log.info("client_disconnected")
