"""The listener's own guards, below the HTTP middlewares: a header deadline and a connection cap.

aiohttp's connection protocol (:class:`GuardedHandler`) and its factory and runner, so that a
slow client cannot hold a connection before its request exists, and the process never runs out
of file descriptors in ``accept()``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from claude2api.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    header_read_timeout: float
    max_connections: int


def _raw_error(status: str, message: str, code: str) -> bytes:
    """A whole HTTP response written before any request was parsed; the body reads as an error in
    both dialects (OpenAI's ``error.message``, Anthropic's ``type``/``error.type``)."""
    body = json.dumps({"type": "error", "error": {"type": "api_error", "message": message, "code": code}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol plus a header deadline and the connection cap.

    A client gets ``header_read_timeout`` seconds from connecting (or from the first byte of a
    later request on a kept-alive connection) to finish its request line and headers; then it is
    answered 408 and closed. Beyond the cap a new connection is answered 503 at once and closed,
    before the process runs out of file descriptors and fails in ``accept()``.
    """

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open_connections >= guard.limits.max_connections:
            self._force_close = True
            assert isinstance(transport, asyncio.Transport)
            transport.write(guard.refusal)
            transport.close()
            guard.refused += 1
            if guard.refused == 1 or guard.refused % 1000 == 0:
                log.warning("connection_refused_at_cap", max_connections=guard.limits.max_connections, refused=guard.refused)
            return
        guard.open_connections += 1
        self._counted = True
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count != requests_before:
            self._disarm_header_timer()
        elif self._header_timer is None and self._waiter is not None and data:
            self._arm_header_timer()  # a kept-alive connection started its next request

    def close_after_response(self) -> None:
        """Close once the response is out, without the usual lingering read of an unread body:
        a client that stalled its body gets no more time."""
        self._lingering_time = 0.0

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_timer()
        if self._counted:
            self._counted = False
            self._guard.open_connections -= 1
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._guard.limits.header_read_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is not None and not self._request_in_progress and not self._messages:
            self.transport.write(self._guard.header_timeout_response)
            self.force_close()


class GuardedServer(web.Server):
    """aiohttp's protocol factory, making :class:`GuardedHandler` connections."""

    def __init__(self, *args: Any, limits: ListenerLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.open_connections = 0
        self.refused = 0
        self.refusal = _raw_error(
            "503 Service Unavailable",
            f"claude2api is at its connection limit ({limits.max_connections} open connections, "
            "MAX_CONNECTIONS); try again shortly",
            "too_many_connections",
        )
        self.header_timeout_response = _raw_error(
            "408 Request Timeout",
            f"the request headers did not arrive within {limits.header_read_timeout:g} s (HEADER_READ_TIMEOUT)",
            "request_timeout",
        )

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a :class:`GuardedServer`, built with the app's own handler settings."""

    def __init__(self, app: web.Application, *, limits: ListenerLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            limits=self.limits,
            **plain._kwargs,
        )
