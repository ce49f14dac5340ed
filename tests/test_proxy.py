"""Outbound proxy support (``PROXY``): every claude.ai call goes through a loopback proxy.

HTTP proxies see absolute-URI requests (the fake claude.ai speaks plain http) and CONNECT; SOCKS
proxies see CONNECT commands. ``socks5h`` and ``socks4a`` must hand the host name to the proxy.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import aiohttp.connector
import pytest
import structlog
from aiohttp import web
from yarl import URL

from claude2api.logs import configure_logging
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import run_daemon, settings_for

from proxies import HTTPProxy, ProxyServer, SOCKS4Proxy, SOCKS5Proxy
from support import MODEL, raw_post, sdk

USER = "proxy-user"
PASSWORD = "pr0xy-s3cret@pw"  # the "@" must travel percent-encoded in PROXY and decoded to the proxy
WRONG_PASSWORD = "wr0ng-pr0xy-pw:x"
PASSWORDS = (PASSWORD, WRONG_PASSWORD, quote(PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))

PROXIES: dict[str, tuple[Callable[[], ProxyServer], str]] = {
    # name: (proxy factory, host name in CLAUDE_BASE_URL)
    "http": (lambda: HTTPProxy(), "127.0.0.1"),
    "http-auth": (lambda: HTTPProxy(USER, PASSWORD), "127.0.0.1"),
    "socks5": (lambda: SOCKS5Proxy(), "127.0.0.1"),
    "socks5-auth": (lambda: SOCKS5Proxy(USER, PASSWORD), "127.0.0.1"),
    "socks5h": (lambda: SOCKS5Proxy(USER, PASSWORD, scheme="socks5h"), "localhost"),
    "socks4": (lambda: SOCKS4Proxy(), "127.0.0.1"),
    "socks4a": (lambda: SOCKS4Proxy(scheme="socks4a"), "localhost"),
}


def ask(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


def base_url(fake: FakeClaude, host: str) -> str:
    return str(URL(fake.base_url).with_host(host))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def error_of(status: int, raw: bytes) -> str:
    """The message of a 502 OpenAI-shaped JSON error, checked to be free of secrets and tracebacks."""
    assert status == 502, raw
    body = json.loads(raw)
    assert body["error"]["type"] == "server_error" and body["error"]["code"] == "upstream_error"
    message = body["error"]["message"]
    assert "Traceback" not in message
    assert not [p for p in PASSWORDS if p in raw.decode()]
    return message


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every log line (structlog and stdlib, debug and up) as JSON in a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_logger_on_first_use=False)
    yield stream
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    assert openssl, "the CONNECT tests need the openssl command to make a certificate"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
async def https_url(fake: FakeClaude, certificate, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """``fake`` also on https, trusted by every aiohttp client in this test: aiohttp uses CONNECT."""
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    # aiohttp verifies with this module-level context (looked up on every connection).
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", ssl.create_default_context(cafile=str(cert)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(fake._runner, sock, ssl_context=server_side).start()  # stopped with the fake
    yield f"https://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("transport", ["aiohttp", "impersonate"])
@pytest.mark.parametrize("name", PROXIES)
async def test_completions_go_through_the_proxy(name: str, transport: str, fake: FakeClaude, make_daemon) -> None:
    factory, host = PROXIES[name]
    fake.reply("proxied answer")
    async with factory() as proxy:
        env = {"PROXY": proxy.url, "CLAUDE_BASE_URL": base_url(fake, host), "UPSTREAM_TRANSPORT": transport}
        daemon = await make_daemon(env=env)
        async with sdk(daemon) as client:
            result = await client.chat.completions.create(**ask())
            stream = await client.chat.completions.create(**ask(), stream=True)
            chunks = [c async for c in stream]
        await daemon.idle()

    assert result.choices[0].message.content == "proxied answer"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "proxied answer"
    assert len(fake.calls_to("/completion")) == 2
    # Every connection to claude.ai was opened by the proxy, to the fake's address.
    assert proxy.targets and set(proxy.targets) == {(host, URL(fake.base_url).port)}
    assert proxy.domains == (["localhost"] * len(proxy.targets) if host == "localhost" else [])
    if isinstance(proxy, HTTPProxy):  # absolute-URI forwarding, one connection per request
        assert len(proxy.targets) == len(fake.calls)
        expected_auth = proxy.user and "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert set(proxy.auths) == {expected_auth}
    elif isinstance(proxy, SOCKS5Proxy):
        assert set(proxy.auths) <= {(USER, PASSWORD)} and bool(proxy.auths) == bool(proxy.user)


@pytest.mark.parametrize("transport", ["aiohttp", "impersonate"])
@pytest.mark.parametrize("credentials", [(), (USER, PASSWORD)], ids=["open", "auth"])
async def test_https_claude_goes_through_an_http_connect_tunnel(
    credentials, transport: str, https_url: str, certificate, fake: FakeClaude, make_daemon
) -> None:
    fake.reply("tunnelled")
    async with HTTPProxy(*credentials) as proxy:
        env = {"PROXY": proxy.url, "CLAUDE_BASE_URL": https_url, "UPSTREAM_TRANSPORT": transport}
        daemon = await make_daemon(env={**env, "UPSTREAM_CA_FILE": str(certificate[0])})
        async with sdk(daemon) as client:
            result = await client.chat.completions.create(**ask())
            stream = await client.chat.completions.create(**ask(), stream=True)
            chunks = [c async for c in stream]
        await daemon.idle()
    assert result.choices[0].message.content == "tunnelled"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tunnelled"
    assert set(proxy.targets) == {("127.0.0.1", URL(https_url).port)}
    assert len(proxy.targets) < len(fake.calls)  # tunnels are kept alive and reused
    expected_auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() if credentials else None
    assert set(proxy.auths) == {expected_auth}


async def test_socks5_to_an_ipv6_address() -> None:
    fake = FakeClaude()
    await fake.start(host="::1")
    try:
        fake.reply("over v6")
        async with SOCKS5Proxy() as proxy:
            settings = settings_for(fake.base_url, [fake.add_account().session_key], {"PROXY": proxy.url})
            async with run_daemon(settings) as daemon, sdk(daemon) as client:
                result = await client.chat.completions.create(**ask())
                await daemon.idle()
    finally:
        await fake.close()
    assert result.choices[0].message.content == "over v6"
    assert set(proxy.targets) == {("::1", URL(fake.base_url).port)}


async def refused(proxy_type: type[ProxyServer], make_daemon, env: dict[str, str] | None = None) -> list[str]:
    """The error messages of a plain and a streaming request through a proxy given the wrong password."""
    async with proxy_type(USER, PASSWORD) as proxy:
        wrong = proxy.url.replace(quote(PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
        daemon = await make_daemon(env={"PROXY": wrong, **(env or {})})
        answers = [await raw_post(daemon, "/v1/chat/completions", ask(stream=stream)) for stream in (False, True)]
    assert proxy.auths and not proxy.targets  # refused before any CONNECT / forwarding
    return [error_of(status, raw) for status, _, raw in answers]


@pytest.mark.parametrize("proxy_type", [HTTPProxy, SOCKS5Proxy])
async def test_wrong_proxy_credentials_are_a_502(proxy_type, fake: FakeClaude, make_daemon, log_output) -> None:
    messages = await refused(proxy_type, make_daemon)
    assert all("proxy" in m.lower() for m in messages), messages
    assert not fake.calls  # refused at the proxy: nothing reached claude.ai
    assert_no_password_logged(log_output, failed=True)


async def test_wrong_credentials_for_a_connect_tunnel_are_a_502(
    https_url: str, fake: FakeClaude, make_daemon, log_output
) -> None:
    messages = await refused(HTTPProxy, make_daemon, {"CLAUDE_BASE_URL": https_url})
    assert all("proxy" in m.lower() for m in messages), messages
    assert not fake.calls
    assert_no_password_logged(log_output, failed=True)


async def test_a_407_from_a_forwarding_http_proxy_blames_the_proxy(fake: FakeClaude, make_daemon) -> None:
    messages = await refused(HTTPProxy, make_daemon)
    assert all("proxy" in m.lower() for m in messages), messages


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks4"])
async def test_proxy_down_is_a_502(scheme: str, fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"PROXY": f"{scheme}://127.0.0.1:{closed_port()}"})
    status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
    message = error_of(status, raw)
    assert "proxy" in message.lower(), message
    assert not fake.calls


@pytest.mark.parametrize("proxy_type", [HTTPProxy, SOCKS5Proxy])
async def test_proxy_password_never_logged(proxy_type, fake: FakeClaude, make_daemon, log_output) -> None:
    async with proxy_type(USER, PASSWORD) as proxy:
        daemon = await make_daemon(env={"PROXY": proxy.url})
        async with sdk(daemon) as client:
            await client.chat.completions.create(**ask())
        await daemon.idle()
    assert proxy.targets
    assert_no_password_logged(log_output, failed=False)


def assert_no_password_logged(output: io.StringIO, failed: bool) -> None:
    text = output.getvalue()
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert "request" in events  # the capture did capture
    assert ("upstream_attempt_failed" in events) == failed
    assert not [p for p in PASSWORDS if p in text], text
