"""The upstream transports: the same behaviour on aiohttp and on curl_cffi, over real sockets."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from claude2api.testing import FakeClaude
from claude2api.testing.cloudflare import CloudflareFront
from claude2api.upstream import impersonate
from claude2api.upstream.browser import api_headers, profile, referer_path
from claude2api.upstream.impersonate import ImpersonateTransport
from claude2api.upstream.transport import (
    AccountCookies,
    AiohttpTransport,
    FilePart,
    Timeouts,
    TransportError,
    UpstreamTransport,
)

from proxies import HTTPProxy, SOCKS4Proxy, SOCKS5Proxy

needs_curl = pytest.mark.skipif(
    not impersonate.available(), reason="curl_cffi is not installed (pip install 'claude2api[impersonate]')"
)
KINDS = ["aiohttp", pytest.param("impersonate", marks=needs_curl)]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def make(kind: str, *, ca: trustme.CA | None = None, ca_file: str | None = None, **kwargs) -> UpstreamTransport:
    if kind == "aiohttp":
        ctx = None
        if ca is not None:
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
        return AiohttpTransport(ssl_context=ctx, **kwargs)
    return ImpersonateTransport(ca_file=ca_file, **kwargs)


def hdrs(base: str, conv: str | None = None, accept: str = "application/json") -> dict[str, str]:
    return api_headers(profile("chrome152"), base, referer=referer_path(conv), accept=accept)


async def full_turn(transport: UpstreamTransport, fake: FakeClaude, jar: AccountCookies) -> bytes:
    """organizations, create, upload (multipart), streamed completion, delete: the hot path's calls."""
    base = fake.base_url
    org = fake.accounts[0].org_id
    resp = await transport.request("GET", base + "/api/organizations", headers=hdrs(base), jar=jar)
    assert resp.status == 200, resp.body[:300]
    conv = "7a0c2d42-9a55-4d2f-a4a9-6a2a8ff1d2c1"
    resp = await transport.request(
        "POST", f"{base}/api/organizations/{org}/chat_conversations", headers=hdrs(base), jar=jar,
        json_body={"uuid": conv, "name": "", "is_temporary": True},
    )
    assert resp.status in (200, 201), resp.body[:300]
    resp = await transport.request(
        "POST", f"{base}/api/{org}/upload", headers=hdrs(base, conv), jar=jar, files=[FilePart("a.png", "image/png", PNG)]
    )
    assert resp.status == 200, resp.body[:300]
    file_uuid = json.loads(resp.body)["file_uuid"]
    assert fake.uploads[file_uuid]["size"] == len(PNG)
    body = {"prompt": "hello", "rendering_mode": "messages", "attachments": [], "files": [file_uuid], "timezone": "UTC"}
    streamed = b""
    chunks = 0
    async with transport.stream(
        "POST", f"{base}/api/organizations/{org}/chat_conversations/{conv}/completion",
        headers=hdrs(base, conv, "text/event-stream"), jar=jar, json_body=body,
    ) as stream:
        assert stream.status == 200
        async for chunk in stream.chunks():
            streamed += chunk
            chunks += 1
    assert b"event: message_stop" in streamed and chunks > 1
    resp = await transport.request(
        "DELETE", f"{base}/api/organizations/{org}/chat_conversations/{conv}", headers=hdrs(base, conv), jar=jar,
        json_body={"uuid": conv},
    )
    assert resp.status in (200, 204)
    assert conv not in fake.conversations
    return streamed


@pytest.mark.parametrize("kind", KINDS)
async def test_full_turn_over_plain_http(kind: str, fake: FakeClaude) -> None:
    account = fake.add_account()
    fake.reply("one two three four", delay=0.01)
    transport = make(kind)
    try:
        await full_turn(transport, fake, AccountCookies(account.session_key))
    finally:
        await transport.close()
    upload = next(c for c in fake.calls if c.path.endswith("/upload"))
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=----WebKitFormBoundary")
    assert all(c.headers["sec-fetch-mode"] == "cors" and "sec-ch-ua" in c.headers for c in fake.calls)


@needs_curl
async def test_impersonation_gets_through_cloudflare_where_aiohttp_is_blocked(
    cloudflare_claude: tuple[FakeClaude, CloudflareFront], tls_ca: trustme.CA, ca_file: str
) -> None:
    fake, front = cloudflare_claude
    fake.reply("streamed through the front", delay=0.01)
    jar = AccountCookies(fake.accounts[0].session_key)
    plain = make("aiohttp", ca=tls_ca)
    try:
        with pytest.raises(AssertionError, match="Just a moment"):
            await full_turn(plain, fake, jar)
    finally:
        await plain.close()
    browser = make("impersonate", ca_file=ca_file)
    try:
        streamed = await full_turn(browser, fake, jar)
    finally:
        await browser.close()
    assert b"streamed" in streamed
    assert front.challenged == [("/api/organizations", "fingerprint")]
    assert len(fake.calls) == 5 and all("__cf_bm=" in c.headers["cookie"] for c in fake.calls[1:])


