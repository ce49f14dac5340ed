"""Ways out to claude.ai: one transport per distinct egress (direct or one proxy), shared by the
accounts that use it, and each account bound to its own.

``UPSTREAM_TRANSPORT`` picks the kind (``auto``: the impersonating transport when curl_cffi is
installed, else aiohttp; said once in the log). An account's proxy is its own (``sessions:``
mapping or ``key@proxy-url``), else ``PROXY``; mirror-mode callers use ``PROXY``. The transports
live as long as the app (its cleanup context closes them) or the command that made them.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

from claude2api.config import SessionSpec, Settings
from claude2api.logs import get_logger, redact_url
from claude2api.upstream import impersonate
from claude2api.upstream.transport import AiohttpTransport, Timeouts, UpstreamTransport

log = get_logger(__name__)

#: Concurrent transfers per egress on the impersonating transport (curl handles are made lazily).
#: Like aiohttp's unlimited pool: the listener's connection cap is what bounds open streams, and
#: curl_cffi's default (10) would queue every stream beyond it behind the long ones.
IMPERSONATE_MAX_TRANSFERS = 1 << 16

AIOHTTP = "aiohttp"
IMPERSONATE = "impersonate"


def transport_kind(setting: str) -> str:
    """``aiohttp`` or ``impersonate`` for an ``UPSTREAM_TRANSPORT`` value (``auto`` resolved)."""
    if setting == "auto":
        return IMPERSONATE if impersonate.available() else AIOHTTP
    return setting


def make_transport(settings: Settings, kind: str, proxy: str | None) -> UpstreamTransport:
    """A new transport of ``kind`` for one egress, with the configured timeouts and trust store."""
    timeouts = Timeouts(connect=settings.upstream_connect_timeout, read=settings.upstream_read_timeout)
    if kind == IMPERSONATE:
        return impersonate.ImpersonateTransport(
            profile=settings.upstream_impersonate,
            proxy=proxy,
            timeouts=timeouts,
            ca_file=settings.upstream_ca_file,
            max_clients=IMPERSONATE_MAX_TRANSFERS,
        )
    context = ssl.create_default_context(cafile=settings.upstream_ca_file) if settings.upstream_ca_file else None
    return AiohttpTransport(proxy=proxy, timeouts=timeouts, ssl_context=context)


class Egresses:
    """The daemon's transports, one per proxy URL (``None``: direct), made on first use."""

    def __init__(self, settings: Settings, *, kind: str | None = None) -> None:
        self.settings = settings
        self.kind = kind or transport_kind(settings.upstream_transport)
        self._transports: dict[str | None, UpstreamTransport] = {}
        if kind is None:
            log.info(
                "upstream_transport",
                transport=self.kind,
                setting=settings.upstream_transport,
                profile=settings.upstream_impersonate if self.kind == IMPERSONATE else None,
                hint=None
                if self.kind == IMPERSONATE
                else "plain TLS is often challenged by Cloudflare: pip install 'claude2api[impersonate]'",
            )

    def get(self, proxy: str | None) -> UpstreamTransport:
        transport = self._transports.get(proxy)
        if transport is None:
            transport = self._transports[proxy] = make_transport(self.settings, self.kind, proxy)
            log.info("upstream_egress", egress=transport.describe())
        return transport

    def for_account(self, spec: SessionSpec) -> UpstreamTransport:
        """An account's transport: its own proxy, else ``PROXY``."""
        return self.get(spec.proxy or self.settings.proxy)

    def default(self) -> UpstreamTransport:
        """Mirror-mode callers and anything not tied to a configured account: ``PROXY``."""
        return self.get(self.settings.proxy)

    def in_use(self) -> Iterable[UpstreamTransport]:
        return self._transports.values()

    async def close(self) -> None:
        for transport in self._transports.values():
            await transport.close()
        self._transports.clear()


def describe_egress(proxy: str | None) -> str:
    """``direct`` or the redacted proxy URL: safe to show."""
    return redact_url(proxy) if proxy else "direct"
