"""The daemon on its upstream transports: Cloudflare's front (the fake's TLS + JA4 mode), per-account
cookie jars, egress and device ids, the transport settings, and ``claude2api doctor``."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from claude2api.accounts.doctor import run_doctor
from claude2api.accounts.pool import State
from claude2api.config import ConfigError, load_settings
from claude2api.logs import configure_logging, register_secret
from claude2api.testing import FakeClaude
from claude2api.testing.cloudflare import CloudflareFront
from claude2api.testing.daemon import TEST_API_KEY, run_daemon, settings_for
from claude2api.upstream import impersonate

from proxies import HTTPProxy, SOCKS5Proxy
from support import MODEL, raw_post, sdk

needs_curl = pytest.mark.skipif(not impersonate.available(), reason="curl_cffi is not installed")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
ADMIN_KEY = "wire-admin-key-0001"
PROXY_USER, PROXY_PASSWORD = "wire-user", "wire-s3cret:p@ss"
CookieFront = tuple[FakeClaude, CloudflareFront]


def ask(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


def cf_env(front: CloudflareFront, ca_file: str, transport: str) -> dict[str, str]:
    return {"UPSTREAM_TRANSPORT": transport, "UPSTREAM_CA_FILE": ca_file, "ADMIN_KEY": ADMIN_KEY}


async def admin_sessions(url: str) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/admin/sessions", headers={"x-api-key": ADMIN_KEY}) as resp:
            assert resp.status == 200
            return (await resp.json())["data"]


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


def log_events(output: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in output.getvalue().splitlines()]


# --- through the Cloudflare front -----------------------------------------------------------


async def test_aiohttp_is_blocked_by_the_front_and_reported(cloudflare_claude: CookieFront, ca_file: str) -> None:
    fake, front = cloudflare_claude
    settings = settings_for(fake.base_url, [fake.accounts[0].session_key], cf_env(front, ca_file, "aiohttp"))
    async with run_daemon(settings) as daemon:
        status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
        [session] = await admin_sessions(daemon.url)
    assert status == 503, raw
    error = json.loads(raw)["error"]
    assert error["code"] == "upstream_blocked"
    assert "Cloudflare" in error["message"] and "through aiohttp direct" in error["message"]
    assert session["state"] == State.BLOCKED.value and "through aiohttp direct" in session["reason"]
    assert session["egress"] == "aiohttp direct"
    assert front.challenged and {reason for _, reason in front.challenged} == {"fingerprint"}
    assert not fake.calls  # nothing got past the front


@needs_curl
async def test_impersonation_gets_through_streams_uploads_and_deletes(
    cloudflare_claude: CookieFront, ca_file: str
) -> None:
    fake, front = cloudflare_claude
    fake.reply("through the front")
    settings = settings_for(fake.base_url, [fake.accounts[0].session_key], cf_env(front, ca_file, "impersonate"))
    image = "data:image/png;base64," + base64.b64encode(PNG).decode()
    content = [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": image}}]
    async with run_daemon(settings) as daemon:
        async with sdk(daemon) as client:
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": content}], stream=True
                )
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                assert text == "through the front"
        await daemon.idle()
        device_id = daemon.services.pool.sessions[0].device_id
        [session] = await admin_sessions(daemon.url)
    assert front.challenged == []  # every call passed, __cf_bm sent back from the jar
    assert len(fake.calls_to(re.compile(r"/upload(-file)?$"))) == 2 and len(fake.calls_to("/completion")) == 2
    assert fake.conversations == {}  # deleted after each request
    assert len([c for c in fake.calls if c.method == "DELETE"]) == 2
    assert session["egress"] == "impersonate:chrome152 direct" and session["state"] == "healthy"
    # Browser-consistent headers: Chrome 152 everywhere, one device id, /new before the chat exists.
    assert {c.headers["user-agent"].split("Chrome/")[1][:3] for c in fake.calls} == {"152"}
    assert {c.headers["anthropic-device-id"] for c in fake.calls} == {device_id}
    assert all(c.headers["sec-fetch-site"] == "same-origin" and "sec-ch-ua" in c.headers for c in fake.calls)
    [first_completion, _] = fake.calls_to("/completion")
    assert first_completion.headers["referer"] == fake.base_url + "/new"
    for call in fake.calls:
        if call.method == "DELETE":
            assert call.headers["referer"] == fake.base_url + "/chat/" + call.path.rsplit("/", 1)[1]
    assert all(hello.alpn[:1] == ("h2",) for hello in front.hellos)


@needs_curl
async def test_cloudflare_cookies_never_cross_accounts(cloudflare_claude: CookieFront, ca_file: str) -> None:
    fake, front = cloudflare_claude
    second = fake.add_account()
    keys = [fake.accounts[0].session_key, second.session_key]
    settings = settings_for(fake.base_url, keys, cf_env(front, ca_file, "impersonate"))
    async with run_daemon(settings) as daemon:
        async with sdk(daemon) as client:
            for _ in range(6):  # the pool rotates: three each, past the front's cookie grace
                await client.chat.completions.create(**ask())
        await daemon.idle()
        jars = {key: daemon.services.claude.wire(key).jar for key in keys}
    assert {c.session_key for c in fake.calls_to("/completion")} == set(keys)
    assert front.crossed == [] and front.challenged == []
    for key, jar in jars.items():
        cf_bm = jar.get("__cf_bm")
        assert cf_bm and front.issued[cf_bm] == key  # each jar holds only what was set for its account


async def test_a_copied_cf_clearance_lets_its_account_through_on_aiohttp(
    cloudflare_claude: CookieFront, ca_file: str, tmp_path: Path
) -> None:
    """An operator's browser cookie (cf_clearance + its user-agent) goes out with its account only."""
    fake, front = cloudflare_claude
    cleared, other = fake.accounts[0], fake.add_account()
    user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/152.0.0.0 Safari/537.36"
    clearance = front.grant_clearance(user_agent)
    config = tmp_path / "config.yaml"
    config.write_text(
        "sessions:\n"
        f"  - key: {cleared.session_key}\n    cookie: 'cf_clearance={clearance}; theme=dark'\n"
        f"    user_agent: '{user_agent}'\n"
        f"  - key: {other.session_key}\n"
    )
    env = {"CLAUDE_BASE_URL": fake.base_url, "APIKEY": TEST_API_KEY, "ADDRESS": "127.0.0.1:0"}
    settings = load_settings(config, {**env, **cf_env(front, ca_file, "aiohttp")})
    async with run_daemon(settings) as daemon:
        async with sdk(daemon) as client:
            for _ in range(4):
                await client.chat.completions.create(**ask())
        await daemon.idle()
    assert {c.session_key for c in fake.calls} == {cleared.session_key}
    assert all(c.headers["user-agent"] == user_agent for c in fake.calls)
    assert front.crossed == []


