"""What every client dialect provides: one :class:`Dialect` object per API.

The route table (:mod:`claude2api.http.routes`) attaches a dialect to each route; the generic chat
handler, the relay and the error middleware ask it for everything dialect-specific, so nothing
else knows a wire format. A third dialect is one more module with one more ``Dialect``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import APIError
from claude2api.core.types import ChatRequest, Event


class StreamRenderer(Protocol):
    """Neutral events in, the dialect's SSE bytes out (one renderer per response)."""

    @property
    def done(self) -> bool: ...
    def feed(self, event: Event) -> bytes: ...
    @property
    def output_tokens(self) -> int: ...
    def finish(self) -> bytes: ...
    def keepalive(self) -> bytes: ...


class Collector(Protocol):
    """Neutral events in, the dialect's whole (non-stream) response body out."""

    @property
    def done(self) -> bool: ...
    def feed(self, event: Event) -> None: ...
    @property
    def output_tokens(self) -> int: ...
    def result(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """What a renderer needs to know of the request it answers.

    ``request`` is the client's request as parsed (its model is echoed, its stop strings and
    ``max_tokens`` apply); ``prompt_tokens`` is estimated after the plugins ran.
    """

    request: ChatRequest
    options: Any
    prompt_tokens: int
    thinking_output: str


@dataclass(frozen=True, slots=True)
class Dialect:
    """One client API: parsing, rendering and error shapes."""

    name: str
    #: A decoded request body -> the neutral request and the dialect's own rendering options.
    parse: Callable[[object, ModelCatalog], tuple[ChatRequest, Any]]
    stream: Callable[[ReplySpec], StreamRenderer]
    collect: Callable[[ReplySpec], Collector]
    #: The JSON body of an error response (``request_id`` for dialects that carry it in the body).
    error_body: Callable[[APIError, str | None], dict[str, Any]]
    #: An in-band error after the response was committed; the stream's last frame.
    error_frame: Callable[[Any, APIError], bytes]
    #: What a valid request (its body and its parse) asks for that cannot be honoured and is no 400:
    #: short notes such as ``"temperature ignored"``, for the request's warning line.
    unhonoured: Callable[[dict[str, Any], ChatRequest], list[str]] = lambda body, request: []
