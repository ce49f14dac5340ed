"""The Cloudflare mode of the fake claude.ai: TLS, JA4 from the raw ClientHello, challenge, __cf_bm."""

from __future__ import annotations

import ssl

import pytest
import trustme

from claude2api.core.failures import Failure
from claude2api.testing import FakeClaude
from claude2api.testing.cloudflare import CloudflareFront
from claude2api.upstream import impersonate
from claude2api.upstream.browser import api_headers, profile
from claude2api.upstream.classify import classify_response
from claude2api.upstream.impersonate import ImpersonateTransport
from claude2api.upstream.transport import AccountCookies, AiohttpTransport

needs_curl = pytest.mark.skipif(
    not impersonate.available(), reason="curl_cffi is not installed (pip install 'claude2api[impersonate]')"
)
#: Chrome's JA4 as published (e.g. krowdev "JA4 fingerprint t13d1516h2"); curl_cffi's chrome145 sends it.
CHROME_JA4 = "t13d1516h2_8daaf6152771_d8a2da3f94cd"
#: The cipher part every current Chrome shares (15 suites, sorted, GREASE removed).
CHROME_CIPHERS_JA4 = "8daaf6152771"


def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def headers() -> dict[str, str]:
    return api_headers(profile("chrome152"), "https://claude.ai", referer="/new")


async def test_plain_aiohttp_is_challenged_like_cloudflare_does(
    cloudflare_claude: tuple[FakeClaude, CloudflareFront], tls_ca: trustme.CA
) -> None:
    fake, front = cloudflare_claude
    transport = AiohttpTransport(ssl_context=client_ssl(tls_ca))
    try:
        jar = AccountCookies(fake.accounts[0].session_key)
        resp = await transport.request("GET", fake.base_url + "/api/organizations", headers=headers(), jar=jar)
    finally:
        await transport.close()
    assert resp.status == 403
    assert resp.headers["cf-mitigated"] == "challenge"
    assert b"Just a moment..." in resp.body
    assert classify_response(resp.status, resp.headers, resp.body, 0).failure is Failure.BLOCKED
    assert front.challenged == [("/api/organizations", "fingerprint")]
    hello = front.hellos[-1]
    assert hello.alpn == () and not hello.grease  # Python's ssl: no ALPN from aiohttp, no GREASE
    assert hello.ja4.startswith("t13d") and hello.ja4[8:10] != "h2"
    assert not fake.calls  # the app behind the front never saw the request


@needs_curl
async def test_documented_chrome_ja4_and_alpn(cloudflare_claude: tuple[FakeClaude, CloudflareFront], ca_file: str) -> None:
    fake, front = cloudflare_claude
    for name in ("chrome145", "chrome152"):
        transport = ImpersonateTransport(profile=name, ca_file=ca_file)
        try:
            jar = AccountCookies(fake.accounts[0].session_key)
            resp = await transport.request("GET", fake.base_url + "/api/organizations", headers=headers(), jar=jar)
        finally:
            await transport.close()
        assert resp.status == 200, resp.body[:200]
    chrome145, chrome152 = front.hellos[-2:]
    assert chrome145.ja4 == CHROME_JA4
    # chrome152 adds one extension to the 145 set; the rest of the Chrome shape is unchanged.
    part_a, part_b, _ = chrome152.ja4.split("_")
    assert (part_a, part_b) == ("t13d1517h2", CHROME_CIPHERS_JA4)
    for hello in (chrome145, chrome152):
        assert hello.alpn == ("h2", "http/1.1")
        assert hello.grease
        assert 0x0304 in hello.supported_versions
        assert hello.sni == "localhost"


@needs_curl
async def test_cf_bm_is_set_and_expected_back(cloudflare_claude: tuple[FakeClaude, CloudflareFront], ca_file: str) -> None:
    fake, front = cloudflare_claude
    key = fake.accounts[0].session_key
    url = fake.base_url + "/api/organizations"
    transport = ImpersonateTransport(ca_file=ca_file)
    try:
        # A client that throws cookies away gets cookie_grace (2) passes, then the challenge.
        statuses = []
        for _ in range(3):
            statuses.append((await transport.request("GET", url, headers=headers(), jar=AccountCookies(key))).status)
        assert statuses == [200, 200, 403]
        assert front.challenged[-1] == ("/api/organizations", "__cf_bm never returned")
        # The challenge persists until a __cf_bm comes back; each challenge hands out a fresh one.
        jar = AccountCookies(key)
        assert (await transport.request("GET", url, headers=headers(), jar=jar)).status == 403
        assert (await transport.request("GET", url, headers=headers(), jar=jar)).status == 200
        # A client that keeps its jar from the start sends __cf_bm back and passes every time.
        other = fake.add_account().session_key
        other_jar = AccountCookies(other)
        for _ in range(4):
            assert (await transport.request("GET", url, headers=headers(), jar=other_jar)).status == 200
        token = other_jar.get("__cf_bm")
        assert token is not None and front.issued[token] == other
        assert fake.calls[-1].headers["cookie"] == f"sessionKey={other}; __cf_bm={token}"
    finally:
        await transport.close()


async def test_operator_cf_clearance_lets_a_plain_client_through(
    cloudflare_claude: tuple[FakeClaude, CloudflareFront], tls_ca: trustme.CA
) -> None:
    fake, front = cloudflare_claude
    hdrs = headers()
    clearance = front.grant_clearance(hdrs["user-agent"])
    jar = AccountCookies(fake.accounts[0].session_key, f"cf_clearance={clearance}; sessionKey=stale")
    transport = AiohttpTransport(ssl_context=client_ssl(tls_ca))
    try:
        resp = await transport.request("GET", fake.base_url + "/api/organizations", headers=hdrs, jar=jar)
        other_ua = {**hdrs, "user-agent": "Mozilla/5.0 something else"}
        refused = await transport.request("GET", fake.base_url + "/api/organizations", headers=other_ua, jar=jar)
    finally:
        await transport.close()
    assert resp.status == 200
    assert fake.calls[0].session_key == fake.accounts[0].session_key  # the account's key, not the copied one
    assert refused.status == 403  # cf_clearance is bound to the user-agent it was issued for
