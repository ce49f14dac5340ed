"""Issue 15, H3 / M5 / L2: what claude.ai or a state file says about accounts cannot break the daemon,
conversations are cleaned up even when claude.ai is down for a while (also across a restart), and
``claude2api sessions`` tells an unreachable claude.ai from a healthy account."""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from claude2api.accounts import statefile
from claude2api.testing import FakeClaude
from claude2api.upstream.classify import classify_response
from claude2api.upstream.resets import MAX_RESET_AHEAD, parse_instant, reset_time, retry_after_time

from support import MODEL, raw_post
from test_cli import clean_env, daemon_process, free_port, run_cli

NOW = 1_790_000_000.0
ADMIN_KEY = "hardening-admin-key"


def ask() -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


async def get_json(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"x-api-key": key} if key else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            return resp.status, json.loads(await resp.read())


# --------------------------------------------------------------------------- H3: the parser


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW + 3600, NOW + 3600),  # epoch seconds
        (int(NOW) + 60, int(NOW) + 60),
        (str(int(NOW) + 60), NOW + 60),
        ((NOW + 3600) * 1000, NOW + 3600),  # epoch milliseconds
        (str(int((NOW + 90) * 1000)), NOW + 90),
        (iso(NOW + 7200), NOW + 7200),  # ISO with Z
        (iso(NOW + 7200).replace("Z", ".512345+00:00"), NOW + 7200.512345),  # fraction and offset
        (iso(NOW + 7200).replace("Z", ".000Z"), NOW + 7200),
        (iso(NOW + 7200).replace("Z", "+01:00"), NOW + 3600),  # the same wall time one hour east
        (iso(NOW + 7200)[:-1], NOW + 7200),  # no zone: UTC
        (NOW + MAX_RESET_AHEAD, NOW + MAX_RESET_AHEAD),
    ],
)
def test_reset_time_reads_every_form(value: Any, expected: float) -> None:
    assert reset_time(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        math.inf, -math.inf, math.nan, "inf", "NaN", "-1", -5, 0, NOW - 1, NOW,
        NOW + MAX_RESET_AHEAD + 1, 1e300, "50000-01-01T00:00:00Z", 50000 * 365 * 86400, True, None,
        "soon", "", [NOW + 60], {"t": NOW + 60}, "9" * 400, "2026-13-45T99:00:00Z",
    ],
)
def test_reset_time_refuses_absurd_values(value: Any) -> None:
    assert reset_time(value, NOW) is None


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert retry_after_time("120", NOW) == NOW + 120
    assert retry_after_time(" 1.5 ", NOW) == NOW + 1.5
    assert retry_after_time("Wed, 21 Oct 2026 07:28:00 GMT", epoch("2026-10-21T07:00:00Z")) == epoch(
        "2026-10-21T07:28:00Z"
    )
    for bad in ("inf", "nan", "-3", "0", str(MAX_RESET_AHEAD * 2), "Wed, 21 Oct 50000 07:28:00 GMT", "x", None):
        assert retry_after_time(bad, NOW) is None


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
RESETISH = (
    ANY_JSON
    | st.floats(min_value=-1e13, max_value=1e13).map(str)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.integers(min_value=int(NOW) - 10**6, max_value=int(NOW * 1000) + 10**9)
)


def _in_window(value: float | None, now: float) -> bool:
    return value is None or (math.isfinite(value) and now < value <= now + MAX_RESET_AHEAD)


@settings(max_examples=400, deadline=None)
@given(value=RESETISH, now=st.floats(min_value=0, max_value=4e9))
def test_reset_time_property_never_raises_and_stays_in_the_window(value: Any, now: float) -> None:
    assert _in_window(reset_time(value, now), now)
    assert _in_window(retry_after_time(value, now), now)
    instant = parse_instant(value)
    assert instant is None or math.isfinite(instant)


@settings(max_examples=200, deadline=None)
@given(inner=RESETISH, header=RESETISH, retry=RESETISH, windows=ANY_JSON)
def test_classified_429s_carry_only_sane_reset_times(inner: Any, header: Any, retry: Any, windows: Any) -> None:
    message = json.dumps({"type": "exceeded_limit", "resetsAt": inner, "windows": windows})
    body = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": message}}).encode()
    headers = {"anthropic-ratelimit-unified-reset": str(header), "retry-after": str(retry)}
    error = classify_response(429, headers, body, NOW)
    assert _in_window(error.reset_at, NOW)


# --------------------------------------------------------------------------- H3: through the daemon


class OddResetFake(FakeClaude):
    """Sends :attr:`odd_reset` verbatim wherever the fake puts a reset time (body, header, stream)."""

    odd_reset: Any = None

    def _reset_at(self, account: Any) -> Any:  # type: ignore[override]
        return self.odd_reset


