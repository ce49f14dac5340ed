"""The upstream transport: how bytes reach claude.ai, behind one small interface.

Two implementations share it: :class:`AiohttpTransport` here (always available) and
``ImpersonateTransport`` in :mod:`.impersonate` (a browser TLS/HTTP fingerprint, optional extra).
One transport serves one egress (direct or one proxy); the caller keeps one per egress.

Cookies are ours, not the HTTP library's: each account has an :class:`AccountCookies` jar that the
caller passes with every call. The transport sends the jar's ``Cookie`` header and feeds the
response's ``Set-Cookie`` headers back into that jar only, so a Cloudflare cookie set for one
account can never go out with another (the libraries' own jars are disabled: ``DummyCookieJar``,
curl_cffi's ``discard_cookies``).

Timeouts: ``connect`` bounds the connection set-up (proxy and TLS included); ``read`` bounds the
wait for the first byte and every gap between bytes. There is no total timeout: a long generation
is fine as long as bytes keep coming. Every transport failure is a :class:`TransportError` whose
message is safe to log and show (never a proxy password, never a cookie).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiohttp_socks
from multidict import CIMultiDict, CIMultiDictProxy

from claude2api.core.failures import Failure, UpstreamError
from claude2api.logs import redact_url

#: Proxy URL schemes both transports accept.
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
#: Cap on a jar (a hostile or broken upstream must not grow our memory): cookies and value size.
MAX_COOKIES = 32
MAX_COOKIE_VALUE = 4096


class TransportError(UpstreamError):
    """claude.ai could not be reached or stopped answering: a transient failure, message safe to show."""

    def __init__(self, detail: str, *, timeout: bool = False) -> None:
        message = "claude.ai did not answer in time" if timeout else f"could not reach claude.ai: {detail}"
        super().__init__(Failure.TRANSIENT, message)
        self.timeout = timeout


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float | None = 30.0
    read: float | None = 600.0


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, slots=True)
class FilePart:
    """One file of a multipart upload (claude.ai takes a single part named ``file``)."""

    filename: str
    content_type: str
    data: bytes
    field: str = "file"


@dataclass(frozen=True, slots=True)
class Response:
    """A whole (bounded) response. ``truncated``: the body was longer than the read limit."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    truncated: bool = False


