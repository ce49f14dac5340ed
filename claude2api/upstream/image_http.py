"""Loading the images and documents clients send by URL: http(s) downloads, plus upload naming.

A client-supplied URL is fetched from the daemon's network, so :func:`fetch_image` and
:func:`fetch_document` are an SSRF boundary: they only ever connect to addresses they have checked
themselves (see :func:`fetch_image`). ``data:`` URLs are :mod:`claude2api.core.dataurl`'s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
from yarl import URL

from claude2api.core.dataurl import decode_data_url as decode_data_url  # re-exported: the one decoder
from claude2api.core.dataurl import is_media_type, sniff_media_type
from claude2api.core.failures import clip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Content types that say nothing about the body; the image type is then sniffed from its bytes.
_UNTYPED = frozenset({"application/octet-stream", "binary/octet-stream"})
_CHUNK_SIZE = 64 * 1024

_UPLOAD_FILENAMES = {
    "image/png": "image.png",
    "image/jpeg": "image.jpg",
    "image/gif": "image.gif",
    "image/webp": "image.webp",
    "application/pdf": "document.pdf",
}

# The well-known NAT64 prefix: its addresses reach the IPv4 address in their last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class ImageFetchError(Exception):
    """An image or document URL could not be loaded. ``str(exc)`` is the reason, safe to show to the client:
    it never contains the URL (which may carry credentials) nor the addresses a name resolved to."""


class ImageBudgetExceeded(Exception):
    """The images (or documents) of one request together are larger than its :class:`ByteBudget`."""


class ByteBudget:
    """The bytes the images of one request may still take; shared by its concurrent downloads, so
    memory stays within the per-request cap however many are in flight."""

    __slots__ = ("remaining",)

    def __init__(self, total: int) -> None:
        self.remaining = total

    def take(self, size: int) -> None:
        """Account for ``size`` more bytes; raises :class:`ImageBudgetExceeded` past the total."""
        self.remaining -= size
        if self.remaining < 0:
            raise ImageBudgetExceeded


def is_image_media_type(media_type: str) -> bool:
    """True for ``image/<subtype>`` in RFC 6838's characters, lower case: safe in an upload header."""
    return media_type.startswith("image/") and is_media_type(media_type)


def upload_filename(media_type: str) -> str:
    """The file name claude.ai's upload gets for a media type, as the browser and peers name it."""
    return _UPLOAD_FILENAMES.get(media_type.lower(), "file")


async def fetch_image(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool,
    budget: ByteBudget | None = None,
) -> tuple[str, bytes]:
    """Download an image over http(s); returns ``(media type, bytes)``.

    SSRF and DNS rebinding: for every hop this resolves the host itself (``loop.getaddrinfo``),
    refuses the URL if *any* address is not public (unless ``allow_private``), then sends the
    request to the checked IP literal, with the name in the ``Host`` header and as TLS
    ``server_hostname`` (SNI and certificate check). The connector never resolves the name again,
    so a second, different DNS answer cannot redirect the connection. Redirects are followed by
    hand (at most :data:`MAX_REDIRECTS`), each hop checked the same way. ``session`` is the
    daemon's image session (direct: ``PROXY`` is for claude.ai only); aiohttp keys pooled
    connections by IP *and* ``server_hostname``, so a TLS connection is never reused for another name.

    ``timeout`` bounds the whole download (DNS, redirects, body). The body must be ``image/*``, or
    untyped with PNG/JPEG/GIF/WebP magic bytes, and at most ``max_bytes`` long. The bytes are also
    taken from ``budget`` as they arrive, if given (:class:`ImageBudgetExceeded` past it).
    Raises :class:`ImageFetchError`.
    """
    read = partial(_read_image, max_bytes=max_bytes, budget=budget)
    return await _fetch(session, url, timeout, allow_private, "image/*", read)


async def fetch_document(
    session: aiohttp.ClientSession,
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool,
    budget: ByteBudget | None = None,
) -> tuple[str, bytes]:
    """Download a document over http(s), exactly as :func:`fetch_image` downloads an image (same
    address checks, redirects, deadline and limits); returns ``(declared media type, bytes)``,
    the type ``application/octet-stream`` when the server gave none. Whether claude.ai reads that
    type is :mod:`claude2api.core.documents`' call. Raises :class:`ImageFetchError`."""
    read = partial(_read_any, max_bytes=max_bytes, budget=budget)
    return await _fetch(session, url, timeout, allow_private, "*/*", read)


