"""What every client dialect provides: one :class:`Dialect` object per API.

The route table (:mod:`claude2api.http.routes`) attaches a dialect to each route; the generic chat
handler, the relay and the error middleware ask it for everything dialect-specific, so nothing
else knows a wire format. A third dialect is one more module with one more ``Dialect``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol, TypeVar

from claude2api.core.catalog import ModelCatalog, ResolvedModel
from claude2api.core.failures import CLIENT_ERRORS, APIError, Failure, clip, model_not_found
from claude2api.core.types import ChatRequest, Event

#: Every claude.ai model we know of, whoever has it: tells "no account has it" from "no such model".
_KNOWN_MODELS = ModelCatalog()


def unknown_model(catalog: ModelCatalog, model_id: str) -> APIError:
    """The error for an id the catalogue does not serve (every dialect, ``/v1/models/{id}`` too): a
    claude.ai model no account's live list has is a 403 ``model_not_allowed`` naming it; anything
    else a 404 naming the closest ids."""
    if _KNOWN_MODELS.resolve(model_id) is not None:
        return CLIENT_ERRORS[Failure.MODEL_NOT_ALLOWED].error(
            f"the model `{clip(model_id)}` is not available on any configured claude.ai account", param="model"
        )
    return model_not_found(model_id, catalog.suggest(model_id))


def resolve_model(catalog: ModelCatalog, model_id: str) -> ResolvedModel:
    """What ``model_id`` means (:meth:`ModelCatalog.resolve`), or the 404 of :func:`unknown_model`."""
    resolved = catalog.resolve(model_id)
    if resolved is None:
        raise unknown_model(catalog, model_id)
    return resolved


Parsed = TypeVar("Parsed")

_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(parsed: Any) -> Any:
    """``parsed`` with every lone surrogate in its strings as U+FFFD, changed in place.

    ``"\\ud800"`` is valid JSON but not text any encoder takes (UTF-8 for the prompt, the history
    file, an upload); a browser's ``TextEncoder`` makes it U+FFFD, and so do we: a client that cut
    an emoji in half should not lose its request over a character that means nothing anyway.

    It runs on what a parser returns (dataclasses, lists, dicts, tuples, strings; bytes and numbers
    are left alone), not on the raw body: that is exactly the text that will be encoded later,
    and walking it costs no more than parsing did, while walking a whole 32 MB body (most of
    which a parser may ignore) costs seconds on the event loop. Iterative, any depth.
    """

    def fixed(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return value if value.isascii() else _SURROGATE.sub("\ufffd", value)
        if kind in _SCALARS:
            return value
        if kind is tuple:
            return tuple(fixed(item) for item in value)
        if kind is list or kind is dict or is_dataclass(kind):
            pending.append(value)
        return value

    root = [parsed]
    pending: list[object] = [root]
    seen: set[int] = set()  # a shared (or, from a direct caller, cyclic) node is done once
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if type(node) is list:
            node[:] = [fixed(item) for item in node]
        elif type(node) is dict:
            items = [(fixed(key), fixed(value)) for key, value in node.items()]
            node.clear()
            node.update(items)
        else:
            dataclass_type: type = type(node)  # as a plain `type`, mypy sees it is hashable (a cache key)
            for name in _field_names(dataclass_type):
                value = getattr(node, name)
                if (new := fixed(value)) is not value:
                    object.__setattr__(node, name, new)
    return root[0]


#: Values :func:`without_lone_surrogates` has nothing to look at in.
_SCALARS = frozenset({int, float, bool, bytes, type(None)})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def parses_json_body(parse: Callable[[object, ModelCatalog], Parsed]) -> Callable[[object, ModelCatalog], Parsed]:
    """Mark a dialect's request parser: what it returns goes through :func:`without_lone_surrogates`.

    This is the one place text from a client's JSON is made encodable, for every dialect, whoever
    calls the parser (the HTTP handler, a plugin, a test). :class:`Dialect` applies it to a
    ``parse`` that lacks it, so a new dialect cannot forget.
    """
    if getattr(parse, "parses_json_body", False):
        return parse

    @functools.wraps(parse)
    def parse_encodable(body: object, catalog: ModelCatalog) -> Parsed:
        result: Parsed = without_lone_surrogates(parse(body, catalog))
        return result

    parse_encodable.parses_json_body = True  # type: ignore[attr-defined]
    return parse_encodable


class StreamRenderer(Protocol):
    """Neutral events in, the dialect's SSE bytes out (one renderer per response)."""

    @property
    def done(self) -> bool: ...
    def feed(self, event: Event) -> bytes: ...
    @property
    def output_tokens(self) -> int: ...
    #: Web searches claude.ai ran for this reply so far.
    web_searches: int
    def finish(self) -> bytes: ...
    def keepalive(self) -> bytes: ...


class Collector(Protocol):
    """Neutral events in, the dialect's whole (non-stream) response body out."""

    @property
    def done(self) -> bool: ...
    def feed(self, event: Event) -> None: ...
    @property
    def output_tokens(self) -> int: ...
    web_searches: int
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "parse", parses_json_body(self.parse))
