"""The aiohttp application: shared resources, HTTP middlewares and routes.

Resources (the upstream HTTP session, the image-download session, the session pool, the
conversation janitor) live in one typed :class:`~claude2api.services.Services` object, created
and torn down by a cleanup context. HTTP middlewares, outermost first: request id and access log,
error rendering, CORS, authentication.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_socks import ProxyConnector

from . import api_anthropic, api_openai
from .auth import check_api_key, mirror_credentials
from .chat import ChatMiddleware, ChatMiddlewareFactory
from .cleanup import Janitor
from .config import Settings
from .errors import APIError
from .logs import get_logger
from .models import ModelCatalog
from .pipeline import build_chain, claude_web, retry_over_sessions_factory
from .prompt import fetch_images_factory, history_to_file_factory, role_prefix_factory
from .services import MIRROR_CREDENTIALS, REQUEST_ID, SERVICES, Services
from .sessions import SessionPool
from .upstream.client import ClaudeWebClient

log = get_logger(__name__)

def chat_middlewares(settings: Settings) -> list[ChatMiddleware]:
    """Plugins first (they see the client's request), then the built-ins, which are plugins too."""
    factories: list[ChatMiddlewareFactory] = [load_plugin(ref) for ref in settings.plugins]
    factories += [role_prefix_factory, history_to_file_factory, fetch_images_factory, retry_over_sessions_factory]
    middlewares = [mw for mw in (factory(settings) for factory in factories) if mw is not None]
    log.info("chat_middlewares", order=[getattr(mw, "__name__", repr(mw)) for mw in middlewares])
    return middlewares


def load_plugin(ref: str) -> ChatMiddlewareFactory:
    """A plugin's ``chat_middleware`` factory, from a module path or a ``.py`` file path."""
    if ref.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"claude2api_plugin_{Path(ref).stem}", ref)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load plugin file {ref}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(ref)
    factory = getattr(module, "chat_middleware", None)
    if not callable(factory):
        raise ImportError(f"plugin {ref} has no chat_middleware(settings) function")
    return factory


def upstream_session(settings: Settings) -> aiohttp.ClientSession:
    """The one upstream session: proxy-aware, no total timeout (long generations), no shared cookies."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.upstream_connect_timeout, sock_read=settings.upstream_read_timeout
    )
    kwargs: dict[str, Any] = {"timeout": timeout, "cookie_jar": aiohttp.DummyCookieJar(), "read_bufsize": 2**18}
    proxy = settings.proxy
    scheme = urlsplit(proxy).scheme.lower() if proxy else ""
    if scheme.startswith("socks"):
        # aiohttp-socks knows socks4/socks5 only; the "h"/"a" variants mean "let the proxy resolve".
        base = {"socks5h": "socks5", "socks4a": "socks4"}.get(scheme, scheme)
        parts = urlsplit(proxy)
        connector = ProxyConnector.from_url(
            urlunsplit((base, parts.netloc, parts.path, "", "")), rdns=scheme in ("socks5h", "socks4a"), limit=0
        )
        return aiohttp.ClientSession(connector=connector, **kwargs)
    if proxy:
        kwargs["proxy"] = proxy
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), **kwargs)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(
        middlewares=[request_context, error_middleware, cors_middleware, auth_middleware],
        client_max_size=int(settings.max_request_body_mb * 1024 * 1024),
    )
    chain = build_chain(chat_middlewares(settings), claude_web)  # plugin import errors surface here

    async def services_ctx(app: web.Application):
        upstream = upstream_session(settings)
        images = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.image_fetch_timeout))
        client = ClaudeWebClient(upstream, settings.claude_base_url, clock=clock)
        janitor = Janitor(client)
        app[SERVICES] = Services(
            settings=settings,
            catalog=ModelCatalog(settings.models),
            pool=SessionPool(
                [(s.key, s.org_id) for s in settings.sessions],
                clock=clock,
                cooldown_default=settings.cooldown_default_seconds,
                request_rate_cooldown=settings.request_rate_cooldown_seconds,
                max_concurrency=settings.session_max_concurrency,
                state_path=Path(settings.state_file) if settings.state_file else None,
            ),
            claude=client,
            http=images,
            janitor=janitor,
            chain=chain,
            clock=clock,
        )
        try:
            yield
        finally:
            await janitor.idle()
            await upstream.close()
            await images.close()

    app.cleanup_ctx.append(services_ctx)
    app.on_response_prepare.append(_add_common_headers)
    add_routes(app, settings)
    return app


#: Settings that shape listeners, the upstream session or the routes: a reload cannot change them.
RESTART_ONLY = (
    "address",
    "proxy",
    "claude_base_url",
    "upstream_connect_timeout",
    "upstream_read_timeout",
    "max_request_body_mb",
    "image_fetch_timeout",
    "enable_mirror_api",
    "mirror_api_prefix",
    "state_file",
    "log_level",
    "log_format",
)


def apply_settings(services: Services, new: Settings) -> list[str]:
    """Swap in a reloaded configuration; returns the changed settings that need a restart.

    Sessions that stay keep their state (parked, dead, in flight); new ones start healthy (or as
    the state file remembers them). Requests already running finish with what they started with.
    Raises ImportError, before changing anything, when a plugin cannot be loaded.
    """
    chain = build_chain(chat_middlewares(new), claude_web)
    pool = services.pool
    pool.cooldown_default = new.cooldown_default_seconds
    pool.request_rate_cooldown = new.request_rate_cooldown_seconds
    pool.max_concurrency = new.session_max_concurrency
    pool.update_sessions([(s.key, s.org_id) for s in new.sessions])
    services.catalog = ModelCatalog(new.models)
    services.chain = chain
    old, services.settings = services.settings, new
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner production and the test harness share.

    ``handler_cancellation`` cancels a handler as soon as its client goes away, so a stream the
    client abandoned is stopped upstream at once instead of at claude.ai's next token.
    """
    return web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=30)


