"""A Cloudflare-like front for any aiohttp app (the fake claude.ai): TLS, JA4 checks, ``__cf_bm``.

How it works. :class:`CloudflareFront` listens on a loopback port (the public one). For each
connection it reads the raw TLS ClientHello *before* any handshake, computes its JA4 (FoxIO spec)
and collects its ALPN list, then opens a connection to a TLS-terminating aiohttp server on another
loopback port, remembers the fingerprint under that connection's local port, replays the hello and
relays bytes both ways. The aiohttp server's first middleware looks the fingerprint up by the
request's peer port and decides, the way Cloudflare's bot management does:

* a fingerprint that is not browser-like (:func:`browser_like`: TLS 1.3, ``h2`` offered first,
  a browser-sized extension list) gets the challenge page: ``403``,
  ``cf-mitigated: challenge``, the captured "Just a moment..." HTML — unless the request carries a
  ``cf_clearance`` the test granted for that exact user-agent (:meth:`CloudflareFront.grant_clearance`,
  an operator copying the cookie from a browser);
* a passing client without a valid ``__cf_bm`` gets one (``Set-Cookie``, Max-Age 1800). A client
  is identified by its ``sessionKey`` cookie (one account = one browser here). It may make
  ``cookie_grace`` (default 2) requests without sending a ``__cf_bm`` back; the next one is
  challenged, like a bot that ignores cookies, until it sends back a ``__cf_bm`` (every challenge
  of this kind sets a fresh one). A ``__cf_bm`` issued to another account is a
  leaked cookie: recorded in :attr:`CloudflareFront.crossed` and challenged.

The wrapped app must not be started yet (its middleware list must still be open); FakeClaude's
app is taken with ``fake._app()`` so fake_claude.py needs no change (:func:`serve_fake_claude`).

pytest fixtures (registered by the claude2api pytest plugin when ``trustme`` is installed):
``tls_ca`` (a trustme CA made for the test), ``ca_file`` (its PEM on disk, for curl) and
``cloudflare_claude`` (a started FakeClaude with one account behind the front).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from claude2api.testing.fake_claude import FakeClaude, fixture_bytes

_MAX_HELLO = 64 * 1024
_CF_BM = web.RequestKey("cf_bm", str)
#: The extensions JA4_c leaves out (they are in JA4_a already): server_name, ALPN.
_JA4_C_SKIP = {0x0000, 0x0010}
_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a, …, 0xfafa."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a TLS ClientHello says, as JA4 and Cloudflare look at it."""

    legacy_version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]  # in the order sent
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]

    @property
    def grease(self) -> bool:
        return any(map(is_grease, self.ciphers)) or any(map(is_grease, self.extensions))

    @property
    def ja4(self) -> str:
        return ja4(self)