# --- per-account egress -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["aiohttp", pytest.param("impersonate", marks=needs_curl)])
async def test_each_account_goes_out_through_its_own_proxy(transport: str, fake: FakeClaude) -> None:
    own, fallback = fake.add_account(), fake.add_account()
    fake.reply("proxied")
    async with SOCKS5Proxy(PROXY_USER, PROXY_PASSWORD) as socks, HTTPProxy() as http_proxy:
        sessions = f"{own.session_key}@{socks.url},{fallback.session_key}"
        env = {"SESSIONS": sessions, "PROXY": http_proxy.url, "UPSTREAM_TRANSPORT": transport, "ADMIN_KEY": ADMIN_KEY}
        settings = settings_for(fake.base_url, [], env)
        async with run_daemon(settings) as daemon:
            async with sdk(daemon) as client:
                for _ in range(4):
                    assert (await client.chat.completions.create(**ask())).choices[0].message.content == "proxied"
            await daemon.idle()
            shown = await admin_sessions(daemon.url)
    assert socks.session_keys == {own.session_key}  # SOCKS5 with credentials: only its account
    assert http_proxy.session_keys == {fallback.session_key}  # PROXY: the account without its own
    assert socks.auths and set(socks.auths) == {(PROXY_USER, PROXY_PASSWORD)}
    name = "aiohttp" if transport == "aiohttp" else "impersonate:chrome152"
    assert shown[0]["egress"] == f"{name} via socks5://{PROXY_USER}:***@127.0.0.1:{socks.port}"
    assert shown[1]["egress"] == f"{name} via http://127.0.0.1:{http_proxy.port}"
    assert "s3cret" not in json.dumps(shown)


