"""The aiohttp application: shared resources, HTTP middlewares and routes.

Resources (the upstream HTTP session, the image-download session, the session pool, the
conversation janitor) live in one typed :class:`~claude2api.http.services.Services` object, created
and torn down by a cleanup context. HTTP middlewares, outermost first: request id and access log,
error rendering, browser guard, authentication, body guard (:mod:`claude2api.http.middlewares`);
the routes come from the route table (:mod:`claude2api.http.routes`).
"""

from __future__ import annotations

import resource
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from claude2api.accounts.live import AccountWatcher, build_catalog
from claude2api.accounts.pool import SessionPool
from claude2api.config import ConfigError, Settings, restart_only_settings
from claude2api.core.types import ChatMiddleware
from claude2api.dialects.response_store import MemoryResponseStore
from claude2api.http.listener import GuardedRunner, ListenerLimits
from claude2api.http.metrics import METRICS, Metrics
from claude2api.http.middlewares import MIDDLEWARES, add_common_headers
from claude2api.http.routes import add_routes
from claude2api.http.services import SERVICES, Services
from claude2api.logs import get_logger
from claude2api.pipeline.attempt import claude_web
from claude2api.pipeline.chain import build_chain
from claude2api.pipeline.documents import documents_factory
from claude2api.pipeline.failover import retry_over_sessions_factory
from claude2api.pipeline.history_file import history_to_file_factory
from claude2api.pipeline.images import fetch_images_factory
from claude2api.pipeline.output_guard import output_guard_factory
from claude2api.pipeline.plugins import load_plugins
from claude2api.pipeline.search_sources import search_sources_factory
from claude2api.pipeline.transcript import transcript_factory
from claude2api.upstream.client import ClaudeWebClient
from claude2api.upstream.egress import Egresses
from claude2api.upstream.janitor import Janitor

log = get_logger(__name__)

#: The settings the daemon started with: the listener's limits, which a reload cannot change.
STARTUP_SETTINGS = web.AppKey("claude2api.startup_settings", Settings)


def chat_middlewares(settings: Settings, *, reload: bool = False) -> list[ChatMiddleware]:
    """Plugins first (they see the client's request), then the built-ins, which are plugins too.

    ``reload``: plugin modules are executed afresh, so edited code takes effect.
    """
    middlewares = [mw for mw in (p.middleware(settings) for p in load_plugins(settings, fresh=reload)) if mw]
    builtins = (
        search_sources_factory,
        output_guard_factory,
        transcript_factory,
        history_to_file_factory,
        fetch_images_factory,
        documents_factory,
        retry_over_sessions_factory,
    )
    middlewares += [mw for mw in (factory(settings) for factory in builtins) if mw is not None]
    log.info("chat_middlewares", order=[getattr(mw, "__name__", repr(mw)) for mw in middlewares])
    return middlewares


def chat_middlewares_or_config_error(settings: Settings, *, reload: bool = False) -> list[ChatMiddleware]:
    """:func:`chat_middlewares`, with whatever a plugin raises (at import or in its factory) as one
    :class:`ConfigError` line instead of a traceback."""
    try:
        return chat_middlewares(settings, reload=reload)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"PLUGINS: {type(exc).__name__}: {exc}".splitlines()[0][:500]) from None


def bind_accounts(client: ClaudeWebClient, pool: SessionPool, settings: Settings, egresses: Egresses) -> None:
    """Route every configured account through its egress with its jar and its device id."""
    sessions = {s.key: s for s in pool.sessions}
    for spec in settings.sessions:
        wire = client.bind(
            spec.key,
            egresses.for_account(spec),
            device_id=sessions[spec.key].device_id if spec.key in sessions else None,
            cookie=spec.cookie,
            user_agent=spec.user_agent,
        )
        if spec.key in sessions:
            sessions[spec.key].egress = wire.describe()
    client.unbind_except({spec.key for spec in settings.sessions})


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(
        middlewares=MIDDLEWARES,
        client_max_size=int(settings.max_request_body_mb * 1024 * 1024),
    )
    app[STARTUP_SETTINGS] = settings
    app[METRICS] = Metrics(app)
    chain = build_chain(chat_middlewares_or_config_error(settings), claude_web)  # plugin errors surface here

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        egresses = Egresses(settings)
        images = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.image_fetch_timeout))
        client = ClaudeWebClient(
            egresses.default(),
            settings.claude_base_url,
            clock=clock,
            first_byte_timeout=settings.upstream_first_byte_timeout,
            tool_call_idle=settings.tool_call_idle_seconds,
        )
        pool = SessionPool(
            [(s.key, s.org_id) for s in settings.sessions],
            clock=clock,
            cooldown_default=settings.cooldown_default_seconds,
            request_rate_cooldown=settings.request_rate_cooldown_seconds,
            max_concurrency=settings.session_max_concurrency,
            state_path=Path(settings.state_file) if settings.state_file else None,
        )
        bind_accounts(client, pool, settings, egresses)
        janitor = Janitor(
            client,
            pool,
            retry_hours=settings.cleanup_retry_hours,
            retry_delay=settings.cleanup_retry_delay_seconds,
            queue_max=settings.cleanup_queue_max,
            concurrency=settings.cleanup_concurrency,
        )
        janitor.start()
        services = app[SERVICES] = Services(
            settings=settings,
            catalog=build_catalog(settings, pool.sessions),
            pool=pool,
            claude=client,
            egresses=egresses,
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
        watcher = services.watcher = AccountWatcher(pool, client, lambda: services.settings, services.set_catalog)
        watcher.start()
        try:
            yield
        finally:
            await watcher.close()
            await janitor.close()
            await pool.close()
            await egresses.close()
            await app[SERVICES].http.close()  # the one in use (a test may swap it)

    app.cleanup_ctx.append(services_ctx)
    app.on_response_prepare.append(add_common_headers)
    add_routes(app, settings)
    return app


#: Settings that shape listeners, the upstream session or the routes: a reload cannot change them.
RESTART_ONLY = restart_only_settings()


def apply_settings(services: Services, new: Settings) -> list[str]:
    """Swap in a reloaded configuration; returns the changed settings that need a restart.

    Requests already running keep the settings and the chat chain (plugins included) they started
    with (``ChatContext.settings``); new requests get the new ones. What is shared changes at once,
    for running requests too: the session list (a removed session takes no new attempt; sessions
    that stay keep their state, parked, dead, in flight; new ones start healthy or as the state file
    remembers them), the pool's cooldowns and concurrency cap, and the upstream first-byte timeout.
    Plugin modules are re-imported. Raises ConfigError, before changing anything, when a plugin
    cannot be loaded.
    """
    chain = build_chain(chat_middlewares_or_config_error(new, reload=True), claude_web)
    pool = services.pool
    pool.cooldown_default = new.cooldown_default_seconds
    pool.request_rate_cooldown = new.request_rate_cooldown_seconds
    pool.max_concurrency = new.session_max_concurrency
    pool.update_sessions([(s.key, s.org_id) for s in new.sessions])
    # Transports are made from the start-up settings; a new account proxy gets one on first use.
    bind_accounts(services.claude, pool, new, services.egresses)
    services.chain = chain
    if services.watcher is not None:
        services.watcher.kick()  # re-read every account's model list (SIGHUP)
    services.claude.first_byte_timeout = new.upstream_first_byte_timeout
    services.claude.tool_call_idle = new.tool_call_idle_seconds
    old, services.settings = services.settings, new
    services.catalog = build_catalog(new, pool.sessions)
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


