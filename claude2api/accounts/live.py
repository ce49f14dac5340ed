"""What each account can use and how much of it is left: its live model list and its usage windows.

After an account's organization is known, its model list is read from ``app_start`` (``docs/protocol.md`` §9) and its usage from ``/usage`` (``docs/protocol.md`` §10.1); both are cached on the :class:`Session`. The
list is re-read every ``MODELS_REFRESH_SECONDS`` and on SIGHUP (:meth:`AccountWatcher.kick`), the
usage every ``USAGE_REFRESH_SECONDS`` and when an account comes back from cooling. A list that
cannot be read leaves the static :data:`~claude2api.core.catalog.FALLBACK_MODELS` standing in for
that account (logged once until it reads again). The app's :class:`ModelCatalog` is rebuilt from the
accounts' lists after every read (:func:`build_catalog`) and handed to ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from claude2api.accounts import statefile
from claude2api.accounts.pool import Session, SessionPool
from claude2api.config import Settings
from claude2api.core.catalog import FALLBACK_MODELS, ModelCatalog, parse_app_start
from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.limits import parse_usage
from claude2api.logs import get_logger
from claude2api.upstream.client import Account, ClaudeWebClient

log = get_logger(__name__)

#: Seconds the watcher sleeps at most between checks of what is due (timers, SIGHUP).
_TICK_SECONDS = 60.0


def build_catalog(settings: Settings, sessions: Iterable[Session]) -> ModelCatalog:
    """The app's catalogue: every configured account's list (the static one where its live list
    could not be read), plus ``MODELS``, ``MODEL_ALIASES`` and ``DEFAULT_MODEL``."""
    accounts = {statefile.state_id(s.key): s.models if s.models is not None else FALLBACK_MODELS for s in sessions}
    return ModelCatalog(
        settings.models,
        accounts=accounts,
        aliases=dict(settings.model_aliases),
        default_model=settings.default_model,
    )


def session_catalog(settings: Settings, session: Session | None) -> ModelCatalog:
    """Mirror mode's catalogue: the caller's own account list if it was read, else the static one."""
    models = session.models if session is not None else None
    return ModelCatalog(
        settings.models, models=models, aliases=dict(settings.model_aliases), default_model=settings.default_model
    )


class AccountWatcher:
    """Reads every account's model list and usage, at start and then on their timers."""

    def __init__(
        self,
        pool: SessionPool,
        client: ClaudeWebClient,
        settings: Callable[[], Settings],
        publish: Callable[[ModelCatalog], None],
    ) -> None:
        self.pool = pool
        self.client = client
        self.settings = settings
        self.publish = publish
        #: Set once the first pass over every account is over (read or failed).
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._models_due = True
        self._task: asyncio.Task[None] | None = None
        self._usage_tasks: set[asyncio.Task[None]] = set()
        pool.on_recovered = self.usage_soon

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="claude2api-account-watcher")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._usage_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def kick(self) -> None:
        """SIGHUP: read every model list again now (new sessions included)."""
        self._models_due = True
        self._wake.set()

    def usage_soon(self, session: Session) -> None:
        """Re-read one account's usage (it just came back from cooling), off the request path."""
        task = asyncio.get_running_loop().create_task(self._read_usage(session))
        self._usage_tasks.add(task)
        task.add_done_callback(self._usage_tasks.discard)

    async def refresh(self, *, models: bool, usage: bool) -> None:
        """One pass over every configured account, in parallel; then the catalogue is rebuilt."""
        sessions = list(self.pool.sessions)
        await asyncio.gather(*(self._refresh_one(s, models=models, usage=usage) for s in sessions))
        self.publish(build_catalog(self.settings(), self.pool.sessions))

    async def _run(self) -> None:
        try:
            await self.refresh(models=True, usage=self.settings().usage_refresh_seconds > 0)
        finally:
            self._models_due = False
            self.ready.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            settings, now = self.settings(), self.pool.clock()
            models = self._models_due or _due(self.pool.sessions, "models_read_at", settings.models_refresh_seconds, now)
            usage = _due(self.pool.sessions, "usage_read_at", settings.usage_refresh_seconds, now)
            self._models_due = False
            if models or usage:
                await self.refresh(models=models, usage=usage)

    async def _refresh_one(self, session: Session, *, models: bool, usage: bool) -> None:
        account = await self._account(session)
        if account is None:
            return
        if models:
            await self._read_models(session, account)
        if usage:
            await self._read_usage(session, account)

    async def _account(self, session: Session) -> Account | None:
        try:
            return await self.pool.account(session, self.client)
        except UpstreamError as exc:
            self.pool.record_failure(session, exc, None)
            return None

    async def _read_models(self, session: Session, account: Account) -> None:
        session.models_read_at = self.pool.clock()
        try:
            models = parse_app_start(await self.client.app_start(account), account.org_id)
            if not models:
                raise UpstreamError(Failure.UNKNOWN, "app_start listed no models")
        except UpstreamError as exc:
            if session.models is None and not session.models_failure_logged:
                log.warning("model_list_unavailable", session=session.fingerprint, error=exc.message, using="fallback")
                session.models_failure_logged = True
            return  # a list read before stays; else the static one stands in
        session.models, session.models_failure_logged = tuple(models), False
        log.debug("model_list_read", session=session.fingerprint, models=len(models))

    async def _read_usage(self, session: Session, account: Account | None = None) -> None:
        account = account or await self._account(session)
        if account is None:
            return
        session.usage_read_at = self.pool.clock()
        try:
            session.usage = parse_usage(await self.client.usage(account))
        except UpstreamError as exc:
            log.debug("usage_unavailable", session=session.fingerprint, error=exc.message)


def _due(sessions: Iterable[Session], attribute: str, interval: float, now: float) -> bool:
    return interval > 0 and any(now - getattr(s, attribute) >= interval for s in sessions)