async def test_accounts_on_the_same_proxy_share_one_transport(fake: FakeClaude) -> None:
    a, b, c = fake.add_account(), fake.add_account(), fake.add_account()
    async with SOCKS5Proxy() as socks:
        sessions = f"{a.session_key}@{socks.url},{b.session_key}@{socks.url},{c.session_key}"
        async with run_daemon(settings_for(fake.base_url, [], {"SESSIONS": sessions})) as daemon:
            wires = [daemon.services.claude.wire(s.session_key) for s in (a, b, c)]
            assert wires[0].transport is wires[1].transport is not wires[2].transport
            assert wires[0].jar is not wires[1].jar and wires[0].device_id != wires[1].device_id
            assert len(list(daemon.services.egresses.in_use())) == 2


async def test_blocked_through_a_proxy_names_it_and_leaks_no_secret(fake: FakeClaude, log_output, tmp_path: Path) -> None:
    blocked = fake.add_account(behaviour="cloudflare")
    async with SOCKS5Proxy(PROXY_USER, PROXY_PASSWORD) as socks:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"sessions:\n  - key: {blocked.session_key}\n    proxy: '{socks.url}'\n"
            "    cookie: 'cf_clearance=copied-clearance-value-123; __cf_bm=copied-bm-value-456'\n"
        )
        env = {"CLAUDE_BASE_URL": fake.base_url, "APIKEY": TEST_API_KEY, "ADDRESS": "127.0.0.1:0",
               "UPSTREAM_TRANSPORT": "aiohttp", "ADMIN_KEY": ADMIN_KEY}
        settings = load_settings(config, env)
        for secret in settings.secret_values():  # what the CLI does at start-up
            register_secret(secret)
        async with run_daemon(settings) as daemon:
            status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
            [session] = await admin_sessions(daemon.url)
    redacted = f"socks5://{PROXY_USER}:***@127.0.0.1:{socks.port}"
    assert status == 503 and redacted in json.loads(raw)["error"]["message"]
    assert session["state"] == "blocked" and redacted in session["reason"]
    text = log_output.getvalue() + raw.decode() + json.dumps(session)
    assert "session_parked" in text
    for secret in ("s3cret", "wire-s3cret%3Ap%40ss", "copied-clearance-value-123", "copied-bm-value-456"):
        assert secret not in text
    # The configured cookie did go out, with this account only.
    assert all("cf_clearance=copied-clearance-value-123" in c.headers["cookie"] for c in fake.calls)


# --- choosing the transport --------------------------------------------------------------------