class Stream(ABC):
    """An open streaming response: status and headers now, body chunks as they arrive."""

    status: int
    headers: CIMultiDictProxy[str]

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; raises :class:`TransportError` on a read timeout or a reset."""


class AccountCookies:
    """The cookie jar of one account: its ``sessionKey`` plus what claude.ai (Cloudflare) set for it.

    ``browser_cookie`` is an optional ``Cookie`` header copied by the operator from a browser (for
    ``cf_clearance``, which is bound to that browser's user-agent); its ``sessionKey`` is ignored:
    the account's key always wins. A ``Set-Cookie: sessionKey=…`` from upstream is ignored too (the
    key is the account's identity; rotating it is not the transport's call). Domain and path are
    not tracked: a jar only ever talks to the one claude.ai base URL.
    """

    def __init__(self, session_key: str, browser_cookie: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.session_key = session_key
        self.clock = clock
        self._cookies: dict[str, tuple[str, float | None]] = {}  # name -> (value, expires_at)
        for name, value in parse_cookie_header(browser_cookie or ""):
            self._store(name, value, None)

    def header(self) -> str:
        """The ``Cookie`` header value: ``sessionKey`` first, then every unexpired cookie."""
        now = self.clock()
        expired = [name for name, (_, expires) in self._cookies.items() if expires is not None and expires <= now]
        for name in expired:
            del self._cookies[name]
        return "; ".join([f"sessionKey={self.session_key}", *(f"{n}={v}" for n, (v, _) in self._cookies.items())])

    def absorb(self, set_cookies: Iterable[str]) -> None:
        """Take the ``Set-Cookie`` header values of a response (deletions and expiry included)."""
        now = self.clock()
        for raw in set_cookies:
            parsed: SimpleCookie = SimpleCookie()
            try:
                parsed.load(raw)
            except CookieError:
                continue
            for name, morsel in parsed.items():
                expires = _expiry(morsel["max-age"], morsel["expires"], now)
                if expires is not None and expires <= now:
                    self._cookies.pop(name, None)
                else:
                    self._store(name, morsel.value, expires)

    def names(self) -> list[str]:
        """Cookie names without values (for diagnostics), ``sessionKey`` excluded."""
        return list(self._cookies)

    def get(self, name: str) -> str | None:
        entry = self._cookies.get(name)
        return entry[0] if entry else None

    def _store(self, name: str, value: str, expires: float | None) -> None:
        if name == "sessionKey" or len(value) > MAX_COOKIE_VALUE:
            return
        if name not in self._cookies and len(self._cookies) >= MAX_COOKIES:
            return
        self._cookies[name] = (value, expires)

    def __repr__(self) -> str:
        return f"AccountCookies(names={self.names()})"


def parse_cookie_header(header: str) -> list[tuple[str, str]]:
    """``a=1; b=2`` -> pairs; malformed pieces are skipped."""
    pairs = []
    for piece in header.split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep and name:
            pairs.append((name.strip(), value.strip()))
    return pairs


def _expiry(max_age: str, expires: str, now: float) -> float | None:
    if max_age:
        try:
            return now + int(max_age)
        except ValueError:
            return None
    if expires:
        from email.utils import parsedate_to_datetime

        try:
            return parsedate_to_datetime(expires).timestamp()
        except (TypeError, ValueError):
            return None
    return None


def encode_multipart(parts: Sequence[FilePart]) -> tuple[str, bytes]:
    """A browser-shaped multipart body (``----WebKitFormBoundary…``) and its content type.

    Built here, not by the HTTP library, so both transports send the same bytes.
    """
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    boundary = "----WebKitFormBoundary" + "".join(secrets.choice(alphabet) for _ in range(16))
    chunks: list[bytes] = []
    for part in parts:
        filename = part.filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{part.field}"; filename="{filename}"\r\n'
            f"Content-Type: {part.content_type}\r\n\r\n".encode()
        )
        chunks.extend((part.data, b"\r\n"))
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def prepare(
    headers: Mapping[str, str],
    jar: AccountCookies | None,
    json_body: Any,
    body: bytes | None,
    files: Sequence[FilePart] | None,
) -> tuple[dict[str, str], bytes | None]:
    """Final headers (cookie from the jar, content type) and body bytes, the same on every transport."""
    out = {k if k.islower() else k.lower(): v for k, v in headers.items()}  # keeps the caller's (istr) names
    out.pop("cookie", None)
    if jar is not None:
        out["cookie"] = jar.header()
    if files:
        out["content-type"], body = encode_multipart(files)
    elif json_body is not None:
        out["content-type"] = "application/json"
        body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
    return out, body


def check_proxy(proxy: str | None) -> None:
    if proxy and urlsplit(proxy).scheme.lower() not in PROXY_SCHEMES:
        raise ValueError(f"unsupported proxy scheme in {redact_url(proxy)}; expected one of {', '.join(PROXY_SCHEMES)}")


class UpstreamTransport(ABC):
    """How the claude.ai client sends requests. One instance per egress (direct or one proxy)."""

    #: ``aiohttp`` or ``impersonate:<profile>``: what logs and ``claude2api sessions`` show.
    name: str
    #: The proxy URL (with credentials; show it through :func:`~claude2api.logs.redact_url`).
    proxy: str | None

    @abstractmethod
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        jar: AccountCookies | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        files: Sequence[FilePart] | None = None,
        max_body: int = 1 << 20,
    ) -> Response:
        """One call, body read up to ``max_body`` bytes (then ``truncated`` and the rest dropped).
        Redirects are never followed (a 302 from claude.ai is a Cloudflare block)."""

    @abstractmethod
    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        jar: AccountCookies | None = None,
        json_body: Any = None,
    ) -> AbstractAsyncContextManager[Stream]:
        """``async with transport.stream(...) as s:`` — leaving the block early (a client that went
        away, a cancellation) closes the upstream connection."""

    @abstractmethod
    async def close(self) -> None: ...

    def describe(self) -> str:
        """``name via redacted-proxy`` or ``name direct``: safe to log."""
        return f"{self.name} via {redact_url(self.proxy)}" if self.proxy else f"{self.name} direct"


# --------------------------------------------------------------------------- aiohttp

#: Failures of the aiohttp transport (a SOCKS proxy's are not aiohttp errors).
AIOHTTP_ERRORS = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
    aiohttp_socks.ProxyError,
    aiohttp_socks.ProxyConnectionError,
    aiohttp_socks.ProxyTimeoutError,
)


def aiohttp_error(exc: BaseException) -> TransportError:
    """A safe :class:`TransportError` for an aiohttp/aiohttp-socks failure: never ``str(exc)`` of a
    proxy error from aiohttp (it holds the proxy URL with its password)."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp_socks.ProxyTimeoutError)):
        return TransportError("timeout", timeout=True)
    detail = type(exc).__name__
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        detail += f" (the proxy answered HTTP {exc.status})"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        detail += f" ({exc.host}:{exc.port})"
    elif isinstance(exc, (aiohttp_socks.ProxyError, aiohttp_socks.ProxyConnectionError)):
        detail += f" ({exc})"  # aiohttp-socks messages name the proxy host, never its credentials
    return TransportError(detail)