async def _fetch(
    session: aiohttp.ClientSession,
    raw_url: str,
    timeout: float,
    allow_private: bool,
    accept: str,
    read: Callable[[aiohttp.ClientResponse], Awaitable[tuple[str, bytes]]],
) -> tuple[str, bytes]:
    try:
        async with asyncio.timeout(timeout):
            url = _parse_url(raw_url)
            for _ in range(MAX_REDIRECTS + 1):
                async with await _request(session, url, allow_private, accept) as resp:
                    if resp.status in _REDIRECT_STATUSES:
                        url = _redirect_target(url, resp)
                        continue
                    return await read(resp)
            raise ImageFetchError(f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise ImageFetchError(f"timed out after {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ImageFetchError(_describe_client_error(exc)) from None


def _parse_url(url: str | URL) -> URL:
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise ImageFetchError("invalid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise ImageFetchError("only http and https URLs can be fetched")
    if not parsed.raw_host:
        raise ImageFetchError("URL has no host")
    return parsed


def _redirect_target(url: URL, resp: aiohttp.ClientResponse) -> URL:
    location = resp.headers.get("Location")
    if not location:
        raise ImageFetchError(f"HTTP {resp.status} redirect without a Location")
    try:
        target = url.join(URL(location))
    except ValueError:
        raise ImageFetchError("invalid redirect Location") from None
    return _parse_url(target)


async def _request(
    session: aiohttp.ClientSession, url: URL, allow_private: bool, accept: str
) -> aiohttp.ClientResponse:
    """Send the GET to the first reachable checked address of ``url``'s host (see fetch_image)."""
    assert url.raw_host is not None  # checked by _parse_url
    addresses = await _resolve(url.raw_host, url.port, allow_private)
    error: aiohttp.ClientConnectorError | None = None
    for address in addresses:
        try:
            return await session.get(
                url.with_host(str(address)),
                headers={"Host": url.host_port_subcomponent or url.raw_host, "Accept": accept},
                server_hostname=url.raw_host if url.scheme == "https" else None,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorError as exc:
            error = exc
    assert error is not None
    raise error


async def _resolve(host: str, port: int | None, allow_private: bool) -> list[IPAddress]:
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _getaddrinfo(host, port)
    if not allow_private and any(_is_forbidden_address(a) for a in addresses):
        raise ImageFetchError("host is a private, loopback or reserved address")
    return addresses


async def _getaddrinfo(host: str, port: int | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ImageFetchError("could not resolve host") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise ImageFetchError("could not resolve host")
    return addresses


def _is_forbidden_address(address: IPAddress) -> bool:
    """True for anything but a public unicast address, judging IPv6 wrappers by their IPv4 inside."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 (64:ff9b::/96) address leads to."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _check_response(resp: aiohttp.ClientResponse, max_bytes: int, budget: ByteBudget | None, what: str) -> None:
    if resp.status != 200:
        raise ImageFetchError(f"HTTP status {resp.status}")
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise ImageFetchError(f"{what} is larger than {max_bytes} bytes")
    if resp.content_length is not None and budget is not None and resp.content_length > budget.remaining:
        raise ImageBudgetExceeded


async def _read_any(resp: aiohttp.ClientResponse, max_bytes: int, budget: ByteBudget | None) -> tuple[str, bytes]:
    _check_response(resp, max_bytes, budget, "document")
    data = await _read_limited(resp, max_bytes, budget, "document")
    if not data:
        raise ImageFetchError("empty response")
    return resp.content_type, data


async def _read_image(resp: aiohttp.ClientResponse, max_bytes: int, budget: ByteBudget | None) -> tuple[str, bytes]:
    _check_response(resp, max_bytes, budget, "image")
    declared = resp.content_type  # aiohttp says application/octet-stream when the header is missing
    if not is_image_media_type(declared) and declared not in _UNTYPED:
        raise ImageFetchError(f"not an image (Content-Type {clip(declared)})")
    data = await _read_limited(resp, max_bytes, budget, "image")
    if not data:
        raise ImageFetchError("empty response")
    media_type = declared if is_image_media_type(declared) else sniff_media_type(data)
    if media_type is None or not media_type.startswith("image/"):
        raise ImageFetchError(f"not an image (Content-Type {clip(declared)}, unknown content)")
    return media_type, data


async def _read_limited(
    resp: aiohttp.ClientResponse, max_bytes: int, budget: ByteBudget | None, what: str
) -> bytes:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK_SIZE):
        if len(body) + len(chunk) > max_bytes:
            raise ImageFetchError(f"{what} is larger than {max_bytes} bytes")
        if budget is not None:
            budget.take(len(chunk))
        body += chunk
    return bytes(body)


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    """A reason for an aiohttp failure without the URL or the address aiohttp puts in its messages."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"could not connect ({exc.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP status {exc.status}"
    return f"request failed ({type(exc).__name__})"
