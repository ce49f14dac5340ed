"""Typed application state shared by the app, the route handlers and chat middlewares."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from claude2api.accounts.live import AccountWatcher, session_catalog
from claude2api.accounts.pool import Session, SessionPool
from claude2api.accounts.resolve import choose_organization, plan_of
from claude2api.config import Settings
from claude2api.core.catalog import ModelCatalog, parse_app_start
from claude2api.core.failures import (
    CLIENT_ERRORS,
    APIError,
    Failure,
    Refusal,
    UpstreamError,
    upstream_api_error,
)
from claude2api.core.record import RequestRecord
from claude2api.core.types import ChatHandler
from claude2api.dialects.response_store import ResponseStore
from claude2api.upstream.client import Account, ClaudeWebClient
from claude2api.upstream.egress import Egresses
from claude2api.upstream.janitor import Janitor
from claude2api.upstream.uploads import Uploader

MIRROR_CACHE_SIZE = 256
#: Mirror-mode session keys claude.ai rejected, remembered (as hashes) at most this many.
MIRROR_REJECTED_CACHE_SIZE = 4096
#: Failures that say the caller's session key itself is no good.
_REJECTED_KEY_FAILURES = (Failure.DEAD, Failure.DISABLED)


@dataclass
class Services:
    """Everything a request handler or chat middleware needs, built once per daemon."""

    settings: Settings
    catalog: ModelCatalog
    pool: SessionPool
    claude: ClaudeWebClient
    #: The upstream transports, one per egress (direct or proxy), shared by the accounts using them.
    egresses: Egresses
    http: aiohttp.ClientSession
    janitor: Janitor
    chain: ChatHandler
    clock: Callable[[], float]
    #: Finished Responses API exchanges, for ``previous_response_id`` and GET/DELETE.
    responses: ResponseStore
    #: Mirror-mode sessions claude.ai accepted, most recently used last.
    mirror_sessions: OrderedDict[str, Session] = field(default_factory=OrderedDict)
    #: sha256 of mirror-mode keys claude.ai rejected -> when to forget them.
    mirror_rejected: OrderedDict[str, float] = field(default_factory=OrderedDict)
    #: Tasks between the chain's first upstream call and its end, cut with an error on shutdown.
    upstream_tasks: set[asyncio.Task[object]] = field(default_factory=set)
    #: Set once the shutdown drain time is over: in-flight upstream calls end with an error.
    cutting: bool = False
    #: Reads the accounts' model lists and usage (set by the app once the services exist).
    watcher: AccountWatcher | None = None
    #: Uploads of images and documents, wiggle first (built from ``claude`` and ``clock``).
    uploader: Uploader = field(init=False)

    def __post_init__(self) -> None:
        self.uploader = Uploader(self.claude, self.clock)

    def set_catalog(self, catalog: ModelCatalog) -> None:
        """Swap in a catalogue rebuilt from fresh model lists (requests running keep theirs)."""
        self.catalog = catalog

    def catalog_for(self, mirror: tuple[str, str | None] | None) -> ModelCatalog:
        """The catalogue a request resolves its model in: mirror mode's caller has its own."""
        if mirror is None:
            return self.catalog
        return session_catalog(self.settings, self.mirror_sessions.get(f"{mirror[0]}:{mirror[1] or ''}"))

    def mirror_session(self, key: str, org_id: str | None) -> Session:
        """A caller's own session (mirror mode), verified by :meth:`verify_mirror_session` first."""
        cache_key = f"{key}:{org_id or ''}"
        session = self.mirror_sessions.pop(cache_key, None) or Session(key=key, org_id=org_id)
        self.mirror_sessions[cache_key] = session
        while len(self.mirror_sessions) > MIRROR_CACHE_SIZE:
            self.mirror_sessions.popitem(last=False)
        return session

    async def verify_mirror_session(self, key: str, org_id: str | None) -> None:
        """Make sure claude.ai accepts a mirror-mode caller's key before anything else is done for it.

        One organizations lookup per new key (it also finds the org); a key claude.ai rejected is
        remembered for ``mirror_rejected_key_ttl`` seconds and refused without asking again. Mirror
        sessions never touch the state file. Raises :class:`APIError` (401 for a rejected key).
        """
        cache_key = f"{key}:{org_id or ''}"
        if cache_key in self.mirror_sessions:
            return
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = self.clock()
        forget_at = self.mirror_rejected.get(digest)
        if forget_at is not None:
            if forget_at > now:
                raise _mirror_rejected_error("claude.ai rejected this session key a moment ago")
            del self.mirror_rejected[digest]
        try:
            async with asyncio.timeout(self.settings.upstream_first_byte_timeout):
                orgs = await self.claude.organizations(key)
        except TimeoutError:
            raise APIError(504, "claude.ai did not answer the session key check in time", code="upstream_timeout") from None
        except UpstreamError as exc:
            if exc.failure in _REJECTED_KEY_FAILURES:
                self.remember_rejected_mirror_key(key)
                raise _mirror_rejected_error(f"claude.ai rejected the session key ({exc.message})") from None
            raise upstream_api_error(exc) from None
        chosen = next((o for o in orgs if isinstance(o, dict) and str(o.get("uuid")) == org_id), None)
        chosen = chosen if org_id else choose_organization(orgs)
        if chosen is None:
            self.remember_rejected_mirror_key(key)
            raise _mirror_rejected_error("the session key has no such claude.ai organization that can chat")
        session = self.mirror_session(key, org_id)
        session.org_id, session.plan = str(chosen["uuid"]), plan_of(chosen)
        await self._read_mirror_models(session)

    async def _read_mirror_models(self, session: Session) -> None:
        """The caller's own model list (mirror mode); on failure the static list stands in."""
        try:
            async with asyncio.timeout(self.settings.upstream_first_byte_timeout):
                body = await self.claude.app_start(Account(session.key, str(session.org_id)))
        except (TimeoutError, UpstreamError):
            return
        session.models = tuple(parse_app_start(body, session.org_id)) or None

    def remember_rejected_mirror_key(self, key: str) -> None:
        """Refuse ``key`` for a while without asking claude.ai (bounded, oldest forgotten first)."""
        ttl = self.settings.mirror_rejected_key_ttl
        for cache_key in [k for k in self.mirror_sessions if k.partition(":")[0] == key]:
            del self.mirror_sessions[cache_key]
        if ttl <= 0:
            return
        digest = hashlib.sha256(key.encode()).hexdigest()
        self.mirror_rejected.pop(digest, None)
        self.mirror_rejected[digest] = self.clock() + ttl
        while len(self.mirror_rejected) > MIRROR_REJECTED_CACHE_SIZE:
            self.mirror_rejected.popitem(last=False)

    def cut_upstream_calls(self) -> None:
        """Shutdown drain time is over: end every in-flight upstream call with an error."""
        self.cutting = True
        for task in list(self.upstream_tasks):
            task.cancel()


def _mirror_rejected_error(message: str) -> APIError:
    return CLIENT_ERRORS[Refusal.MIRROR_KEY_REJECTED].error(message)


SERVICES = web.AppKey("claude2api.services", Services)
REQUEST_ID = web.RequestKey("claude2api.request_id", str)
#: What happened to the request, for its access line and the metrics (:mod:`claude2api.core.record`).
RECORD = web.RequestKey("claude2api.record", RequestRecord)
#: Mirror mode: the caller's own ``(session key, org id)`` from its Bearer token.
MIRROR_CREDENTIALS = web.RequestKey("claude2api.mirror", tuple)
