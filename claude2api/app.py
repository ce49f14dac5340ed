"""The aiohttp application: shared resources, HTTP middlewares and routes.

Resources (the upstream HTTP session, the image-download session, the session pool, the
conversation janitor) live in one typed :class:`~claude2api.services.Services` object, created
and torn down by a cleanup context. HTTP middlewares, outermost first: request id and access log,
error rendering, CORS, authentication.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
import resource
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from aiohttp_socks import ProxyConnector

from . import api_anthropic, api_openai, api_responses
from .auth import check_api_key, key_matches, mirror_credentials, presented_key
from .chat import ChatMiddleware, ChatMiddlewareFactory
from .cleanup import Janitor
from .config import ConfigError, Settings, is_loopback
from .dialects.response_store import MemoryResponseStore
from .errors import APIError
from .logs import get_logger
from .models import ModelCatalog
from .pipeline import build_chain, claude_web, retry_over_sessions_factory
from .prompt import fetch_images_factory, history_to_file_factory, role_prefix_factory
from .services import MIRROR_CREDENTIALS, REQUEST_ID, SERVICES, Services
from .sessions import SessionPool
from .upstream.client import ClaudeWebClient

log = get_logger(__name__)

#: The settings the daemon started with: the listener's limits, which a reload cannot change.
STARTUP_SETTINGS = web.AppKey("claude2api.startup_settings", Settings)
#: The browser origin a request may be answered to (CORS), when it is an allowed one.
ALLOWED_ORIGIN = web.RequestKey("claude2api.allowed_origin", str)


def chat_middlewares(settings: Settings) -> list[ChatMiddleware]:
    """Plugins first (they see the client's request), then the built-ins, which are plugins too."""
    factories: list[ChatMiddlewareFactory] = [load_plugin(ref) for ref in settings.plugins]
    factories += [role_prefix_factory, history_to_file_factory, fetch_images_factory, retry_over_sessions_factory]
    middlewares = [mw for mw in (factory(settings) for factory in factories) if mw is not None]
    log.info("chat_middlewares", order=[getattr(mw, "__name__", repr(mw)) for mw in middlewares])
    return middlewares


def chat_middlewares_or_config_error(settings: Settings) -> list[ChatMiddleware]:
    """:func:`chat_middlewares`, with whatever a plugin raises (at import or in its factory) as one
    :class:`ConfigError` line instead of a traceback."""
    try:
        return chat_middlewares(settings)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"PLUGINS: {type(exc).__name__}: {exc}".splitlines()[0][:500]) from None


def load_plugin(ref: str) -> ChatMiddlewareFactory:
    """A plugin's ``chat_middleware`` factory, from a module path or a ``.py`` file path."""
    try:
        return _load_plugin(ref)
    except Exception as exc:
        raise ConfigError(f"PLUGINS: cannot load {ref}: {type(exc).__name__}: {exc}".splitlines()[0][:500]) from None