async def test_auto_without_the_extra_uses_aiohttp_and_says_so_once(
    fake: FakeClaude, log_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(impersonate, "available", lambda: False)
    account = fake.add_account()
    settings = settings_for(fake.base_url, [account.session_key], {"UPSTREAM_TRANSPORT": "auto"})
    async with run_daemon(settings) as daemon:
        async with sdk(daemon) as client:
            for _ in range(2):
                await client.chat.completions.create(**ask())
        assert daemon.services.claude.wire(account.session_key).transport.name == "aiohttp"
    chosen = [e for e in log_events(log_output) if e["event"] == "upstream_transport"]
    assert len(chosen) == 1 and chosen[0]["transport"] == "aiohttp" and chosen[0]["setting"] == "auto"
    assert "claude2api[impersonate]" in chosen[0]["hint"]


@needs_curl
async def test_auto_with_the_extra_impersonates(fake: FakeClaude, log_output) -> None:
    account = fake.add_account()
    settings = settings_for(fake.base_url, [account.session_key], {"UPSTREAM_TRANSPORT": "auto"})
    async with run_daemon(settings) as daemon, sdk(daemon) as client:
        await client.chat.completions.create(**ask())
    chosen = [e for e in log_events(log_output) if e["event"] == "upstream_transport"]
    assert [e["transport"] for e in chosen] == ["impersonate"]


def test_impersonate_without_the_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(impersonate, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'claude2api\[impersonate\]'"):
        settings_for("http://127.0.0.1:1", ["sk-ant-sid01-abc"], {"UPSTREAM_TRANSPORT": "impersonate"})


def test_unknown_browser_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"UPSTREAM_IMPERSONATE.*firefox1"):
        settings_for("http://127.0.0.1:1", ["sk-ant-sid01-abc"], {"UPSTREAM_IMPERSONATE": "firefox1"})


# --- doctor -------------------------------------------------------------------------------------


@needs_curl
async def test_doctor_finds_the_path_through_and_the_dead_key(
    cloudflare_claude: CookieFront, ca_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, front = cloudflare_claude
    ok, dead = fake.accounts[0], fake.add_account(behaviour="dead")
    settings = settings_for(fake.base_url, [ok.session_key, dead.session_key], cf_env(front, ca_file, "aiohttp"))
    code = await run_doctor(settings)
    out = capsys.readouterr().out
    assert code == 1  # the dead key has no way through
    rows = [line.split() for line in out.splitlines()[1:5]]
    assert [(r[1], r[3]) for r in rows] == [
        ("aiohttp*", "blocked"), ("impersonate", "ok"), ("aiohttp*", "blocked"), ("impersonate", "dead"),
    ]
    assert f"account {settings.sessions[0].fingerprint}: the daemon's path fails; UPSTREAM_TRANSPORT=impersonate works" in out
    assert f"account {settings.sessions[1].fingerprint}: the key is dead" in out
    assert ok.session_key not in out and dead.session_key not in out


async def test_doctor_without_the_extra_says_install_it_or_use_a_proxy(
    cloudflare_claude: CookieFront, ca_file: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(impersonate, "available", lambda: False)
    fake, front = cloudflare_claude
    settings = settings_for(fake.base_url, [fake.accounts[0].session_key], cf_env(front, ca_file, "auto"))
    code = await run_doctor(settings)
    out = capsys.readouterr().out
    assert code == 1
    assert "pip install 'claude2api[impersonate]'" in out and "residential proxy" in out


async def test_doctor_all_good_exits_zero(fake: FakeClaude, capsys: pytest.CaptureFixture[str]) -> None:
    account = fake.add_account()
    async with SOCKS5Proxy(PROXY_USER, PROXY_PASSWORD) as socks:
        settings = settings_for(fake.base_url, [f"{account.session_key}@{socks.url}"])
        code = await run_doctor(settings)
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"socks5://{PROXY_USER}:***@127.0.0.1:{socks.port}" in out and "s3cret" not in out


# --- the sessions grammar -------------------------------------------------------------------------

KEY = "sk-ant-sid01-wireKey_0123456789"
ORG = "1c2d6a3e-5b4f-4a1e-9c8d-7e6f5a4b3c2d"


def sessions_of(value: str) -> list[tuple[str, str | None, str | None]]:
    settings = load_settings(None, {"SESSIONS": value, "ADDRESS": "127.0.0.1:0"})
    return [(s.key, s.org_id, s.proxy) for s in settings.sessions]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (KEY, (KEY, None, None)),
        (f"{KEY}:{ORG}", (KEY, ORG, None)),
        (f"{KEY}@socks5://127.0.0.1:1080", (KEY, None, "socks5://127.0.0.1:1080")),
        (f"{KEY}:{ORG}@http://u:p@proxy.example:8080", (KEY, ORG, "http://u:p@proxy.example:8080")),
        # Everything after the first '@' is the proxy: its password may hold raw ':' and '@'.
        (f"{KEY}@socks5h://user:pa:ss@w@proxy.example:1080", (KEY, None, "socks5h://user:pa:ss@w@proxy.example:1080")),
        (f"{KEY}@socks5://user:pa%2Css@proxy.example:1080", (KEY, None, "socks5://user:pa%2Css@proxy.example:1080")),
    ],
)
def test_sessions_entry_grammar(entry: str, expected: tuple) -> None:
    assert sessions_of(f"{entry}, {KEY}x") == [expected, (KEY + "x", None, None)]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("@socks5://127.0.0.1:1080", "has a proxy but no session key"),
        (f"{KEY}@ftp://user:hunter2pass@127.0.0.1:21", "proxy is not a valid proxy URL"),
        (f"{KEY}@socks5://user:hunter2pass@127.0.0.1", "no port"),
        (f"{KEY}:not-a-uuid@socks5://127.0.0.1:1080", "is not a UUID"),
    ],
)
def test_sessions_entry_errors_name_the_problem_not_the_secret(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sessions_of(entry)
    assert problem in str(caught.value)
    assert "hunter2pass" not in str(caught.value) and KEY not in str(caught.value)


def test_yaml_session_mappings_and_their_secrets(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "address: 127.0.0.1:0\nsessions:\n"
        f"  - key: {KEY}\n    org: {ORG}\n    proxy: socks5://me:yaml%40secret@127.0.0.1:1080\n"
        "    cookie: 'cf_clearance=clear-value-0001; __cf_bm=bm-value-0002'\n    user_agent: Mozilla/5.0 Test\n"
        f"  - session_key: {KEY}b\n"
    )
    settings = load_settings(config, {})
    first, second = settings.sessions
    assert (first.org_id, first.proxy, first.user_agent) == (ORG, "socks5://me:yaml%40secret@127.0.0.1:1080", "Mozilla/5.0 Test")
    assert second.proxy is None and second.cookie is None
    secrets = settings.secret_values()
    for value in (KEY, "yaml%40secret", "yaml@secret", "clear-value-0001", "bm-value-0002"):
        assert value in secrets
    shown = json.dumps(settings.redacted()) + repr(settings) + repr(first)
    for value in (KEY, "yaml%40secret", "clear-value-0001"):
        assert value not in shown
    assert "socks5://me:***@127.0.0.1:1080" in shown


def test_yaml_session_mapping_rejects_unknown_and_doubled_fields(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"address: 127.0.0.1:0\nsessions:\n  - key: {KEY}\n    sessionKey: {KEY}\n")
    with pytest.raises(ConfigError, match="gives key twice"):
        load_settings(config, {})
    config.write_text(f"address: 127.0.0.1:0\nsessions:\n  - key: {KEY}\n    cookie: \"a=1\\nb\"\n")
    with pytest.raises(ConfigError, match="one Cookie header line"):
        load_settings(config, {})


async def test_device_id_is_made_once_and_kept_in_the_state_file(fake: FakeClaude, tmp_path: Path) -> None:
    account = fake.add_account()
    state = tmp_path / "state.json"
    settings = settings_for(fake.base_url, [account.session_key], {"STATE_FILE": str(state)})
    seen = []
    for _ in range(2):  # two daemon lifetimes
        async with run_daemon(settings) as daemon, sdk(daemon) as client:
            await client.chat.completions.create(**ask())
            await daemon.idle()
        seen.append({c.headers["anthropic-device-id"] for c in fake.calls})
    [record] = json.loads(state.read_text())["sessions"].values()
    assert seen[0] == seen[1] == {record["device_id"]}