def read_hello(buffer: bytes) -> tuple[bytes, int] | None:
    """The ClientHello handshake message in ``buffer`` (TLS records), with the bytes it took, or
    None if more bytes are needed. ValueError if this is not TLS or the hello is too large."""
    handshake = b""
    offset = 0
    while True:
        if len(handshake) >= 4:
            size = int.from_bytes(handshake[1:4], "big")
            if size > _MAX_HELLO:
                raise ValueError("ClientHello too large")
            if len(handshake) >= 4 + size:
                return handshake[: 4 + size], offset
        if len(buffer) < offset + 5:
            return None
        content_type, _, length = struct.unpack("!BHH", buffer[offset : offset + 5])
        if content_type != 0x16:
            raise ValueError("not a TLS handshake record")
        if len(buffer) < offset + 5 + length:
            return None
        handshake += buffer[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if handshake[:1] != b"\x01":
            raise ValueError("not a ClientHello")


def parse_hello(message: bytes) -> ClientHello:
    """Parse a ClientHello handshake message (type, length, body). ValueError when malformed."""
    try:
        body = memoryview(message)[4:]
        legacy_version = int.from_bytes(body[0:2], "big")
        pos = 34
        pos += 1 + body[pos]  # session id
        cipher_len = int.from_bytes(body[pos : pos + 2], "big")
        ciphers = tuple(int.from_bytes(body[i : i + 2], "big") for i in range(pos + 2, pos + 2 + cipher_len, 2))
        pos += 2 + cipher_len
        pos += 1 + body[pos]  # compression methods
        extensions: list[int] = []
        sni: str | None = None
        alpn: tuple[str, ...] = ()
        versions: tuple[int, ...] = ()
        sigalgs: tuple[int, ...] = ()
        if pos < len(body):
            end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
            pos += 2
            while pos + 4 <= end:
                ext_type, ext_len = struct.unpack("!HH", body[pos : pos + 4])
                data = bytes(body[pos + 4 : pos + 4 + ext_len])
                pos += 4 + ext_len
                extensions.append(ext_type)
                if ext_type == 0x0000 and len(data) > 5:
                    sni = data[5 : 5 + int.from_bytes(data[3:5], "big")].decode("ascii", "replace")
                elif ext_type == 0x0010:
                    names, i = [], 2
                    while i < len(data):
                        names.append(data[i + 1 : i + 1 + data[i]].decode("ascii", "replace"))
                        i += 1 + data[i]
                    alpn = tuple(names)
                elif ext_type == 0x002B:
                    versions = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(1, 1 + data[0], 2))
                elif ext_type == 0x000D:
                    sigalgs = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(2, len(data), 2))
    except (IndexError, struct.error) as exc:
        raise ValueError("malformed ClientHello") from exc
    return ClientHello(legacy_version, ciphers, tuple(extensions), sni, alpn, versions, sigalgs)


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def ja4(hello: ClientHello) -> str:
    """The JA4 fingerprint (FoxIO, TCP): ``t13d1516h2_<ciphers hash>_<extensions+sigalgs hash>``."""
    versions = [v for v in hello.supported_versions if not is_grease(v)]
    version = _VERSIONS.get(max(versions) if versions else hello.legacy_version, "00")
    ciphers = [c for c in hello.ciphers if not is_grease(c)]
    extensions = [e for e in hello.extensions if not is_grease(e)]
    first_alpn = hello.alpn[0] if hello.alpn else ""
    alpn = f"{first_alpn[0]}{first_alpn[-1]}" if first_alpn else "00"
    part_a = f"t{version}{'d' if hello.sni else 'i'}{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{alpn}"
    part_b = _hash12(",".join(sorted(f"{c:04x}" for c in ciphers)))
    c_text = ",".join(sorted(f"{e:04x}" for e in extensions if e not in _JA4_C_SKIP))
    sigalgs = ",".join(f"{s:04x}" for s in hello.signature_algorithms)
    part_c = _hash12(f"{c_text}_{sigalgs}" if sigalgs else c_text)
    return f"{part_a}_{part_b}_{part_c}"


def browser_like(hello: ClientHello) -> bool:
    """The bot check: TLS 1.3 offered, ``h2`` first in ALPN, and a browser-sized extension list
    (15 or more without GREASE: Chrome, Safari and Firefox send 16-19; Python's ssl sends 11 and no ALPN)."""
    extensions = [e for e in hello.extensions if not is_grease(e)]
    return 0x0304 in hello.supported_versions and hello.alpn[:1] == ("h2",) and len(extensions) >= 15


