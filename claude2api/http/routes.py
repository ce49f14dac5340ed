"""The route table, as data: which path answers on which prefixes, in which dialect, with what access.

:func:`add_routes` registers every :class:`Route` on each of its prefixes and remembers, per
registered aiohttp route, the :class:`Endpoint` it serves; the HTTP middlewares read that
(:func:`endpoint_of`) instead of looking at the URL: the error shape comes from the endpoint's
dialect, authentication from its access. To add a route, add a row to :data:`ROUTES`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractRoute

from claude2api.config import Settings
from claude2api.dialects.anthropic import ANTHROPIC
from claude2api.dialects.base import Dialect
from claude2api.dialects.openai import OPENAI
from claude2api.dialects.responses import RESPONSES
from claude2api.http import handlers, responses
from claude2api.http.metrics import metrics_handler

#: Every dialect by name.
DIALECTS: dict[str, Dialect] = {d.name: d for d in (OPENAI, ANTHROPIC, RESPONSES)}


class Access(enum.Enum):
    PUBLIC = "public"  # anyone (health)
    API_KEY = "api_key"  # an API key when APIKEY is set; free under the mirror prefix
    CHAT = "chat"  # an API key; under the mirror prefix, the caller's own claude.ai session key
    ADMIN = "admin"  # the admin key; the route is off without one
    METRICS = "metrics"  # the metrics key or the admin key; off on this port without either


class Prefixes(enum.Enum):
    """Where a route answers; the mirror prefix is added to every API group when mirror mode is on."""

    ROOT = "root"  # only at the root, never mirrored
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    ALL_APIS = "all_apis"  # both SDKs read these (the model list)


#: Base URLs pasted with or without ``/v1`` (an OpenAI client adds none, an Anthropic SDK adds its own).
_PREFIXES = {
    Prefixes.ROOT: ("",),
    Prefixes.OPENAI: ("/v1", "/hf/v1", "", "/v1/v1"),
    Prefixes.ANTHROPIC: ("/v1", "/v1/v1"),
    Prefixes.ALL_APIS: ("/v1", "/hf/v1", "", "/v1/v1"),
}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # after the prefix
    handler: Handler
    prefixes: Prefixes
    access: Access = Access.API_KEY
    #: The error shape (and for chat routes the whole wire format); ``None``: OpenAI's shape.
    dialect: Dialect | None = None
    #: Under the mirror prefix, bodies are capped at MIRROR_COUNT_TOKENS_MAX_KB (no credential needed).
    small_mirror_body: bool = False


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", handlers.health, Prefixes.ROOT, Access.PUBLIC),
    Route("GET", "/openapi.json", handlers.openapi_document, Prefixes.ROOT, Access.PUBLIC),
    Route("GET", "/admin/sessions", handlers.admin_sessions, Prefixes.ROOT, Access.ADMIN),
    Route("GET", "/metrics", metrics_handler, Prefixes.ROOT, Access.METRICS),
    Route("POST", "/chat/completions", handlers.chat_handler(OPENAI), Prefixes.OPENAI, Access.CHAT, OPENAI),
    Route("POST", "/responses", responses.create_response, Prefixes.OPENAI, Access.CHAT, RESPONSES),
    Route("GET", "/responses/{response_id}", responses.get_response, Prefixes.OPENAI, dialect=RESPONSES),
    Route("DELETE", "/responses/{response_id}", responses.delete_response, Prefixes.OPENAI, dialect=RESPONSES),
    Route("POST", "/messages", handlers.chat_handler(ANTHROPIC), Prefixes.ANTHROPIC, Access.CHAT, ANTHROPIC),
    Route(
        "POST", "/messages/count_tokens", handlers.count_tokens, Prefixes.ANTHROPIC, dialect=ANTHROPIC,
        small_mirror_body=True,
    ),
    Route("GET", "/models", handlers.list_models, Prefixes.ALL_APIS),
    Route("GET", "/models/{model_id}", handlers.get_model, Prefixes.ALL_APIS),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route as registered on one prefix."""

    route: Route
    mirror: bool  # registered under the mirror prefix

    @property
    def dialect(self) -> Dialect:
        return self.route.dialect or OPENAI

    @property
    def credential_required(self) -> bool:
        """Whether a request must carry a key header (which a browser cannot add without a preflight)."""
        access = self.route.access
        if self.mirror:
            return access is Access.CHAT
        return access in (Access.ADMIN, Access.METRICS)


@dataclass
class RouteIndex:
    """Endpoints by registered aiohttp route, and by path for requests that matched none (404, 405)."""

    by_route: dict[AbstractRoute, Endpoint]
    by_path: dict[str, Endpoint]
    mirror_prefix: str | None

    def unmatched(self, path: str) -> Endpoint:
        """The endpoint that owns ``path`` or its nearest parent path, for a request no route took
        (``GET /v1/messages`` is a 405 in Anthropic's shape); else an OpenAI-shaped API endpoint."""
        mirror = self.mirror_prefix is not None and (path == self.mirror_prefix or path.startswith(self.mirror_prefix + "/"))
        probe = path.rstrip("/")
        while probe:
            found = self.by_path.get(probe)
            if found is not None:
                owner = found.route
                access = owner.access if owner.access in (Access.ADMIN, Access.METRICS) else Access.API_KEY
                return Endpoint(replace(_UNKNOWN, dialect=owner.dialect, access=access), mirror)
            probe = probe.rpartition("/")[0]
        return Endpoint(_UNKNOWN, mirror)


#: Never registered: what a request no route took is served by (an error, in its owner's dialect).
_UNKNOWN = Route("*", "", handlers.health, Prefixes.ROOT)
ROUTE_INDEX = web.AppKey("claude2api.route_index", RouteIndex)


def add_routes(app: web.Application, settings: Settings) -> None:
    """Register :data:`ROUTES`; mirror mode adds every API route under ``MIRROR_API_PREFIX + /v1``."""
    mirror_prefix = settings.mirror_api_prefix if settings.enable_mirror_api else None
    index = RouteIndex({}, {}, mirror_prefix)
    for route in ROUTES:
        prefixes = [(p, False) for p in _PREFIXES[route.prefixes]]
        if mirror_prefix is not None and route.prefixes is not Prefixes.ROOT:
            prefixes.append((mirror_prefix + "/v1", True))
        for prefix, mirror in prefixes:
            endpoint = Endpoint(route, mirror)
            path = prefix + route.path
            if route.method == "GET":
                registered = app.router.add_get(path, route.handler)  # and HEAD
            else:
                registered = app.router.add_route(route.method, path, route.handler)
            index.by_route[registered] = endpoint
            # The path and its parents, for requests that match no route (first route wins).
            static = path.partition("/{")[0]
            while static:
                index.by_path.setdefault(static, endpoint)
                static = static.rpartition("/")[0]
    app[ROUTE_INDEX] = index


def endpoint_of(request: web.Request) -> Endpoint:
    """The endpoint ``request`` was routed to (or the one owning its path, when none matched)."""
    index = request.app[ROUTE_INDEX]
    endpoint = index.by_route.get(request.match_info.route)
    return endpoint if endpoint is not None else index.unmatched(request.path)