def _load_plugin(ref: str) -> ChatMiddlewareFactory:
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
        middlewares=[request_context, error_middleware, browser_guard, auth_middleware, body_guard],
        client_max_size=int(settings.max_request_body_mb * 1024 * 1024),
    )
    app[STARTUP_SETTINGS] = settings
    chain = build_chain(chat_middlewares_or_config_error(settings), claude_web)  # plugin errors surface here

    async def services_ctx(app: web.Application):
        upstream = upstream_session(settings)
        images = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.image_fetch_timeout))
        client = ClaudeWebClient(
            upstream, settings.claude_base_url, clock=clock, first_byte_timeout=settings.upstream_first_byte_timeout
        )
        pool = SessionPool(
            [(s.key, s.org_id) for s in settings.sessions],
            clock=clock,
            cooldown_default=settings.cooldown_default_seconds,
            request_rate_cooldown=settings.request_rate_cooldown_seconds,
            max_concurrency=settings.session_max_concurrency,
            state_path=Path(settings.state_file) if settings.state_file else None,
        )
        janitor = Janitor(
            client,
            pool,
            retry_hours=settings.cleanup_retry_hours,
            retry_delay=settings.cleanup_retry_delay_seconds,
            queue_max=settings.cleanup_queue_max,
        )
        janitor.start()
        app[SERVICES] = Services(
            settings=settings,
            catalog=ModelCatalog(settings.models),
            pool=pool,
            claude=client,
            http=images,
            janitor=janitor,
            chain=chain,
            clock=clock,
            responses=MemoryResponseStore(
                max_items=settings.responses_store_max_items,
                max_bytes=int(settings.responses_store_max_mb * 1024 * 1024),
                ttl=settings.responses_store_ttl,
            ),
        )
        try:
            yield
        finally:
            await janitor.close()
            await pool.close()
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
    "cleanup_retry_hours",
    "cleanup_retry_delay_seconds",
    "cleanup_queue_max",
    "log_level",
    "log_format",
    "header_read_timeout",
    "max_connections",
    "shutdown_drain_seconds",
    "responses_store_max_items",
    "responses_store_max_mb",
    "responses_store_ttl",
)


def apply_settings(services: Services, new: Settings) -> list[str]:
    """Swap in a reloaded configuration; returns the changed settings that need a restart.

    Sessions that stay keep their state (parked, dead, in flight); new ones start healthy (or as
    the state file remembers them). Requests already running finish with what they started with.
    Raises ConfigError, before changing anything, when a plugin cannot be loaded.
    """
    chain = build_chain(chat_middlewares_or_config_error(new), claude_web)
    pool = services.pool
    pool.cooldown_default = new.cooldown_default_seconds
    pool.request_rate_cooldown = new.request_rate_cooldown_seconds
    pool.max_concurrency = new.session_max_concurrency
    pool.update_sessions([(s.key, s.org_id) for s in new.sessions])
    services.catalog = ModelCatalog(new.models)
    services.chain = chain
    services.claude.first_byte_timeout = new.upstream_first_byte_timeout
    old, services.settings = services.settings, new
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]