class AiohttpTransport(UpstreamTransport):
    """Plain aiohttp (Python's OpenSSL TLS, HTTP/1.1): always available, not browser-like."""

    name = "aiohttp"

    def __init__(
        self,
        *,
        proxy: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` replaces the system trust store (tests pass one trusting their CA)."""
        check_proxy(proxy)
        self.proxy = proxy
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.read)
        kwargs: dict[str, Any] = {"timeout": timeout, "cookie_jar": aiohttp.DummyCookieJar(), "read_bufsize": 2**18}
        ssl_arg: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._proxy_arg: str | None = None
        scheme = urlsplit(proxy).scheme.lower() if proxy else ""
        connector: aiohttp.BaseConnector
        if proxy and scheme.startswith("socks"):
            # aiohttp-socks knows socks4/socks5 only; the "h"/"a" variants mean "let the proxy resolve".
            base = {"socks5h": "socks5", "socks4a": "socks4"}.get(scheme, scheme)
            parts = urlsplit(proxy)
            connector = aiohttp_socks.ProxyConnector.from_url(
                urlunsplit((base, parts.netloc, parts.path, "", "")),
                rdns=scheme in ("socks5h", "socks4a"),
                limit=0,
                ssl=ssl_arg,
            )
        else:
            connector = aiohttp.TCPConnector(limit=0, ssl=ssl_arg)
            self._proxy_arg = proxy
        self._http = aiohttp.ClientSession(connector=connector, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        jar: AccountCookies | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        files: Sequence[FilePart] | None = None,
        max_body: int = 1 << 20,
    ) -> Response:
        final_headers, data = prepare(headers, jar, json_body, body, files)
        try:
            async with self._http.request(
                method, url, headers=final_headers, data=data, allow_redirects=False, proxy=self._proxy_arg
            ) as resp:
                if jar is not None:
                    jar.absorb(resp.headers.getall("set-cookie", []))
                content = await resp.content.read(max_body + 1) if max_body >= 0 else b""
                truncated = len(content) > max_body
                if truncated:
                    resp.close()  # the rest is unread: this connection cannot be reused
                return Response(resp.status, CIMultiDictProxy(CIMultiDict(resp.headers)), content[:max_body], truncated)
        except AIOHTTP_ERRORS as exc:
            raise aiohttp_error(exc) from None

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        jar: AccountCookies | None = None,
        json_body: Any = None,
    ) -> AsyncIterator[Stream]:
        final_headers, data = prepare(headers, jar, json_body, None, None)
        try:
            resp = await self._http.request(
                method, url, headers=final_headers, data=data, allow_redirects=False, proxy=self._proxy_arg
            )
        except AIOHTTP_ERRORS as exc:
            raise aiohttp_error(exc) from None
        del final_headers, data  # sent: not kept alive by this frame for the whole stream
        if jar is not None:
            jar.absorb(resp.headers.getall("set-cookie", []))
        stream = _AiohttpStream(resp)
        try:
            yield stream
        finally:
            if stream.finished:
                resp.release()
            else:
                resp.close()  # left early: drop the connection so claude.ai sees the client go

    async def close(self) -> None:
        await self._http.close()


class _AiohttpStream(Stream):
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = CIMultiDictProxy(CIMultiDict(resp.headers))
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except AIOHTTP_ERRORS as exc:
            raise aiohttp_error(exc) from None
        self.finished = True
