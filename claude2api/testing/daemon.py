"""Run the real daemon in-process on a loopback port, for tests (ours and plugin authors')."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from claude2api.config import Settings, load_settings
from claude2api.http.app import create_app, make_runner
from claude2api.http.metrics import start_metrics_listener
from claude2api.http.services import SERVICES, Services

TEST_API_KEY = "sk-test-claude2api"
#: Seconds a test daemon waits at start for the first read of its accounts' model lists.
READY_TIMEOUT = 10.0


@dataclass
class Daemon:
    app: web.Application
    url: str  # e.g. "http://127.0.0.1:PORT", no trailing slash
    api_key: str | None
    #: The METRICS_ADDRESS listener's base URL, when the settings have one (its port is picked freely).
    metrics_url: str | None = None

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    async def idle(self) -> None:
        """Wait for background clean-up (stop_response, DELETE) to finish."""
        await self.services.janitor.idle()


def settings_for(base_url: str, session_keys: list[str], env: Mapping[str, str] | None = None) -> Settings:
    """Settings pointing at a fake claude.ai, built the way the daemon builds them (from env vars).

    The upstream transport is aiohttp unless ``env`` says otherwise (``UPSTREAM_TRANSPORT``): the
    fake speaks plain http, and a test about the impersonating transport asks for it.
    """
    environ = {
        "SESSIONS": ",".join(session_keys),
        "CLAUDE_BASE_URL": base_url,
        "APIKEY": TEST_API_KEY,
        "ADDRESS": "127.0.0.1:0",
        "UPSTREAM_TRANSPORT": "aiohttp",
    }
    environ.update(env or {})
    return load_settings(None, environ)


@asynccontextmanager
async def run_daemon(settings: Settings, *, clock: Callable[[], float] = time.time) -> AsyncIterator[Daemon]:
    runner = make_runner(create_app(settings, clock=clock))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    watcher = runner.app[SERVICES].watcher
    if watcher is not None:  # the accounts' model lists, so routing is settled before the first request
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(READY_TIMEOUT):
                await watcher.ready.wait()
    metrics_runner = metrics_url = None
    if settings.metrics_address:
        metrics_runner = await start_metrics_listener(runner.app, "127.0.0.1", 0)
        metrics_host, metrics_port = metrics_runner.addresses[0][:2]
        metrics_url = f"http://{metrics_host}:{metrics_port}"
    try:
        yield Daemon(
            runner.app, f"http://{host}:{port}", settings.api_keys[0] if settings.api_keys else None, metrics_url
        )
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()