#: Seconds after the drain time for cut streams to send their error frames before handlers are cancelled.
SHUTDOWN_GRACE_SECONDS = 5.0
#: File descriptors kept out of the connection cap (listeners, logs, the state file, DNS...).
RESERVED_FDS = 64
#: Each open stream holds the client's socket and one to claude.ai.
FDS_PER_STREAM = 2


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner production and the test harness share.

    ``handler_cancellation`` cancels a handler as soon as its client goes away, so a stream the
    client abandoned is stopped upstream at once instead of at claude.ai's next token. Its server
    guards the listener (:class:`GuardedServer`): header deadline and connection cap.
    """
    settings = app[STARTUP_SETTINGS]
    return GuardedRunner(
        app,
        limits=ListenerLimits(settings.header_read_timeout, connection_cap(settings)),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_drain_seconds + SHUTDOWN_GRACE_SECONDS,
    )


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one (streams need two descriptors each); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open_file_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    return soft


def connection_cap(settings: Settings) -> int:
    """``MAX_CONNECTIONS``, or as many streams as the open-file limit can hold."""
    if settings.max_connections:
        return settings.max_connections
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(1, (soft - RESERVED_FDS) // FDS_PER_STREAM)


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


def add_routes(app: web.Application, settings: Settings) -> None:
    """OpenAI (chat completions and Responses) under ``/v1`` and ``/hf/v1`` (and the root and ``/v1/v1`` as aliases); Anthropic under ``/v1`` and ``/v1/v1`` (a base URL pasted
    with ``/v1``, which Anthropic SDKs add themselves); both under the mirror prefix when enabled.
    The model list answers on every prefix: both SDKs read it."""
    app.router.add_get("/health", health)
    app.router.add_get("/admin/sessions", admin_sessions)
    mirror = [settings.mirror_api_prefix + "/v1"] if settings.enable_mirror_api else []
    # "" and /v1/v1: base URLs pasted without /v1, or with it where the client adds its own.
    openai_prefixes = ["/v1", "/hf/v1", "", "/v1/v1", *mirror]
    anthropic_prefixes = ["/v1", "/v1/v1", *mirror]
    for prefix in openai_prefixes:
        app.router.add_post(prefix + "/chat/completions", api_openai.chat_completions)
        app.router.add_post(prefix + "/responses", api_responses.create_response)
        app.router.add_get(prefix + "/responses/{response_id}", api_responses.get_response)
        app.router.add_delete(prefix + "/responses/{response_id}", api_responses.delete_response)
    for prefix in anthropic_prefixes:
        app.router.add_post(prefix + "/messages", api_anthropic.messages)
        app.router.add_post(prefix + "/messages/count_tokens", api_anthropic.count_tokens)
    for prefix in dict.fromkeys(openai_prefixes + anthropic_prefixes):
        app.router.add_get(prefix + "/models", api_openai.list_models)
        app.router.add_get(prefix + "/models/{model_id}", api_openai.get_model)


async def health(request: web.Request) -> web.Response:
    """``{"status": "ok"}`` for anyone; session counts only for a caller with an API or admin key."""
    services = request.app[SERVICES]
    settings = services.settings
    presented = presented_key(request)
    accepted = settings.api_keys + ((settings.admin_key,) if settings.admin_key else ())
    if presented is None or not accepted or not key_matches(presented, accepted):
        return web.json_response({"status": "ok"})
    states: dict[str, int] = {}
    for session in services.pool.snapshot():
        states[session["state"]] = states.get(session["state"], 0) + 1
    return web.json_response({"status": "ok", "sessions": states})


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


#: A client's own request id is echoed only when it is short printable ASCII (it goes into logs and headers).
_REQUEST_ID = re.compile(r"[!-~]{1,128}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id on every log line and on the response; one access line per request."""
    offered = request.headers.get("x-request-id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else f"req_{uuid.uuid4().hex}"
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


def allowed_origin(origin: str, settings: Settings) -> str | None:
    """What ``Access-Control-Allow-Origin`` may say to ``origin``: ``*``, the origin itself, or nothing."""
    if "*" in settings.cors_origins:
        return "*"
    return origin if origin.rstrip("/") in settings.cors_origins else None


def _host_is_loopback(host_header: str) -> bool:
    try:
        hostname = urlsplit("//" + host_header).hostname
    except ValueError:
        return False
    return hostname is not None and (is_loopback(hostname) or hostname.endswith(".localhost"))


def _forbidden(message: str, code: str) -> APIError:
    return APIError(403, message, type="permission_error", code=code)


@web.middleware
async def browser_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What a web page the operator visits may do: only what ``CORS_ORIGINS`` allows.

    Without an API key the daemon trusts whoever reaches it, so it refuses a ``Host`` that is not
    a loopback name (DNS rebinding) and any request whose ``Origin`` is not allowed. With a key a
    page cannot authenticate anyway; it merely gets no CORS headers. The admin route never answers
    a cross-origin request. Preflights are answered here, before authentication (they carry no key).
    """
    settings = request.app[SERVICES].settings
    keyless = not settings.api_keys
    host = request.headers.get("Host")
    if keyless and host is not None and is_loopback(settings.host) and not _host_is_loopback(host):
        raise _forbidden(
            "This daemon has no API key, so it only answers requests addressed to a loopback name "
            "(localhost, 127.0.0.1, [::1]); set APIKEY to serve other host names.",
            "host_not_allowed",
        )
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    if request.path == "/admin" or request.path.startswith("/admin/"):
        raise _forbidden("The admin API does not answer cross-origin (browser) requests.", "cross_origin_refused")
    allowed = allowed_origin(origin, settings)
    if allowed is None and keyless:
        raise _forbidden(
            "Requests from this Origin are refused: the daemon has no API key and the origin is not in CORS_ORIGINS.",
            "origin_not_allowed",
        )
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if allowed is None:
            raise _forbidden("This Origin is not in CORS_ORIGINS.", "origin_not_allowed")
        requested = request.headers.get("Access-Control-Request-Headers")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": requested or CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "86400",
                "Vary": "Origin",
            },
        )
    if allowed is not None:
        request[ALLOWED_ORIGIN] = allowed
    return await handler(request)


#: Mirror-mode routes that talk to claude.ai with the caller's own session key (verified first).
MIRROR_CHAT_ROUTES = ("/chat/completions", "/messages", "/responses")


def credential_required(request: web.Request) -> bool:
    """Whether this request must carry a key header, which a browser cannot add without a preflight."""
    settings = request.app[SERVICES].settings
    if is_mirror_path(request):
        return request.path.endswith(MIRROR_CHAT_ROUTES)
    if request.path.startswith("/admin/"):
        return True
    return bool(settings.api_keys)


def _is_mirror_count_tokens(request: web.Request) -> bool:
    return is_mirror_path(request) and request.path.endswith("/messages/count_tokens")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/health":
        return await handler(request)
    services = request.app[SERVICES]
    if is_mirror_path(request):
        if request.path.endswith(MIRROR_CHAT_ROUTES):
            credentials = mirror_credentials(request)
            await services.verify_mirror_session(*credentials)  # before the body is even read
            request[MIRROR_CREDENTIALS] = credentials
        return await handler(request)
    settings = services.settings
    if request.path.startswith("/admin/"):
        if not settings.admin_key:
            raise APIError(404, "The admin API is off: set ADMIN_KEY to turn it on.", code="admin_disabled")
        check_api_key(request, (settings.admin_key,))
        return await handler(request)
    check_api_key(request, settings.api_keys)
    return await handler(request)


_JSON_CONTENT_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json", re.IGNORECASE)


@web.middleware
async def body_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request body within ``body_read_timeout``, after authentication, under the route's cap.

    A request that needs no key header is a "simple" cross-origin request for a browser when its
    body is ``text/plain`` (or a form, or untyped): such bodies must say JSON. Mirror mode's
    ``count_tokens`` needs no credential at all, so its bodies are capped small.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return await handler(request)
    settings = request.app[SERVICES].settings
    if not credential_required(request) and not _JSON_CONTENT_TYPE.fullmatch(request.content_type):
        raise APIError(
            415,
            "Send the body as JSON with `Content-Type: application/json` "
            f"(got {request.content_type or 'none'!r}).",
            code="unsupported_media_type",
        )
    if _is_mirror_count_tokens(request):
        cap = settings.mirror_count_tokens_max_kb * 1024
        if request.content_length is not None and request.content_length > cap:
            raise APIError(413, f"Request body too large: mirror count_tokens takes at most {cap} bytes")
        request = request.clone(client_max_size=cap)
    try:
        async with asyncio.timeout(settings.body_read_timeout):
            await request.read()
    except TimeoutError:
        if isinstance(request.protocol, GuardedHandler):
            request.protocol.close_after_response()
        raise APIError(
            408,
            f"The request body did not arrive within {settings.body_read_timeout:g} s (BODY_READ_TIMEOUT).",
            code="request_timeout",
            headers={"Connection": "close"},
        ) from None
    return await handler(request)


async def _add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
    allowed = request.get(ALLOWED_ORIGIN)
    if allowed is not None:
        response.headers.setdefault("Access-Control-Allow-Origin", allowed)
        response.headers.setdefault("Access-Control-Expose-Headers", "x-request-id, request-id")
    origins = request.app[SERVICES].settings.cors_origins
    if origins and "*" not in origins:
        response.headers.setdefault("Vary", "Origin")  # the answer depends on who asks
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["x-request-id"] = request_id
        response.headers["request-id"] = request_id