@needs_curl
async def test_cookies_never_cross_accounts(cloudflare_claude: tuple[FakeClaude, CloudflareFront], ca_file: str) -> None:
    fake, front = cloudflare_claude
    first, second = fake.accounts[0], fake.add_account()
    jars = {a.session_key: AccountCookies(a.session_key) for a in (first, second)}
    transport = make("impersonate", ca_file=ca_file)
    url = fake.base_url + "/api/organizations"
    try:
        for _ in range(3):
            for jar in jars.values():
                resp = await transport.request("GET", url, headers=hdrs(fake.base_url), jar=jar)
                assert resp.status == 200
    finally:
        await transport.close()
    assert front.crossed == []
    tokens = {key: jar.get("__cf_bm") for key, jar in jars.items()}
    assert len(set(tokens.values())) == 2
    sent = 0
    for call in fake.calls:
        for name, value in (p.split("=", 1) for p in call.headers["cookie"].split("; ")):
            if name == "__cf_bm":
                assert front.issued[value] == call.session_key  # only ever the account's own cookie
                sent += 1
    assert sent == 4  # every call after each account's first

def test_jar_keeps_set_cookies_drops_expired_and_guards_the_key() -> None:
    now = [1000.0]
    jar = AccountCookies("sk-key", "cf_clearance=abc; sessionKey=other; junk", clock=lambda: now[0])
    jar.absorb(["__cf_bm=x1; path=/; max-age=60; HttpOnly", "sessionKey=evil; path=/", "_cfuvid=u; path=/"])
    assert jar.header() == "sessionKey=sk-key; cf_clearance=abc; __cf_bm=x1; _cfuvid=u"
    jar.absorb(["_cfuvid=; max-age=0"])
    now[0] += 61
    assert jar.header() == "sessionKey=sk-key; cf_clearance=abc"
    jar.absorb([f"c{i}=v" for i in range(100)])
    assert len(jar.names()) == 32
    assert "abc" not in repr(jar)


# --------------------------------------------------------------------------- timeouts, cancellation


class SlowServer:
    """A loopback app: ``/drip`` sends a byte every 50 ms and records when the client went away;
    ``/silent`` answers its headers after 5 s."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def drip(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for _ in range(400):
                await resp.write(b"x")
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.gone.set()
            raise
        return resp

    async def silent(self, request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")


@pytest.fixture
async def slow() -> AsyncIterator[tuple[SlowServer, str]]:
    server = SlowServer()
    app = web.Application()
    app.router.add_get("/drip", server.drip)
    app.router.add_get("/silent", server.silent)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield server, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("kind", KINDS)
async def test_leaving_a_stream_closes_the_connection(kind: str, slow: tuple[SlowServer, str]) -> None:
    server, base = slow
    transport = make(kind)
    try:
        async with transport.stream("GET", base + "/drip", headers={}) as stream:
            async for _ in stream.chunks():
                break
        await asyncio.wait_for(server.gone.wait(), 2)
    finally:
        await transport.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_first_byte_timeout_is_a_safe_transport_error(kind: str, slow: tuple[SlowServer, str]) -> None:
    _, base = slow
    transport = make(kind, timeouts=Timeouts(connect=2, read=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.request("GET", base + "/silent", headers={})
    finally:
        await transport.close()
    assert caught.value.timeout and loop.time() - started < 3


# --------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("kind", KINDS)
async def test_socks5_with_credentials_through_cloudflare(
    kind: str, cloudflare_claude: tuple[FakeClaude, CloudflareFront], tls_ca: trustme.CA, ca_file: str
) -> None:
    fake, _ = cloudflare_claude
    jar = AccountCookies(fake.accounts[0].session_key)
    async with SOCKS5Proxy("alice", "s3cr:et@", scheme="socks5h") as proxy:
        transport = make(kind, ca=tls_ca, ca_file=ca_file, proxy=proxy.url)
        try:
            resp = await transport.request("GET", fake.base_url + "/api/organizations", headers=hdrs(fake.base_url), jar=jar)
        finally:
            await transport.close()
    assert proxy.auths == [("alice", "s3cr:et@")]
    assert proxy.domains == ["localhost"]  # socks5h: the proxy resolved the name
    assert resp.status == (403 if kind == "aiohttp" else 200)  # the egress changes nothing about the fingerprint


@needs_curl
@pytest.mark.parametrize("proxy_class,scheme", [(HTTPProxy, "http"), (SOCKS4Proxy, "socks4a"), (SOCKS5Proxy, "socks5")])
async def test_impersonation_through_every_proxy_scheme(
    proxy_class: type, scheme: str, cloudflare_claude: tuple[FakeClaude, CloudflareFront], ca_file: str
) -> None:
    fake, _ = cloudflare_claude
    async with proxy_class(scheme=scheme) as proxy:
        transport = make("impersonate", ca_file=ca_file, proxy=proxy.url)
        try:
            resp = await transport.request(
                "GET", fake.base_url + "/api/organizations", headers=hdrs(fake.base_url),
                jar=AccountCookies(fake.accounts[0].session_key),
            )
        finally:
            await transport.close()
    assert resp.status == 200
    assert proxy.targets and proxy.targets[0][1] == int(fake.base_url.rsplit(":", 1)[1])


@pytest.mark.parametrize("kind", KINDS)
async def test_proxy_refusal_never_shows_the_password(kind: str, fake: FakeClaude) -> None:
    async with SOCKS5Proxy("alice", "right") as proxy:
        bad = proxy.url.replace("right", "wr0ngPassw0rd")
        transport = make(kind, proxy=bad)
        try:
            with pytest.raises(TransportError) as caught:
                await transport.request("GET", "http://example.invalid/api/organizations", headers={})
        finally:
            await transport.close()
    assert "wr0ngPassw0rd" not in caught.value.message and "wr0ngPassw0rd" not in transport.describe()
    assert caught.value.message.startswith("could not reach claude.ai")
