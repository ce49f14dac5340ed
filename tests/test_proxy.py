"""Outbound proxy support (``PROXY``): every claude.ai call goes through a loopback proxy.

HTTP proxies see absolute-URI requests (the fake claude.ai speaks plain http) and CONNECT; SOCKS
proxies see CONNECT commands. ``socks5h`` and ``socks4a`` must hand the host name to the proxy.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
import structlog
from yarl import URL

from claude2api.logs import configure_logging
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import run_daemon, settings_for

from proxies import HTTPProxy, SOCKS4Proxy, SOCKS5Proxy, _Proxy
from support import MODEL, raw_post, sdk

USER = "proxy-user"
PASSWORD = "pr0xy-s3cret@pw"  # the "@" must travel percent-encoded in PROXY and decoded to the proxy
WRONG_PASSWORD = "wr0ng-pr0xy-pw:x"
PASSWORDS = (PASSWORD, WRONG_PASSWORD, quote(PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))

PROXIES: dict[str, tuple[Callable[[], _Proxy], str]] = {
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


@pytest.mark.parametrize("name", PROXIES)
async def test_completions_go_through_the_proxy(name: str, fake: FakeClaude, make_daemon) -> None:
    factory, host = PROXIES[name]
    fake.reply("proxied answer")
    async with factory() as proxy:
        daemon = await make_daemon(env={"PROXY": proxy.url, "CLAUDE_BASE_URL": base_url(fake, host)})
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


@pytest.mark.parametrize("proxy_type", [HTTPProxy, SOCKS5Proxy])
async def test_wrong_proxy_credentials_are_a_502(proxy_type, fake: FakeClaude, make_daemon, log_output) -> None:
    async with proxy_type(USER, PASSWORD) as proxy:
        wrong = proxy.url.replace(quote(PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
        daemon = await make_daemon(env={"PROXY": wrong})
        status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
        stream_status, _, stream_raw = await raw_post(daemon, "/v1/chat/completions", ask(stream=True))
    message = error_of(status, raw)
    assert "proxy" in message.lower(), message
    error_of(stream_status, stream_raw)
    assert proxy.auths and not fake.calls_to("/completion")
    assert not fake.calls  # rejected at the proxy: nothing reached claude.ai
    assert_no_password_logged(log_output, failed=True)


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
