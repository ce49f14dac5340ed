"""Hardening of the HTTP front (issue 15: H4, M1, M2, M4, L1, L3, L5, L6, M6's header bytes).

Each test drives the real daemon over loopback sockets; the slow ones use small setting values.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from claude2api.accounts.statefile import state_id
from claude2api.config import RESERVED_PATH_SEGMENTS, ConfigError, load_settings
from claude2api.http.app import create_app
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import run_daemon, settings_for
from claude2api.testing.fake_claude import make_session_key

from support import MODEL
from test_cli import API_KEY, clean_env, daemon_process, free_port, run_cli

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
MESSAGES = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def raw_http(url: str, request: bytes, *, wait: float = 10.0) -> tuple[int, bytes, float]:
    """Send raw bytes, read until the server closes; returns (status, body, seconds it took)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), wait)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, time.monotonic() - started


def openai_error(body: bytes) -> dict:
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "code"}
    return error


def anthropic_error(body: bytes) -> dict:
    data = json.loads(body)
    assert data["type"] == "error"
    return data["error"]


# -- H4: browsers ---------------------------------------------------------------------------


async def test_keyless_daemon_refuses_foreign_origins_hosts_and_simple_bodies(make_daemon) -> None:
    daemon = await make_daemon(env={"APIKEY": ""})
    url = daemon.url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=CHAT) as resp:  # curl / SDK on the same machine: fine
            assert resp.status == 200
            assert "Access-Control-Allow-Origin" not in resp.headers
        async with http.post(url, json=CHAT, headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
            assert openai_error(await resp.read())["code"] == "origin_not_allowed"
        async with http.post(
            daemon.url + "/v1/messages", json=MESSAGES, headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403
            assert anthropic_error(await resp.read())["type"] == "permission_error"
        async with http.options(
            url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        ) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
        async with http.get(daemon.url + "/v1/models", headers={"Origin": "https://evil.example"}) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
        # DNS rebinding: the page's own host name, resolved to 127.0.0.1.
        async with http.post(url, json=CHAT, headers={"Host": "attacker.example:8080"}) as resp:
            assert resp.status == 403
            assert openai_error(await resp.read())["code"] == "host_not_allowed"
        async with http.post(url, json=CHAT, headers={"Host": "localhost:1234"}) as resp:
            assert resp.status == 200
        # A "simple" request (no preflight): text/plain, a form, or no type at all.
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Content-Type": content_type} if content_type else {}
            async with http.post(url, data=json.dumps(CHAT).encode(), headers=headers) as resp:
                assert resp.status == 415, content_type
                assert openai_error(await resp.read())["code"] == "unsupported_media_type"


async def test_cors_is_opt_in_and_the_admin_route_never_answers_browsers(make_daemon) -> None:
    daemon = await make_daemon(env={"CORS_ORIGINS": "https://app.example", "ADMIN_KEY": "admin-key-1234"})
    auth = {"Authorization": f"Bearer {daemon.api_key}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/v1/models", headers={**auth, "Origin": "https://app.example"}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
            assert "Origin" in resp.headers["Vary"]
        async with http.get(daemon.url + "/v1/models", headers={**auth, "Origin": "https://other.example"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers  # with a key: served, but unreadable to a page
        async with http.post(
            daemon.url + "/v1/chat/completions", data=json.dumps(CHAT), headers={**auth, "Content-Type": "text/plain"}
        ) as resp:
            assert resp.status == 200  # with a key, a mislabelled body is no browser risk: still accepted
        admin = {"Authorization": "Bearer admin-key-1234"}
        async with http.get(daemon.url + "/admin/sessions", headers=admin) as resp:
            assert resp.status == 200
        async with http.get(daemon.url + "/admin/sessions", headers={**admin, "Origin": "https://app.example"}) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers
        async with http.options(
            daemon.url + "/admin/sessions",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        ) as resp:
            assert resp.status == 403 and "Access-Control-Allow-Origin" not in resp.headers


def test_cors_origins_are_validated() -> None:
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        load_settings(None, {"SESSIONS": "sk-ant-sid01-abc", "APIKEY": "k", "CORS_ORIGINS": "app.example/x"})


# -- M1: mirror prefix collisions -----------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/admin", "/chat", "/health", "/models", "/messages", "/v1", "/hf", "/Admin/x"])
def test_mirror_prefix_colliding_with_a_route_is_a_config_error(prefix: str) -> None:
    env = {"SESSIONS": "sk-ant-sid01-abc", "APIKEY": "k", "ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": prefix}
    with pytest.raises(ConfigError, match="MIRROR_API_PREFIX"):
        load_settings(None, env)


async def test_mirror_admin_prefix_exits_2(tmp_path: Path) -> None:
    env = clean_env(SESSIONS="sk-ant-sid01-abc", APIKEY="k", ENABLE_MIRROR_API="true", MIRROR_API_PREFIX="/admin")
    code, _out, err = await run_cli(env=env, cwd=tmp_path)
    assert code == 2 and "MIRROR_API_PREFIX" in err and "Traceback" not in err


def test_reserved_segments_cover_every_route() -> None:
    """A new route (or alias) must be added to RESERVED_PATH_SEGMENTS, or a mirror prefix could shadow it."""
    settings = load_settings(
        None,
        {"SESSIONS": "sk-ant-sid01-abc", "APIKEY": "k", "ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"},
    )
    app = create_app(settings)
    segments = {
        r.resource.canonical.split("/")[1]
        for r in app.router.routes()
        if r.resource is not None and not r.resource.canonical.startswith("/mirror/")
    }
    assert segments <= RESERVED_PATH_SEGMENTS


# -- M2: mirror mode checks the caller first ------------------------------------------------


@asynccontextmanager
async def image_server() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def image(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        await runner.cleanup()


async def test_mirror_mode_checks_the_key_before_any_work(fake: FakeClaude, tmp_path: Path) -> None:
    own = fake.add_account()
    pooled = fake.add_account()
    state = tmp_path / "state.json"
    env = {
        "ENABLE_MIRROR_API": "true",
        "MIRROR_API_PREFIX": "/mirror",
        "IMAGE_FETCH_ALLOW_PRIVATE": "true",
        "STATE_FILE": str(state),
    }
    settings = settings_for(fake.base_url, [pooled.session_key], env)
    async with image_server() as (images, hits), run_daemon(settings) as daemon:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": images + "/probe.png"}},
            ]}],
        }
        fabricated = make_session_key()
        url = daemon.url + "/mirror/v1/chat/completions"
        async with aiohttp.ClientSession() as http:
            for attempt in range(2):
                before = len(fake.calls)
                async with http.post(url, json=body, headers={"Authorization": f"Bearer {fabricated}"}) as resp:
                    assert resp.status == 401
                    assert openai_error(await resp.read())["code"] == "invalid_session_key"
                # First time: one organizations lookup; then refused from memory, no upstream call.
                assert len(fake.calls) - before == (1 if attempt == 0 else 0)
            assert hits == []  # no blind fetch for an unverified caller
            assert saved_sessions(state) <= {state_id(pooled.session_key)}
            async with http.post(url, json=body, headers={"Authorization": f"Bearer {own.session_key}"}) as resp:
                assert resp.status == 200
            assert hits == ["/probe.png"]
        await daemon.idle()
    # Mirror sessions are never written to the state file (the pooled one is: its device id).
    assert saved_sessions(state) == {state_id(pooled.session_key)}
    assert fake.conversations == {}


def saved_sessions(state: Path) -> set[str]:
    return set(json.loads(state.read_text())["sessions"]) if state.exists() else set()


async def test_rejected_mirror_key_ttl_is_a_setting(fake: FakeClaude) -> None:
    pooled = fake.add_account()
    env = {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror", "MIRROR_REJECTED_KEY_TTL": "0.2"}
    async with run_daemon(settings_for(fake.base_url, [pooled.session_key], env)) as daemon:
        key = make_session_key()
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(
                    daemon.url + "/mirror/v1/messages", json=MESSAGES, headers={"x-api-key": key}
                ) as resp:
                    assert resp.status == 401
                    assert anthropic_error(await resp.read())["type"] == "authentication_error"
            def checks() -> int:
                return len([c for c in fake.calls_to("/api/organizations") if c.session_key == key])

            assert checks() == 1
            await asyncio.sleep(0.3)
            async with http.post(daemon.url + "/mirror/v1/messages", json=MESSAGES, headers={"x-api-key": key}):
                pass
            assert checks() == 2  # forgotten after the TTL


# -- M4: slow clients, connection cap -------------------------------------------------------


async def test_slow_headers_and_bodies_are_cut(make_daemon) -> None:
    daemon = await make_daemon(env={"HEADER_READ_TIMEOUT": "0.5", "BODY_READ_TIMEOUT": "0.5"})
    status, body, took = await raw_http(
        daemon.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n", wait=5
    )
    assert status == 408 and took < 3
    headers = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {daemon.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{\"model\":"
    ).encode()
    status, body, took = await raw_http(daemon.url, headers, wait=5)
    assert status == 408 and took < 3
    assert openai_error(body)["code"] == "request_timeout"


async def test_connection_cap_answers_503(make_daemon) -> None:
    daemon = await make_daemon(env={"MAX_CONNECTIONS": "3", "HEADER_READ_TIMEOUT": "30"})
    host, port = daemon.url.removeprefix("http://").rsplit(":", 1)
    idle = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    await asyncio.sleep(0.1)
    try:
        status, body, took = await raw_http(daemon.url, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", wait=5)
        assert status == 503 and took < 2
        assert "MAX_CONNECTIONS" in openai_error(body)["message"]
        assert json.loads(body)["type"] == "error"  # Anthropic's shape too
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/health") as resp:
            assert resp.status == 200


# -- L1: what needs no key ------------------------------------------------------------------


async def test_mirror_count_tokens_body_is_capped(fake: FakeClaude) -> None:
    pooled = fake.add_account()
    env = {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror", "MIRROR_COUNT_TOKENS_MAX_KB": "64"}
    async with run_daemon(settings_for(fake.base_url, [pooled.session_key], env)) as daemon:
        url = daemon.url + "/mirror/v1/messages/count_tokens"
        big = {**MESSAGES, "messages": [{"role": "user", "content": "x" * 100_000}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=MESSAGES) as resp:
                assert resp.status == 200
            async with http.post(url, json=big) as resp:
                assert resp.status == 413
                assert anthropic_error(await resp.read())["type"] == "request_too_large"

            async def chunked():
                yield json.dumps(big).encode()

            async with http.post(url, data=chunked(), headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 413


async def test_health_shows_details_only_with_a_key(make_daemon) -> None:
    daemon = await make_daemon(env={"ADMIN_KEY": "admin-key-1234"})
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/health") as resp:
            assert await resp.json() == {"status": "ok"}
        async with http.get(daemon.url + "/health", headers={"Authorization": "Bearer wrong"}) as resp:
            assert await resp.json() == {"status": "ok"}
        for key in (daemon.api_key, "admin-key-1234"):
            async with http.get(daemon.url + "/health", headers={"x-api-key": key}) as resp:
                assert (await resp.json())["sessions"] == {"healthy": 1}


# -- M6 (header bytes) ----------------------------------------------------------------------


async def test_non_utf8_credentials_are_a_401_in_dialect(make_daemon) -> None:
    daemon = await make_daemon()
    body = json.dumps(CHAT).encode()
    for path, header, parse in (
        (b"/v1/chat/completions", b"Authorization: Bearer \xff\xfe\xfd", openai_error),
        (b"/v1/messages", b"x-api-key: k\xe9y\xff", anthropic_error),
    ):
        request = (
            b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + header
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        status, raw, _ = await raw_http(daemon.url, request)
        assert status == 401, raw
        assert parse(raw)["type"] == "authentication_error"


# -- L6: silent upstream --------------------------------------------------------------------


@asynccontextmanager
async def silent_claude() -> AsyncIterator[tuple[str, list[str], list[str]]]:
    """A claude.ai that accepts every completion and then says nothing; records deletes."""
    started: list[str] = []
    deleted: list[str] = []

    async def completion(request: web.Request) -> web.StreamResponse:
        started.append(request.match_info["conv"])
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def delete(request: web.Request) -> web.Response:
        deleted.append(request.match_info["conv"])
        return web.Response(status=204)

    app = web.Application()
    conv = "/api/organizations/{org}/chat_conversations/{conv}"
    app.router.add_post(conv + "/completion", completion)
    app.router.add_delete(conv, delete)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", started, deleted
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("path", "body", "parse"), [
    ("/v1/chat/completions", {**CHAT, "stream": True}, openai_error),
    ("/v1/messages", MESSAGES, anthropic_error),
])
async def test_silent_upstream_gives_504_within_the_deadline(path, body, parse) -> None:
    keys = [f"{make_session_key()}:{uuid.uuid4()}" for _ in range(5)]
    env = {"UPSTREAM_FIRST_BYTE_TIMEOUT": "0.3", "REQUEST_DEADLINE": "1"}
    async with silent_claude() as (base, started, deleted):
        async with run_daemon(settings_for(base, keys, env)) as daemon:
            begun = time.monotonic()
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                async with http.post(
                    daemon.url + path, json=body, headers={"Authorization": f"Bearer {daemon.api_key}"}
                ) as resp:
                    assert resp.status == 504
                    error = parse(await resp.read())
            assert time.monotonic() - begun < 2.5
            assert "REQUEST_DEADLINE" in error["message"]
            assert 2 <= len(started) <= 4  # each attempt gave up after its first-byte deadline
            await daemon.idle()
            assert sorted(deleted) == sorted(started)  # abandoned conversations are still deleted


# -- L3: plugins that fail, at start and on reload ------------------------------------------


async def test_plugin_raising_at_import_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('plugin exploded')\n")
    env = clean_env(SESSIONS="sk-ant-sid01-abc", ADDRESS=f"127.0.0.1:{free_port()}", PLUGINS="broken.py")
    code, _out, err = await run_cli(env=env, cwd=tmp_path)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "PLUGINS" in lines[0] and "plugin exploded" in lines[0]
    assert "Traceback" not in err


async def test_reload_with_a_broken_plugin_keeps_serving_and_says_ready(tmp_path: Path) -> None:
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.setblocking(False)
    (tmp_path / "broken.py").write_text("def chat_middleware(settings):\n    raise ValueError('bad plugin')\n")
    config = tmp_path / "config.yaml"
    async with FakeClaude() as fake:
        fake.add_account()
        config.write_text(f"sessions: [{fake.accounts[0].session_key}]\n")
        env = clean_env(
            APIKEY=API_KEY, ADDRESS=f"127.0.0.1:{free_port()}", CLAUDE_BASE_URL=fake.base_url,
            NOTIFY_SOCKET=str(notify),
        )
        try:
            async with daemon_process(env, tmp_path, "--config", str(config)) as (base, output, proc):
                loop = asyncio.get_running_loop()

                async def next_message() -> bytes:
                    return await asyncio.wait_for(loop.sock_recv(listener, 4096), 5)

                assert await next_message() == b"READY=1"
                config.write_text(f"sessions: [{fake.accounts[0].session_key}]\nplugins: [broken.py]\n")
                proc.send_signal(signal.SIGHUP)
                assert (await next_message()).startswith(b"RELOADING=1")
                assert await next_message() == b"READY=1"
                async with aiohttp.ClientSession() as http:
                    async with http.post(
                        base + "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {API_KEY}"}
                    ) as resp:
                        assert resp.status == 200
                log = b"".join(output).decode()
                assert "config_reload_failed" in log and "bad plugin" in log
                assert "capacity" in log and "max_connections" in log  # M4: the start-up capacity line
        finally:
            listener.close()


# -- L5: shutdown drain ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body", "ending"), [
    ("/v1/chat/completions", {**CHAT, "stream": True}, b"data: [DONE]"),
    ("/v1/messages", {**MESSAGES, "stream": True}, b"event: error"),
])
async def test_sigterm_cuts_long_streams_with_an_error_frame(tmp_path: Path, path, body, ending) -> None:
    async with FakeClaude() as fake:
        fake.add_account()
        fake.reply(deltas=[f"w{i} " for i in range(400)], delay=0.05)  # 20 s: far beyond the drain time
        env = clean_env(
            SESSIONS=fake.accounts[0].session_key, APIKEY=API_KEY, ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url, SHUTDOWN_DRAIN_SECONDS="1",
        )
        async with daemon_process(env, tmp_path) as (base, _, proc):
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    base + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
                ) as resp:
                    await resp.content.readuntil(b"w1 ")
                    begun = time.monotonic()
                    proc.terminate()
                    rest = await asyncio.wait_for(resp.read(), 10)
            assert await asyncio.wait_for(proc.wait(), 10) == 0
            assert time.monotonic() - begun < 5
        assert b"w399" not in rest
        assert b"shutting down" in rest
        assert rest.rstrip().endswith(ending) or (ending == b"event: error" and ending in rest)
        assert fake.conversations == {}  # stopped and deleted before the process exited


def test_settings_have_env_vars_and_are_documented() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = (Path(__file__).resolve().parent.parent / "config.example.yaml").read_text()
    for name in (
        "cors_origins", "header_read_timeout", "body_read_timeout", "max_connections", "shutdown_drain_seconds",
        "upstream_first_byte_timeout", "request_deadline", "mirror_rejected_key_ttl", "mirror_count_tokens_max_kb",
    ):
        assert f"`{name.upper()}`" in readme and f"\n{name}:" in example, name