@pytest.fixture
async def odd_fake() -> Any:
    async with OddResetFake() as server:
        yield server


def _assert_sane(session: dict[str, Any], now: float) -> None:
    assert session["state"] == "cooling"
    until = epoch(session["until"])
    assert now - 1 <= until <= now + MAX_RESET_AHEAD + 1


@pytest.mark.parametrize("behaviour", ["rate_limited", "exceeded_in_stream"])
@pytest.mark.parametrize(
    "odd", [(time.time() + 600) * 1000, math.inf, math.nan, 50000 * 365 * 86400, -1, "soon", "1e400"]
)
async def test_absurd_reset_time_from_claude_ai_does_not_break_the_daemon(
    odd_fake: OddResetFake, behaviour: str, odd: Any, tmp_path: Path
) -> None:
    from claude2api.testing.daemon import run_daemon, settings_for

    odd_fake.odd_reset = odd
    odd_fake.add_account(behaviour=behaviour)
    state_file = tmp_path / "state.json"
    settings = settings_for(
        odd_fake.base_url,
        [a.session_key for a in odd_fake.accounts],
        {"ADMIN_KEY": ADMIN_KEY, "STATE_FILE": str(state_file)},
    )
    for run in range(2):  # the second run reads the state file the first one wrote
        async with run_daemon(settings) as daemon:
            now = time.time()
            status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
            assert status in (200, 429), raw
            status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
            assert status == 429, raw  # parked: a clean, well-formed refusal
            assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"
            assert (await get_json(daemon.url + "/health"))[0] == 200
            status, listed = await get_json(daemon.url + "/admin/sessions", ADMIN_KEY)
            assert status == 200
            _assert_sane(listed["data"][0], now)
        text = state_file.read_text()
        assert "Infinity" not in text and "NaN" not in text, (run, text)


async def test_hostile_state_file_entries_are_dropped_not_fatal(fake: FakeClaude, make_daemon, tmp_path: Path) -> None:
    accounts = [fake.add_account() for _ in range(5)]
    state_file = tmp_path / "state.json"
    records: list[dict[str, Any]] = [
        {"state": "cooling", "reason": "x", "until": 1e300},
        {"state": "blocked", "reason": "x", "until": math.nan},
        {"state": "healthy", "org_id": accounts[2].org_id + "/../../../account?x=", "plan": "pro"},
        {"state": "cooling", "until": math.inf, "denied_models": "not a list"},
        {"state": "no-such-state", "until": "tomorrow"},
    ]
    sessions: dict[str, Any] = {statefile.state_id(a.session_key): r for a, r in zip(accounts, records, strict=True)}
    sessions["not-a-hash"] = {"state": "dead"}
    state_file.write_text(
        json.dumps({"version": 1, "sessions": sessions, "cleanup": [1, {"session": "../x", "conversation": "y"}]})
    )
    daemon = await make_daemon(env={"ADMIN_KEY": ADMIN_KEY, "STATE_FILE": str(state_file)})
    now = time.time()
    assert (await get_json(daemon.url + "/health"))[0] == 200
    status, listed = await get_json(daemon.url + "/admin/sessions", ADMIN_KEY)
    assert status == 200
    by_state = [s["state"] for s in listed["data"]]
    assert by_state == ["cooling", "blocked", "healthy", "healthy", "healthy"]
    for session in listed["data"][:2]:
        until = epoch(session["until"])
        assert now < until <= now + 3600 + 5  # the default cool-down, not the absurd time
    for _ in range(3):
        status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
        assert status == 200, raw
    org_ids = {a.org_id for a in accounts}
    for call in fake.calls:  # nothing but the organization list and real org paths got the cookie
        parts = call.path.split("/")
        assert call.path == "/api/organizations" or (parts[:3] == ["", "api", "organizations"] and parts[3] in org_ids)


# --------------------------------------------------------------------------- M5: clean-up retries


class FlakyDeleteFake(FakeClaude):
    """DELETE and stop_response answer 503 while :attr:`failing` is set (claude.ai down for them)."""

    failing = False

    async def _delete_conversation(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=503, text="upstream connect error")
        return await super()._delete_conversation(request)


async def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _failed_deletes(fake: FakeClaude) -> int:
    return len([c for c in fake.calls if c.method == "DELETE"])


