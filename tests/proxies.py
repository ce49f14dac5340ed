"""Loopback proxy servers for tests: HTTP (CONNECT and absolute-URI), SOCKS5 and SOCKS4/4a.

Each is an async context manager listening on 127.0.0.1 that yields itself: ``.url`` is the URL to
configure as ``PROXY``, ``.targets`` every (host, port) a client asked to reach, ``.auths`` the
credentials each client presented, and ``.domains`` the host names that reached the proxy
unresolved (socks5h / socks4a / HTTP), which proves the proxy, not the client, resolved them.
``.session_keys`` holds every ``sessionKey`` cookie seen in plain-http traffic from clients: which
claude.ai account went out through this proxy. Pure asyncio streams; tunnels relay bytes both ways until either side closes.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
import struct
from typing import Self
from urllib.parse import quote, urlsplit


class ProxyServer:
    scheme = ""

    def __init__(self, user: str | None = None, password: str | None = None, *, scheme: str | None = None) -> None:
        """``scheme`` only changes ``.url``: ``socks5h`` for a SOCKS5 server, ``socks4a`` for a SOCKS4 one."""
        self.user, self.password = user, password
        self.scheme = scheme or self.scheme
        self.targets: list[tuple[str, int]] = []
        self.domains: list[str] = []
        self.auths: list[object] = []
        self.session_keys: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password or '', safe='')}@" if self.user else ""
        return f"{self.scheme}://{auth}127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        await asyncio.sleep(0)  # let a just-accepted connection's task start and register itself
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # only __aexit__ cancels us; asyncio's done-callback would log a cancelled task as an error
        finally:
            self._tasks.discard(task)
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def record(self, host: str, port: int, domain: bool) -> None:
        self.targets.append((host, port))
        if domain:
            self.domains.append(host)

    def sniff(self, data: bytes) -> None:
        """Note the accounts (``sessionKey`` cookies) in plain-http bytes from a client."""
        self.session_keys.update(m.decode() for m in _SESSION_KEY.findall(data))

    async def relay(self, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                    target: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        """Copy bytes both ways until either side closes; close the target (``_accept`` closes the client)."""

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sniff: bool) -> None:
            while data := await reader.read(65536):
                if sniff:
                    self.sniff(data)
                writer.write(data)
                await writer.drain()

        pipes = [asyncio.create_task(pipe(client[0], target[1], True)),
                 asyncio.create_task(pipe(target[0], client[1], False))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            target[1].close()  # before the next await, which a cancellation may interrupt
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)


class HTTPProxy(ProxyServer):
    """CONNECT tunnels, and absolute-URI requests forwarded in origin-form with ``Connection: close``."""

    scheme = "http"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
        headers = [(name, value.strip()) for name, value in (line.split(":", 1) for line in lines)]
        auth = next((v for n, v in headers if n.lower() == "proxy-authorization"), None)
        self.auths.append(auth)
        if self.user is not None:
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if auth != expected:
                writer.write(b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"'
                             b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
        if method == "CONNECT":
            parts = urlsplit("//" + target)
        else:
            parts = urlsplit(target)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
            kept = [f"{n}: {v}" for n, v in headers if n.lower() not in hop]
            head = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
            self.sniff(head.encode("latin-1"))
        host, port = parts.hostname or "", parts.port or 80
        self.record(host, port, not _is_ip(host))
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            upstream[1].write(head.encode("latin-1"))
        await self.relay((reader, writer), upstream)


class SOCKS5Proxy(ProxyServer):
    """RFC 1928 CONNECT with no-auth, or RFC 1929 username/password when credentials are set."""

    scheme = "socks5"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, count = await reader.readexactly(2)
        offered = await reader.readexactly(count)
        method = 0x02 if self.user is not None else 0x00
        if method not in offered:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, method]))
        if method == 0x02:
            _, size = await reader.readexactly(2)
            user = (await reader.readexactly(size)).decode()
            password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            self.auths.append((user, password))
            ok = (user, password) == (self.user, self.password)
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                return
        _, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.record(host, port, atyp == 3)
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
            return
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await self.relay((reader, writer), upstream)


class SOCKS4Proxy(ProxyServer):
    """SOCKS4 CONNECT, and SOCKS4a (address 0.0.0.x followed by a host name). ``.auths`` holds user ids."""

    scheme = "socks4"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, command, port, address = struct.unpack("!BBH4s", await reader.readexactly(8))
        self.auths.append((await reader.readuntil(b"\0"))[:-1].decode())
        is_4a = address[:3] == b"\0\0\0" and address[3] != 0
        host = (await reader.readuntil(b"\0"))[:-1].decode() if is_4a else socket.inet_ntoa(address)
        self.record(host, port, is_4a)
        upstream = None
        if command == 1:
            try:
                upstream = await asyncio.open_connection(host, port)
            except OSError:
                pass
        writer.write(b"\x00" + (b"\x5a" if upstream else b"\x5b") + bytes(6))
        if upstream:
            await self.relay((reader, writer), upstream)


_SESSION_KEY = re.compile(rb"sessionKey=([A-Za-z0-9_-]+)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
