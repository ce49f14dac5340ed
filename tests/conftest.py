"""Shared fixtures: a fake claude.ai on loopback and the real daemon pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon, run_daemon, settings_for


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaude]:
    """Strict about models: an id outside claude.ai's catalogue, or a thinking mode / effort the
    model does not list, fails there as on claude.ai."""
    async with FakeClaude(strict_models=True) as server:
        yield server


MakeDaemon = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def make_daemon(fake: FakeClaude) -> AsyncIterator[MakeDaemon]:
    """``await make_daemon(accounts=2, env={...})``: the daemon over real sockets, talking to ``fake``.

    Accounts already added to ``fake`` are used; otherwise ``accounts`` healthy ones are added.
    """
    async with AsyncExitStack() as stack:

        async def make(accounts: int = 1, env: dict[str, str] | None = None, **kwargs) -> Daemon:
            if not fake.accounts:
                for _ in range(accounts):
                    fake.add_account()
            keys = [a.session_key for a in fake.accounts]
            settings = settings_for(fake.base_url, keys, env)
            return await stack.enter_async_context(run_daemon(settings, **kwargs))

        yield make


@pytest.fixture
async def daemon(make_daemon: MakeDaemon) -> Daemon:
    return await make_daemon()
