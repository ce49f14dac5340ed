"""Typed application state shared by the app, the route handlers and chat middlewares."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from .chat import ChatHandler
from .cleanup import Janitor
from .config import Settings
from .models import ModelCatalog
from .sessions import Session, SessionPool
from .upstream.client import ClaudeWebClient

MIRROR_CACHE_SIZE = 256


@dataclass
class Services:
    """Everything a request handler or chat middleware needs, built once per daemon."""

    settings: Settings
    catalog: ModelCatalog
    pool: SessionPool
    claude: ClaudeWebClient
    http: aiohttp.ClientSession
    janitor: Janitor
    chain: ChatHandler
    clock: Callable[[], float]
    mirror_sessions: OrderedDict[str, Session] = field(default_factory=OrderedDict)

    def mirror_session(self, key: str, org_id: str | None) -> Session:
        """A caller's own session (mirror mode), remembered so its org lookup is done once."""
        cache_key = f"{key}:{org_id or ''}"
        session = self.mirror_sessions.pop(cache_key, None) or Session(key=key, org_id=org_id)
        self.mirror_sessions[cache_key] = session
        while len(self.mirror_sessions) > MIRROR_CACHE_SIZE:
            self.mirror_sessions.popitem(last=False)
        return session


SERVICES = web.AppKey("claude2api.services", Services)
REQUEST_ID = web.RequestKey("claude2api.request_id", str)
#: Mirror mode: the caller's own ``(session key, org id)`` from its Bearer token.
MIRROR_CREDENTIALS = web.RequestKey("claude2api.mirror", tuple)
