"""The HTTP middlewares, outermost first: request id and access log, error rendering, the browser
guard (Host, Origin, CORS preflights), authentication, the body guard (deadline, content type).

None of them looks at the URL: what an endpoint is (its dialect, its access) comes from the route
table (:func:`~claude2api.http.routes.endpoint_of`).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from claude2api.config import Settings, is_loopback
from claude2api.core.failures import APIError, clip
from claude2api.core.record import RequestRecord
from claude2api.http.auth import check_api_key, mirror_credentials
from claude2api.http.listener import GuardedHandler
from claude2api.http.metrics import CLIENT_GONE_STATUS, METRICS
from claude2api.http.routes import Access, endpoint_of
from claude2api.http.services import MIRROR_CREDENTIALS, RECORD, REQUEST_ID, SERVICES
from claude2api.logs import get_logger

log = get_logger(__name__)

#: The browser origin a request may be answered to (CORS), when it is an allowed one.
ALLOWED_ORIGIN = web.RequestKey("claude2api.allowed_origin", str)

#: Longest error message quoted in an access line.
ERROR_LOG_CHARS = 300

#: A client's own request id is echoed only when it is short printable ASCII (it goes into logs and headers).
_REQUEST_ID = re.compile(r"[!-~]{1,128}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id on every log line and on the response; one access line per request, which says
    what happened (:class:`~claude2api.core.record.RequestRecord`), and the request's metrics."""
    offered = request.headers.get("x-request-id", "")
    request_id = offered if _REQUEST_ID.fullmatch(offered) else f"req_{uuid.uuid4().hex}"
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    record = request[RECORD] = RequestRecord()
    started = record.started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:  # the client went away (handler cancellation) or shutdown cut it
        record.client_gone = True
        raise
    finally:
        duration = time.perf_counter() - started
        status_label = CLIENT_GONE_STATUS if record.client_gone else str(status)
        route = endpoint_of(request).route.path or "unmatched"
        request.app[METRICS].observe(record, route, status_label, duration)
        if request.path != "/health":
            log_request(request, record, status, duration)


def log_request(request: web.Request, record: RequestRecord, status: int, duration: float) -> None:
    """The request's warning line (what could not be honoured) and its access line."""
    if record.unhonoured:
        log.warning("request_not_fully_honoured", model=record.model_asked, unhonoured=record.unhonoured)
    facts: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "status": status,
        "duration_ms": round(duration * 1000, 1),
    }
    if record.dialect is not None:
        facts.update(
            dialect=record.dialect,
            stream=record.stream,
            model=record.model_asked,
            model_sent=record.model_sent,
            account=record.account,
            accounts_tried=record.accounts_tried,
            ttft_ms=None if record.first_token_seconds is None else round(record.first_token_seconds * 1000, 1),
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            tool_calls=record.tool_calls,
            web_searches=record.web_searches,
            history_file=record.history_file,
        )
    elif record.model_asked is not None:
        facts["model"] = record.model_asked
    if record.client_gone:
        facts["client_gone"] = True
    if record.error_code is not None:
        facts.update(error_code=record.error_code, error=record.error)
    if record.error_code == "model_not_found" and record.model_asked is not None:
        services = request.app.get(SERVICES)
        if services is not None:
            facts["suggestion"] = services.catalog.suggest(record.model_asked)
    log.info("request", **{k: v for k, v in facts.items() if v is not None})


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
    """``error`` in the shape of the dialect the route table gives this request's endpoint."""
    record_error(request, error)
    body = endpoint_of(request).dialect.error_body(error, request.get(REQUEST_ID))
    return web.json_response(body, status=error.status, headers=error.headers)


def record_error(request: web.Request, error: APIError) -> None:
    """Note the client's error on the request's record, for its access line."""
    record = request.get(RECORD)
    if record is not None:
        record.error_code = error.code or error.type
        record.error = clip(str(error.message), ERROR_LOG_CHARS)


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
    if endpoint_of(request).route.access in (Access.ADMIN, Access.METRICS):
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


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who may call this endpoint (:class:`~claude2api.http.routes.Access`)."""
    endpoint = endpoint_of(request)
    access = endpoint.route.access
    if access is Access.PUBLIC:
        return await handler(request)
    services = request.app[SERVICES]
    if endpoint.mirror:
        if access is Access.CHAT:
            credentials = mirror_credentials(request)
            await services.verify_mirror_session(*credentials)  # before the body is even read
            request[MIRROR_CREDENTIALS] = credentials
        return await handler(request)
    settings = services.settings
    if access is Access.ADMIN:
        if not settings.admin_key:
            raise APIError(404, "The admin API is off: set ADMIN_KEY to turn it on.", code="admin_disabled")
        check_api_key(request, (settings.admin_key,))
        return await handler(request)
    if access is Access.METRICS:
        keys = tuple(k for k in (settings.metrics_key, settings.admin_key) if k)
        if not keys:
            raise APIError(
                404,
                "Metrics are off on this port: set METRICS_KEY (or ADMIN_KEY), or serve them on METRICS_ADDRESS.",
                code="metrics_disabled",
            )
        check_api_key(request, keys)
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
    endpoint = endpoint_of(request)
    credential_required = endpoint.credential_required or (not endpoint.mirror and bool(settings.api_keys))
    if not credential_required and not _JSON_CONTENT_TYPE.fullmatch(request.content_type):
        raise APIError(
            415,
            "Send the body as JSON with `Content-Type: application/json` "
            f"(got {request.content_type or 'none'!r}).",
            code="unsupported_media_type",
        )
    if endpoint.mirror and endpoint.route.small_mirror_body:
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


async def add_common_headers(request: web.Request, response: web.StreamResponse) -> None:
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


#: Outermost first.
MIDDLEWARES = (request_context, error_middleware, browser_guard, auth_middleware, body_guard)
