"""The impersonating transport: claude.ai reached with a browser's TLS and HTTP/2 fingerprint.

Why curl_cffi (``pip install 'claude2api[impersonate]'``). The candidates on PyPI in 2026:

* **curl_cffi** (lexiforest): Python bindings to curl-impersonate, i.e. libcurl built against
  BoringSSL — Chrome's own TLS library — with Chrome/Safari/Firefox profiles that set the cipher
  and extension lists, GREASE, extension permutation, certificate compression, ALPS, and the HTTP/2
  SETTINGS/priority/pseudo-header order. Releases track Chrome closely (0.17 ships ``chrome152``),
  abi3 wheels for Linux/macOS/Windows (x86-64 and arm64), an asyncio session with streaming, and
  libcurl's proxy support: http, https, socks4, socks4a, socks5, socks5h, with credentials. It is
  what clove and the curl_cffi-based claude.ai libraries use.
* **rnet** (Rust ``wreq``, BoringSSL too; clewdr's stack): good fingerprints and fast, but a younger
  API that has changed between minor releases, and fewer platforms with wheels.
* **primp** (Rust, rquest/BoringSSL): sync-first; its async story and streaming are thinner.
* **tls-client** (Python wrapper over bogdanfinn's Go ``tls-client`` via a shared library, uTLS):
  not BoringSSL, sync only (threads for async), the Python package is sparsely maintained.

curl_cffi is the well-kept BoringSSL one with the widest platform coverage and a native asyncio
API, so it is the one we depend on (optionally).

Behaviour matches :class:`~.transport.AiohttpTransport`: no redirects, a connect timeout and a read
gap (first byte and between bytes) but no total timeout, the account's jar and only that
(``discard_cookies``: the session keeps none), the same multipart bytes, and leaving a stream early
aborts the transfer, which closes the connection.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from claude2api.upstream.browser import ALIASES, DEFAULT_PROFILE
from claude2api.upstream.transport import (
    DEFAULT_TIMEOUTS,
    AccountCookies,
    FilePart,
    Response,
    Stream,
    Timeouts,
    TransportError,
    UpstreamTransport,
    check_proxy,
    prepare,
)

try:
    from curl_cffi import CurlError, CurlOpt
    from curl_cffi.requests import AsyncSession, RequestsError
    from curl_cffi.requests import Response as CurlResponse
    from curl_cffi.requests.impersonate import BrowserType

    _HAVE_CURL = True
except ImportError:  # the optional extra is not installed
    _HAVE_CURL = False

#: curl error codes worth a word in the message; the rest show as "curl error N".
_CURL_CODES = {
    5: "could not resolve the proxy",
    6: "could not resolve the host",
    7: "could not connect",
    28: "timeout",
    35: "TLS handshake failed",
    52: "empty reply",
    55: "send failed",
    56: "connection reset",
    60: "certificate not trusted",
    97: "proxy handshake failed",
}


def available() -> bool:
    """Whether curl_cffi is installed (``UPSTREAM_TRANSPORT=auto`` picks this transport then)."""
    return _HAVE_CURL


def check_profile(name: str) -> str:
    """The curl_cffi profile for an ``UPSTREAM_IMPERSONATE`` name (aliases resolved)."""
    resolved = ALIASES.get(name, name)
    if available() and resolved not in {b.value for b in BrowserType}:
        raise ValueError(f"curl_cffi does not know the browser profile {name!r}")
    return resolved


def curl_error(exc: BaseException) -> TransportError:
    """A safe message: the curl code and a phrase, never ``str(exc)`` (it may carry the proxy URL)."""
    code = getattr(exc, "code", None)
    code = int(code) if isinstance(code, int) else None
    if code == 28 or isinstance(exc, asyncio.TimeoutError):
        return TransportError("timeout", timeout=True)
    phrase = _CURL_CODES.get(code or -1, "transfer failed")
    return TransportError(f"{phrase} (curl error {code})" if code is not None else phrase)


class ImpersonateTransport(UpstreamTransport):
    """curl_cffi with a browser profile. Raises RuntimeError if curl_cffi is not installed."""

    def __init__(
        self,
        *,
        profile: str = DEFAULT_PROFILE,
        proxy: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        ca_file: str | None = None,
        max_clients: int = 64,
    ) -> None:
        """``ca_file`` replaces the system trust store (tests pass their CA); ``max_clients`` bounds
        the concurrent transfers (curl handles) of this egress."""
        if not _HAVE_CURL:
            raise RuntimeError("the impersonating transport needs curl_cffi: pip install 'claude2api[impersonate]'")
        check_proxy(proxy)
        self.profile = check_profile(profile)
        self.name = f"impersonate:{self.profile}"
        self.proxy = proxy
        self.timeouts = timeouts
        options: dict[Any, Any] = {}
        if timeouts.connect is not None:
            options[CurlOpt.CONNECTTIMEOUT_MS] = int(timeouts.connect * 1000)
        if timeouts.read is not None:
            # curl's own stall guard (whole seconds) backs up ours, so an abandoned transfer ends too.
            options[CurlOpt.LOW_SPEED_LIMIT] = 1
            options[CurlOpt.LOW_SPEED_TIME] = max(1, math.ceil(timeouts.read))
        self._session: AsyncSession[CurlResponse] = AsyncSession(
            impersonate=self.profile,
            proxy=proxy,
            verify=ca_file if ca_file else True,  # type: ignore[arg-type]  # curl_cffi takes a CA path too
            timeout=None,  # type: ignore[arg-type]  # None is curl_cffi's "no total timeout"; ours are above
            allow_redirects=False,
            trust_env=False,
            discard_cookies=True,
            default_headers=False,
            max_clients=max_clients,
            curl_options=options,
        )

    async def _open(self, method: str, url: str, headers: dict[str, str], data: bytes | None) -> CurlResponse:
        """Send the request and wait for the response head (the first-byte part of the read timeout)."""
        budget = None
        if self.timeouts.read is not None:
            budget = self.timeouts.read + (self.timeouts.connect or 0)
        try:
            async with asyncio.timeout(budget):
                return await self._session.request(
                    method,  # type: ignore[arg-type]
                    url,
                    headers=headers,
                    data=data,
                    stream=True,
                    accept_encoding=headers.get("accept-encoding"),
                )
        except (CurlError, RequestsError, TimeoutError) as exc:
            raise curl_error(exc) from None

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
        rsp = await self._open(method, url, final_headers, data)
        stream = _CurlStream(self, rsp, jar)
        content = bytearray()
        truncated = False
        try:
            async for chunk in stream.chunks():
                content += chunk
                if len(content) > max_body:
                    truncated = True
                    break
        finally:
            await stream.aclose()
        return Response(stream.status, stream.headers, bytes(content[:max_body]), truncated)

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
        rsp = await self._open(method, url, final_headers, data)
        stream = _CurlStream(self, rsp, jar)
        try:
            yield stream
        finally:
            await stream.aclose()

    async def close(self) -> None:
        await self._session.close()


class _CurlStream(Stream):
    def __init__(self, transport: ImpersonateTransport, rsp: CurlResponse, jar: AccountCookies | None) -> None:
        self._transport = transport
        self._rsp = rsp
        self.status = int(rsp.status_code)
        self.headers = CIMultiDictProxy(CIMultiDict((k, v or "") for k, v in rsp.headers.multi_items()))
        if jar is not None:
            jar.absorb(self.headers.getall("set-cookie", []))
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._rsp.aiter_content()  # type: ignore[no-untyped-call]  # unannotated in curl_cffi
        read = self._transport.timeouts.read
        try:
            while True:
                try:
                    async with asyncio.timeout(read):
                        chunk = await anext(content)
                except StopAsyncIteration:
                    break
                yield chunk
        except (CurlError, RequestsError, TimeoutError) as exc:
            raise curl_error(exc) from None
        self.finished = True

    async def aclose(self) -> None:
        """Abort an unfinished transfer (curl drops the connection), then wait for curl's task."""
        rsp = self._rsp
        if not self.finished:
            if rsp.quit_now is not None:
                rsp.quit_now.set()  # the next write callback aborts, if curl is still receiving
            if rsp.curl is not None:
                self._transport._session.acurl.remove_handle(rsp.curl)  # abort now, even if no byte comes
        if rsp.astream_task is not None:
            # A cancelled or failed transfer is the expected end here; our own cancellation still propagates.
            await asyncio.gather(rsp.astream_task, return_exceptions=True)