async def test_cleanup_is_retried_until_claude_ai_is_back() -> None:
    from claude2api.testing.daemon import run_daemon, settings_for

    async with FlakyDeleteFake() as fake:
        fake.add_account()
        fake.failing = True
        settings = settings_for(
            fake.base_url,
            [fake.accounts[0].session_key],
            {"ADMIN_KEY": ADMIN_KEY, "CLEANUP_RETRY_DELAY_SECONDS": "0.1"},
        )
        async with run_daemon(settings) as daemon:
            status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
            assert status == 200, raw
            await daemon.idle()
            await _wait_for(lambda: _failed_deletes(fake) >= 4, 5)  # more than today's three tries
            status, listed = await get_json(daemon.url + "/admin/sessions", ADMIN_KEY)
            assert listed["data"][0]["pending_cleanup"] == 1
            assert len(fake.conversations) == 1
            fake.failing = False
            await _wait_for(lambda: not fake.conversations, 5)
            status, listed = await get_json(daemon.url + "/admin/sessions", ADMIN_KEY)
            assert listed["data"][0]["pending_cleanup"] == 0


async def test_cleanup_retries_continue_after_a_daemon_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    async with FlakyDeleteFake() as fake:
        account = fake.add_account()
        fake.failing = True
        env = clean_env(
            SESSIONS=account.session_key,
            APIKEY="sk-restart-test-key",
            ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url,
            STATE_FILE=str(state_file),
            ADMIN_KEY=ADMIN_KEY,
            CLEANUP_RETRY_DELAY_SECONDS="0.2",
        )
        async with daemon_process(env, tmp_path) as (base, _, _):
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    base + "/v1/chat/completions", json=ask(), headers={"x-api-key": "sk-restart-test-key"}
                ) as resp:
                    assert resp.status == 200
            await _wait_for(lambda: _failed_deletes(fake) >= 2, 10)
            _, listed = await get_json(base + "/admin/sessions", ADMIN_KEY)
            assert listed["data"][0]["pending_cleanup"] == 1
        saved = state_file.read_text()
        assert account.session_key not in saved
        [entry] = json.loads(saved)["cleanup"]
        assert entry["conversation"] in fake.conversations
        assert entry["session"] == statefile.state_id(account.session_key)
        fake.failing = False
        calls_before = len(fake.calls)
        env["ADDRESS"] = f"127.0.0.1:{free_port()}"
        async with daemon_process(env, tmp_path) as (base, _, _):
            await _wait_for(lambda: not fake.conversations, 10)
            _, listed = await get_json(base + "/admin/sessions", ADMIN_KEY)
            assert listed["data"][0]["pending_cleanup"] == 0
        assert any(c.method == "DELETE" for c in fake.calls[calls_before:])
        assert json.loads(state_file.read_text())["cleanup"] == []


# --------------------------------------------------------------------------- L2: sessions CLI


async def test_sessions_cli_says_unreachable_when_claude_ai_is_down(tmp_path: Path) -> None:
    env = clean_env(
        SESSIONS="sk-ant-sid01-" + "a" * 90 + "AA",
        CLAUDE_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        ADDRESS="127.0.0.1:8080",
    )
    code, out, err = await run_cli("sessions", "--json", env=env, cwd=tmp_path)
    assert code != 0, out + err
    [report] = json.loads(out)
    assert report["state"] == "unreachable" and "could not reach claude.ai" in report["reason"]


async def test_sessions_cli_applies_the_pools_account_rules(tmp_path: Path) -> None:
    until = iso(time.time() + 7200)
    async with FakeClaude() as fake:
        banned = fake.add_account(orgs=[{"active_flags": [{"type": "banned", "expires_at": None}]}])
        restricted = fake.add_account(orgs=[{"active_flags": [{"type": "restricted", "expires_at": until}]}])
        ok = fake.add_account()
        env = clean_env(
            SESSIONS=",".join(a.session_key for a in (banned, restricted, ok)),
            CLAUDE_BASE_URL=fake.base_url,
            ADDRESS="127.0.0.1:8080",
        )
        code, out, err = await run_cli("sessions", "--json", env=env, cwd=tmp_path)
    assert code == 1, out + err
    reports = json.loads(out)
    assert [r["state"] for r in reports] == ["disabled", "cooling", "healthy"]
    assert reports[1]["resets_at"] == until


async def test_state_file_writes_are_debounced_and_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:
    import threading

    writes: list[str] = []
    real_write = statefile.write

    def counting_write(path: Path, payload: dict[str, Any]) -> None:
        writes.append(threading.current_thread().name)
        real_write(path, payload)

    monkeypatch.setattr(statefile, "write", counting_write)
    state = statefile.StateFile(tmp_path / "state.json", debounce=0.2)
    counter = {"n": 0}
    state.sources["sessions"] = lambda: {"n": counter["n"]}
    for n in range(1, 51):
        counter["n"] = n
        state.changed()
    await asyncio.sleep(0.4)
    await state.flush()
    assert len(writes) == 1 and writes[0] != threading.main_thread().name
    assert json.loads((tmp_path / "state.json").read_text())["sessions"] == {"n": 50}