@dataclass
class CloudflareFront:
    """A TLS front with Cloudflare-style checks for *app*; see the module docstring."""

    app: web.Application
    server_ssl: ssl.SSLContext
    cookie_grace: int = 2
    policy: Callable[[ClientHello], bool] = browser_like
    host: str = "localhost"
    base_url: str = ""
    hellos: list[ClientHello] = field(default_factory=list)
    challenged: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    crossed: list[tuple[str, str]] = field(default_factory=list)  # (issued to, presented by) session keys
    issued: dict[str, str] = field(default_factory=dict)  # __cf_bm value -> session key it was issued to

    def __post_init__(self) -> None:
        self._by_port: dict[int, ClientHello] = {}
        self._unreturned: dict[str, int] = {}
        self._clearances: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.app.middlewares.insert(0, self._gate)
        self.app.on_response_prepare.append(self._set_cookie)

    def grant_clearance(self, user_agent: str) -> str:
        """A ``cf_clearance`` value that passes the bot check for this user-agent (any fingerprint)."""
        token = secrets.token_urlsafe(32)
        self._clearances[token] = user_agent
        return token

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.server_ssl)
        await site.start()
        self._backend_port = self._runner.addresses[0][1]
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self._servers = [self._server]
        try:  # "localhost" may resolve to ::1 first (socks5 and socks4 resolve on the client side)
            self._servers.append(await asyncio.start_server(self._accept, "::1", port))
        except OSError:
            pass
        self.base_url = f"https://{self.host}:{port}"

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        await self._runner.cleanup()

    # -- the front: read the hello, then relay

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            buffer = b""
            while (found := read_hello(buffer)) is None:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
            hello = parse_hello(found[0])
            self.hellos.append(hello)
            backend = await asyncio.open_connection("127.0.0.1", self._backend_port)
            self._by_port[backend[1].get_extra_info("sockname")[1]] = hello
            backend[1].write(buffer)
            await _relay((reader, writer), backend)
        except (ValueError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    # -- the edge rules, in the app

    def _challenge(self, request: web.Request, reason: str) -> web.Response:
        self.challenged.append((request.path, reason))
        headers = {"cf-mitigated": "challenge", "content-type": "text/html"}
        return web.Response(status=403, body=fixture_bytes("error-403-cloudflare-challenge.html"), headers=headers)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        hello = self._by_port.get(peer[1]) if peer else None
        cookies = request.cookies
        client = cookies.get("sessionKey", "")
        clearance = cookies.get("cf_clearance")
        cleared = clearance is not None and self._clearances.get(clearance) == request.headers.get("user-agent")
        if not cleared and (hello is None or not self.policy(hello)):
            return self._challenge(request, "fingerprint")
        token = cookies.get("__cf_bm")
        owner = self.issued.get(token) if token else None
        if owner is not None and owner != client:
            self.crossed.append((owner, client))
            return self._challenge(request, "foreign __cf_bm")
        if owner is None:
            request[_CF_BM] = new = secrets.token_urlsafe(32)
            self.issued[new] = client
            unreturned = self._unreturned[client] = self._unreturned.get(client, 0) + 1
            if unreturned > self.cookie_grace:
                challenge = self._challenge(request, "__cf_bm never returned")
                await self._set_cookie(request, challenge)  # the way out: send this one back
                return challenge
        else:
            self._unreturned.pop(client, None)
        return await handler(request)

    async def _set_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        if token := request.get(_CF_BM):
            response.headers.add(
                "set-cookie", f"__cf_bm={token}; path=/; max-age=1800; HttpOnly; Secure; SameSite=None"
            )


async def _relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    pipes = [asyncio.create_task(pipe(client[0], target[1])), asyncio.create_task(pipe(target[0], client[1]))]
    try:
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
    finally:
        target[1].close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


def server_context(ca: object, host: str = "localhost") -> ssl.SSLContext:
    """A server TLS context with a certificate for *host* (and 127.0.0.1) from a trustme CA.
    ALPN offers only http/1.1: aiohttp serves no HTTP/2, so curl falls back as from an h1 origin."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host, "127.0.0.1").configure_cert(ctx)  # type: ignore[attr-defined]
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@asynccontextmanager
async def serve_fake_claude(fake: FakeClaude, ca: object, **front_options: object) -> AsyncIterator[CloudflareFront]:
    """Serve an unstarted *fake* behind the front over TLS; sets ``fake.base_url`` to the front."""
    front = CloudflareFront(fake._app(), server_context(ca), **front_options)  # type: ignore[arg-type]
    await front.start()
    fake.base_url = front.base_url
    try:
        yield front
    finally:
        await fake.close()
        await front.close()


try:
    import pytest
    import pytest_asyncio
    import trustme
except ImportError:  # pytest or trustme missing: the classes above still work, no fixtures
    pass
else:

    @pytest.fixture
    def tls_ca() -> trustme.CA:
        """A throwaway certificate authority for this test."""
        return trustme.CA()

    @pytest.fixture
    def ca_file(tls_ca: trustme.CA, tmp_path: object) -> str:
        """The test CA's certificate as a PEM file (curl wants a path)."""
        path = tmp_path / "ca.pem"  # type: ignore[operator]
        tls_ca.cert_pem.write_to_path(str(path))
        return str(path)

    @pytest_asyncio.fixture
    async def cloudflare_claude(tls_ca: trustme.CA) -> AsyncIterator[tuple[FakeClaude, CloudflareFront]]:
        """A FakeClaude with one "ok" account, behind the Cloudflare front over TLS."""
        fake = FakeClaude()
        fake.add_account()
        async with serve_fake_claude(fake, tls_ca) as front:
            yield fake, front
