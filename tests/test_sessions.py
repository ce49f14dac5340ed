"""The session pool: every state transition, reset times, pressure, the cap, persistence, operators' views."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from claude2api.testing import FakeClaude

from support import MODEL, raw_post, sdk
from test_cli import clean_env, daemon_process, free_port, run_cli


def ask(model: str = MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def states(daemon) -> list[dict]:
    return daemon.services.pool.snapshot()


@pytest.mark.parametrize(
    ("behaviour", "state", "status"),
    [
        ("dead", "dead", 503),
        ("dead_401", "dead", 503),
        ("org_disabled", "disabled", 503),
        ("cloudflare", "blocked", 503),
        ("cloudflare_302", "blocked", 503),
        ("unable_to_serve", "blocked", 503),
        ("rate_limited", "cooling", 429),
        ("rate_limited_header_only", "cooling", 429),
        ("rate_limited_no_reset", "cooling", 429),
    ],
)
async def test_failure_moves_the_session_to_its_state(fake: FakeClaude, make_daemon, behaviour, state, status) -> None:
    fake.add_account(behaviour=behaviour, reset_at=int(time.time()) + 5000)
    daemon = await make_daemon()
    code, _headers, raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert code == status, raw
    [session] = states(daemon)
    assert session["state"] == state
    assert session["reason"]
    assert fake.accounts[0].session_key not in raw.decode() + json.dumps(session)


async def test_reset_time_sources(fake: FakeClaude, make_daemon) -> None:
    clock = Clock()
    body_reset = int(clock.now) + 7000
    fake.add_account(behaviour="rate_limited", reset_at=body_reset)
    fake.add_account(behaviour="rate_limited_header_only", reset_at=body_reset + 100)
    fake.add_account(behaviour="rate_limited_no_reset")
    daemon = await make_daemon(clock=clock, env={"REQUEST_RATE_COOLDOWN_SECONDS": "42"})
    status, headers, _raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert status == 429
    until = {s["fingerprint"]: s["until"] for s in states(daemon)}
    expected = [body_reset, body_reset + 100, int(clock.now) + 42]
    iso = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) for t in expected]
    assert sorted(until.values()) == sorted(iso)
    # the earliest reset is the request-rate one (42 s): short enough for a retry-after
    assert headers["retry-after"] == "42"


async def test_sessions_come_back_after_their_reset(fake: FakeClaude, make_daemon) -> None:
    clock = Clock()
    account = fake.add_account(behaviour="cloudflare")
    daemon = await make_daemon(clock=clock)
    assert (await raw_post(daemon, "/v1/chat/completions", ask()))[0] == 503
    account.behaviour = "ok"
    assert (await raw_post(daemon, "/v1/chat/completions", ask()))[0] == 503  # still parked
    clock.now += 61
    assert (await raw_post(daemon, "/v1/chat/completions", ask()))[0] == 200
    assert states(daemon)[0]["state"] == "healthy"


async def test_model_not_allowed_excludes_that_model_only(fake: FakeClaude, make_daemon) -> None:
    # The live list still shows the model (the plan allows it); claude.ai refuses it anyway.
    fake.add_account(plan="max", denied_models={"claude-opus-4-6"})
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(**ask("claude-opus-4-6"))
        assert caught.value.code == "model_not_allowed" and "claude-opus-4-6" in caught.value.message
        assert (await client.chat.completions.create(**ask())).choices[0].message.content
        calls = len(fake.calls_to("/completion"))
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(**ask("claude-opus-4-6"))
        assert len(fake.calls_to("/completion")) == calls  # known: not tried again
    [session] = states(daemon)
    assert session["state"] == "healthy" and session["denied_models"] == ["claude-opus-4-6"]


async def test_a_model_the_live_list_lacks_is_refused_without_a_try(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(plan="free")  # the free plan's list shows Opus locked
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(**ask("claude-opus-4-6"))
        assert caught.value.code == "model_not_allowed" and "claude-opus-4-6" in caught.value.message
        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(**ask("claude-opus-9-9-nope"))
        assert "Did you mean" in missing.value.message
    assert not fake.calls_to("/completion")


async def test_transient_failures_do_not_kill_a_session(fake: FakeClaude, make_daemon) -> None:
    account = fake.add_account(behaviour="server_error")
    daemon = await make_daemon()
    status, _, _raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert status == 502
    assert states(daemon)[0]["state"] == "healthy"
    account.behaviour = "ok"
    assert (await raw_post(daemon, "/v1/chat/completions", ask()))[0] == 200


async def test_windows_near_their_limit_make_the_pool_prefer_others(fake: FakeClaude, make_daemon) -> None:
    hot = fake.add_account(utilization=0.97)
    cool = fake.add_account(utilization=0.10)
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(6):
            await client.chat.completions.create(**ask())
    users = [c.session_key for c in fake.calls_to("/completion")]
    # once the hot account's message_limit has been seen, every later request avoids it
    first_hot = users.index(hot.session_key) if hot.session_key in users else len(users)
    assert all(u == cool.session_key for u in users[first_hot + 1 :])
    assert users.count(cool.session_key) >= 5


async def test_concurrency_cap_makes_requests_wait_then_gives_up(fake: FakeClaude, make_daemon) -> None:
    fake.reply(deltas=["a", "b", "c", "d"], delay=0.15)
    daemon = await make_daemon(env={"SESSION_MAX_CONCURRENCY": "1", "SESSION_WAIT_TIMEOUT": "5"})
    started = time.monotonic()
    results = await asyncio.gather(*(raw_post(daemon, "/v1/chat/completions", ask()) for _ in range(2)))
    assert [r[0] for r in results] == [200, 200]
    assert time.monotonic() - started >= 1.0  # the second waited for the first (4 x 0.15 s each)
    completions = fake.calls_to("/completion")
    assert completions[1].time >= completions[0].time + 0.5

    impatient = await make_daemon(env={"SESSION_MAX_CONCURRENCY": "1", "SESSION_WAIT_TIMEOUT": "0.2"})
    results = await asyncio.gather(*(raw_post(impatient, "/v1/chat/completions", ask()) for _ in range(2)))
    assert sorted(r[0] for r in results) == [200, 503]
    busy = next(json.loads(r[2]) for r in results if r[0] == 503)
    assert busy["error"]["code"] == "sessions_busy"


async def test_admin_endpoint(fake: FakeClaude, make_daemon) -> None:
    dead = fake.add_account(behaviour="dead")
    fake.add_account()
    plain = await make_daemon()
    async with aiohttp.ClientSession() as http:
        async with http.get(plain.url + "/admin/sessions", headers={"x-api-key": plain.api_key}) as resp:
            assert resp.status == 404
    daemon = await make_daemon(env={"ADMIN_KEY": "admin-secret-key"})
    await raw_post(daemon, "/v1/chat/completions", ask())
    await raw_post(daemon, "/v1/chat/completions", ask())
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/admin/sessions", headers={"x-api-key": daemon.api_key}) as resp:
            assert resp.status == 401
        async with http.get(
            daemon.url + "/admin/sessions", headers={"Authorization": "Bearer admin-secret-key"}
        ) as resp:
            assert resp.status == 200
            text = await resp.text()
    listed = json.loads(text)["data"]
    assert sorted(s["state"] for s in listed) == ["dead", "healthy"]
    assert all(s["fingerprint"].startswith("sk-ant-sid01...") for s in listed)
    assert dead.session_key not in text and dead.session_key[13:40] not in text


async def test_state_survives_a_restart_of_the_daemon_process(tmp_path: Path) -> None:
    state_file = tmp_path / "state" / "sessions.json"
    async with FakeClaude() as fake:
        limited = fake.add_account(behaviour="rate_limited", reset_at=int(time.time()) + 9000)
        env = clean_env(
            SESSIONS=limited.session_key,
            APIKEY="sk-state-test-key",
            ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url,
            STATE_FILE=str(state_file),
            ADMIN_KEY="state-admin-key",
        )
        async with daemon_process(env, tmp_path) as (base, _, _):
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-state-test-key", max_retries=0) as c:
                with pytest.raises(openai.RateLimitError):
                    await c.chat.completions.create(**ask())
        assert limited.session_key not in state_file.read_text()
        completions = len(fake.calls_to("/completion"))
        env["ADDRESS"] = f"127.0.0.1:{free_port()}"
        async with daemon_process(env, tmp_path) as (base, _, _):
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-state-test-key", max_retries=0) as c:
                with pytest.raises(openai.RateLimitError):
                    await c.chat.completions.create(**ask())
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/admin/sessions", headers={"x-api-key": "state-admin-key"}) as resp:
                    [session] = (await resp.json())["data"]
        assert len(fake.calls_to("/completion")) == completions  # parked from the file: not tried
        assert session["state"] == "cooling"
        assert fake.calls_to("/api/organizations") and len(fake.calls_to("/api/organizations")) == 1


async def test_sessions_cli_prints_a_table(tmp_path: Path) -> None:
    async with FakeClaude() as fake:
        ok = fake.add_account(utilization=0.42)
        dead = fake.add_account(behaviour="dead")
        blocked = fake.add_account(behaviour="cloudflare")
        env = clean_env(
            SESSIONS=",".join(a.session_key for a in (ok, dead, blocked)),
            CLAUDE_BASE_URL=fake.base_url,
            ADDRESS="127.0.0.1:8080",
        )
        code, out, err = await run_cli("sessions", env=env, cwd=tmp_path)
        json_code, json_out, _ = await run_cli("sessions", "--json", env=env, cwd=tmp_path)
    assert code == 1 and json_code == 1, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:7] == ["SESSION", "ORG", "PLAN", "TRANSPORT", "EGRESS", "STATE", "5H"]
    assert "healthy" in lines[1] and ok.org_id in lines[1] and "pro" in lines[1] and "42%" in lines[1]
    assert all(" direct " in line for line in lines[1:])
    assert "dead" in lines[2] and "your key is dead" in lines[2]
    assert "blocked" in lines[3] and "your IP (or proxy) is challenged" in lines[3]
    for account in (ok, dead, blocked):
        assert account.session_key not in out + err
    reports = json.loads(json_out)
    assert [r["state"] for r in reports] == ["healthy", "dead", "blocked"]
    assert {r["egress"] for r in reports} == {"direct"} and all(r["transport"] for r in reports)
    assert "key is probably fine" in reports[2]["hint"] and "key is dead" in reports[1]["hint"]


async def test_sighup_reload_adds_sessions_and_keeps_the_others_state(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    async with FakeClaude() as fake:
        dead = fake.add_account(behaviour="dead")
        added = fake.add_account()
        base_config = (
            f"claude_base_url: {fake.base_url}\nadmin_key: reload-admin-key\nlog_format: json\n"
            f"address: 127.0.0.1:{free_port()}\n"
        )
        config.write_text(base_config + f"api_key: first-key-123\nsessions:\n  - {dead.session_key}\n")
        env = clean_env()
        env["ADDRESS"] = config.read_text().split("address: ")[1].split("\n")[0]
        async with daemon_process(env, tmp_path, "--config", str(config)) as (base, output, proc):
            assert (await raw_post_to(base, "first-key-123"))[0] == 503
            config.write_text(
                base_config
                + f"api_keys: [first-key-123, second-key-456]\nsessions:\n  - {dead.session_key}\n"
                + f"  - {added.session_key}\n"
            )
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                sessions = await admin_sessions(base, "reload-admin-key")
                if len(sessions) == 2:
                    break
                await asyncio.sleep(0.05)
            assert [s["state"] for s in sessions] == ["dead", "healthy"]
            assert (await raw_post_to(base, "second-key-456"))[0] == 200
            config.write_text("sessions: [\n")  # broken: the running configuration stays
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.3)
            assert (await raw_post_to(base, "second-key-456"))[0] == 200
        log = b"".join(output).decode()
    assert "config_reloaded" in log and "config_reload_failed" in log
    assert dead.session_key not in log and added.session_key not in log


async def raw_post_to(base: str, key: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/v1/chat/completions", json=ask(), headers={"x-api-key": key}) as resp:
            return resp.status, await resp.read()


async def admin_sessions(base: str, key: str) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/admin/sessions", headers={"x-api-key": key}) as resp:
            return (await resp.json())["data"]


async def test_active_flags_ban_and_restrict_accounts(fake: FakeClaude, make_daemon) -> None:
    clock = Clock()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now + 7200))
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now - 60))
    banned = fake.add_account(orgs=[{"active_flags": [{"type": "banned", "expires_at": None}]}])
    restricted = fake.add_account(orgs=[{"active_flags": [{"type": "restricted", "expires_at": until}]}])
    warned = fake.add_account(orgs=[{"active_flags": [{"type": "consumer_first_warning", "expires_at": until},
                                                      {"type": "restricted", "expires_at": past}]}])
    daemon = await make_daemon(clock=clock)
    status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert status == 200, raw
    assert [c.session_key for c in fake.calls_to("/completion")] == [warned.session_key]
    by_state = {s["state"]: s for s in states(daemon)}
    assert "banned" in by_state["disabled"]["reason"]
    assert "restricted" in by_state["cooling"]["reason"] and by_state["cooling"]["until"] == until
    assert banned.session_key and restricted.session_key