def add_routes(app: web.Application, settings: Settings) -> None:
    """OpenAI under ``/v1`` and ``/hf/v1`` (and the root and ``/v1/v1`` as aliases); Anthropic under ``/v1`` and ``/v1/v1`` (a base URL pasted
    with ``/v1``, which Anthropic SDKs add themselves); both under the mirror prefix when enabled.
    The model list answers on every prefix: both SDKs read it."""
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi_document)
    app.router.add_get("/admin/sessions", admin_sessions)
    mirror = [settings.mirror_api_prefix + "/v1"] if settings.enable_mirror_api else []
    # "" and /v1/v1: base URLs pasted without /v1, or with it where the client adds its own.
    openai_prefixes = ["/v1", "/hf/v1", "", "/v1/v1", *mirror]
    anthropic_prefixes = ["/v1", "/v1/v1", *mirror]
    for prefix in openai_prefixes:
        app.router.add_post(prefix + "/chat/completions", api_openai.chat_completions)
    for prefix in anthropic_prefixes:
        app.router.add_post(prefix + "/messages", api_anthropic.messages)
        app.router.add_post(prefix + "/messages/count_tokens", api_anthropic.count_tokens)
    for prefix in dict.fromkeys(openai_prefixes + anthropic_prefixes):
        app.router.add_get(prefix + "/models", api_openai.list_models)
        app.router.add_get(prefix + "/models/{model_id}", api_openai.get_model)


async def health(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    states: dict[str, int] = {}
    for session in services.pool.snapshot():
        states[session["state"]] = states.get(session["state"], 0) + 1
    return web.json_response({"status": "ok", "sessions": states})


@cache
def openapi_base() -> dict[str, Any]:
    """The HTTP surface as shipped in ``claude2api/openapi.json`` (routes of the default setup)."""
    return json.loads((resources.files("claude2api") / "openapi.json").read_bytes())


def openapi_for(settings: Settings) -> dict[str, Any]:
    """The document for this configuration: the shipped one, plus the mirror routes when mirror mode is on."""
    doc = copy.deepcopy(openapi_base())
    if settings.enable_mirror_api:
        mirror = settings.mirror_api_prefix + "/v1"
        for path in ("/chat/completions", "/messages", "/messages/count_tokens", "/models", "/models/{model_id}"):
            doc["paths"][mirror + path] = doc["paths"]["/v1" + path]
    return doc


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /openapi.json``, without a key: it tells nothing the README does not."""
    return web.json_response(openapi_for(request.app[SERVICES].settings))


async def admin_sessions(request: web.Request) -> web.Response:
    """Every configured session's state, for operators; keys appear only as fingerprints."""
    services = request.app[SERVICES]
    return web.json_response({"object": "list", "data": services.pool.snapshot()})


# -- HTTP middlewares ------------------------------------------------------------------------


def dialect_of(path: str) -> str:
    return "anthropic" if "/v1/messages" in path else "openai"


def is_mirror_path(request: web.Request) -> bool:
    settings = request.app[SERVICES].settings
    prefix = settings.mirror_api_prefix
    return settings.enable_mirror_api and (request.path == prefix or request.path.startswith(prefix + "/"))


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id on every log line and on the response; one access line per request."""
    request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        if request.path != "/health":
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON in the client's dialect; never a traceback."""
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {
            404: f"Unknown route: {request.method} {request.path}",
            405: f"Method {request.method} is not allowed on {request.path}",
            413: "Request body too large",
        }.get(exc.status, exc.reason)
        return error_response(request, APIError(exc.status, message))
    except Exception:
        log.exception("unhandled_error")
        return error_response(request, APIError(500, "internal error in claude2api", type="server_error"))


def error_response(request: web.Request, error: APIError) -> web.Response:
    request_id = request.get(REQUEST_ID)
    if dialect_of(request.path) == "anthropic":
        body = error.anthropic_body(request_id)
    else:
        body = error.openai_body()
    return web.json_response(body, status=error.status, headers=error.headers)


CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta, "
    "anthropic-dangerous-direct-browser-access, x-request-id"
)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        requested = request.headers.get("Access-Control-Request-Headers")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": requested or CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "86400",
            },
        )
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ("/health", "/openapi.json"):
        return await handler(request)
    if is_mirror_path(request):
        if request.path.endswith("/chat/completions") or request.path.endswith("/messages"):
            request[MIRROR_CREDENTIALS] = mirror_credentials(request)
        return await handler(request)
    settings = request.app[SERVICES].settings
    if request.path.startswith("/admin/"):
        if not settings.admin_key:
            raise APIError(404, "The admin API is off: set ADMIN_KEY to turn it on.", code="admin_disabled")
        check_api_key(request, (settings.admin_key,))
        return await handler(request)
    check_api_key(request, settings.api_keys)
    return await handler(request)


async def _add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Access-Control-Allow-Origin", "*")
    response.headers.setdefault("Access-Control-Expose-Headers", "x-request-id, request-id")
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["x-request-id"] = request_id
        response.headers["request-id"] = request_id
