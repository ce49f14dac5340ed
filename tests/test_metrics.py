"""GET /metrics: scraped with Prometheus' own text parser before and after real traffic; who may
scrape; no secret or unbounded client input in any label; the access line that explains a request."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from collections.abc import Iterator

import aiohttp
import anthropic
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from claude2api.logs import configure_logging
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, raw_post, sdk

ADMIN_KEY = "admin-key-for-metrics-tests"
METRICS_KEY = "metrics-key-for-metrics-tests"
KEYS = {"ADMIN_KEY": ADMIN_KEY, "METRICS_KEY": METRICS_KEY}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape_text(url: str, key: str | None = METRICS_KEY) -> str:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.content_type == "text/plain"
            return await resp.text()


async def scrape(daemon: Daemon) -> Samples:
    text = await scrape_text(daemon.url)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def ask(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


async def test_traffic_moves_the_counters_and_histograms(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env=KEYS)
    before = await scrape(daemon)
    assert value(before, "claude2api_accounts", state="healthy") == 1
    assert value(before, "claude2api_active_streams") == 0
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask())  # non-stream
        stream = await client.chat.completions.create(**ask(stream=True))
        async for _ in stream:
            pass
    status, _, _ = await raw_post(daemon, "/v1/chat/completions", ask(model="no-such-model-xyz"))  # an error
    assert status == 404
    # An abandoned stream: the client reads a little and goes away.
    fake.reply(deltas=[f"tok{i} " for i in range(200)], delay=0.05)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            daemon.url + "/v1/chat/completions",
            json=ask(stream=True),
            headers={"Authorization": f"Bearer {daemon.api_key}"},
        ) as resp:
            await resp.content.readuntil(b"tok2")
            during = await scrape(daemon)
    assert value(during, "claude2api_active_streams") == 1
    for _ in range(100):
        after = await scrape(daemon)
        if moved(before, after, "claude2api_requests_total", dialect="openai", route="/chat/completions",
                 model=MODEL, status="499"):
            break
        await asyncio.sleep(0.05)
    await daemon.idle()
    after = await scrape(daemon)

    chat = {"dialect": "openai", "route": "/chat/completions"}
    assert moved(before, after, "claude2api_requests_total", **chat, model=MODEL, status="200") == 2
    assert moved(before, after, "claude2api_requests_total", **chat, model="other", status="404") == 1
    assert moved(before, after, "claude2api_requests_total", **chat, model=MODEL, status="499") == 1
    assert value(after, "claude2api_active_streams") == 0
    # Every chat request has a duration; the three that reached claude.ai a first token.
    assert moved(before, after, "claude2api_request_duration_seconds_count", dialect="openai") == 4
    assert moved(before, after, "claude2api_time_to_first_token_seconds_count", dialect="openai") == 3
    assert moved(before, after, "claude2api_time_to_first_token_seconds_sum", dialect="openai") > 0
    assert moved(before, after, "claude2api_conversations_created_total") == 3
    assert moved(before, after, "claude2api_conversations_deleted_total") == 3  # CHAT_DELETE is on
    assert value(after, "claude2api_conversations_pending_cleanup") == 0
    # The earlier scrapes are counted too, under the route's path.
    assert value(after, "claude2api_requests_total", dialect="none", route="/metrics", model="none", status="200") >= 3


async def test_upstream_errors_by_failure_kind_and_account_states(fake: FakeClaude, make_daemon) -> None:
    fake.add_account()
    broken = fake.add_account()
    daemon = await make_daemon(env=KEYS)
    broken.behaviour = "dead"  # after start: found by a request, not by the start-up account check
    before = await scrape(daemon)
    async with sdk(daemon) as client:
        for _ in range(2):  # the dead account is tried once, then parked
            await client.chat.completions.create(**ask())
    after = await scrape(daemon)
    assert moved(before, after, "claude2api_upstream_errors_total", failure="dead") == 1
    assert value(after, "claude2api_upstream_errors_total", failure="overloaded") == 0  # every kind is listed
    assert value(after, "claude2api_accounts", state="healthy") == 1
    assert value(after, "claude2api_accounts", state="dead") == 1
    headroom = {dict(labels)["account"]: v for (name, labels), v in after.items()
                if name == "claude2api_account_usage_headroom"}
    assert len(headroom) == 2 and all(0 <= v <= 1 for v in headroom.values())


async def test_anthropic_requests_are_labelled_by_dialect(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env=KEYS)
    before = await scrape(daemon)
    client = anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=0)
    async with client:
        await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    after = await scrape(daemon)
    assert moved(before, after, "claude2api_requests_total", dialect="anthropic", route="/messages",
                 model=MODEL, status="200") == 1
    assert moved(before, after, "claude2api_time_to_first_token_seconds_count", dialect="anthropic") == 1


async def get_status(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/metrics", headers=headers or {}) as resp:
            await resp.read()
            return resp.status


async def test_who_may_scrape_the_main_port(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env=KEYS)
    assert await get_status(daemon.url, {"Authorization": f"Bearer {METRICS_KEY}"}) == 200
    assert await get_status(daemon.url, {"Authorization": f"Bearer {ADMIN_KEY}"}) == 200
    assert await get_status(daemon.url, {"x-api-key": METRICS_KEY}) == 200
    assert await get_status(daemon.url) == 401
    assert await get_status(daemon.url, {"Authorization": f"Bearer {daemon.api_key}"}) == 401  # an API key is not enough
    assert await get_status(daemon.url, {"Authorization": "Bearer wrong"}) == 401
    assert await get_status(daemon.url, {"Authorization": f"Bearer {METRICS_KEY}", "Origin": "https://evil.example"}) == 403
    assert daemon.metrics_url is None


async def test_admin_key_alone_opens_metrics_and_no_key_turns_them_off(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"ADMIN_KEY": ADMIN_KEY})
    assert await get_status(daemon.url, {"Authorization": f"Bearer {ADMIN_KEY}"}) == 200
    assert await get_status(daemon.url, {"Authorization": f"Bearer {METRICS_KEY}"}) == 401


async def test_metrics_are_off_on_the_main_port_without_a_key(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/metrics", headers={"Authorization": f"Bearer {daemon.api_key}"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "metrics_disabled"


async def test_metrics_address_listener_needs_no_auth(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"METRICS_ADDRESS": "127.0.0.1:0"})
    assert daemon.metrics_url is not None
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask())
    text = await scrape_text(daemon.metrics_url, key=None)
    assert 'claude2api_requests_total{dialect="openai",model="claude-sonnet-4-6",route="/chat/completions",status="200"} 1.0' in text
    assert await get_status(daemon.url) == 404  # the main port still has no metrics without a key


async def test_labels_carry_no_secret_and_no_unbounded_input(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env=KEYS)
    huge = "m" * (1024 * 1024)
    random_name = "model-" + secrets.token_hex(16)
    async with aiohttp.ClientSession() as http:
        for model in (huge, random_name, f"{MODEL}\n# HELP injected"):
            body = io.BytesIO(json.dumps(ask(model=model)).encode())
            headers = {"Authorization": f"Bearer {daemon.api_key}", "Content-Type": "application/json"}
            async with http.post(daemon.url + "/v1/chat/completions", data=body, headers=headers) as resp:
                assert resp.status == 404
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask(model=MODEL + "-think"))  # resolves: the base id
    await raw_post(daemon, "/v1/" + "x" * 5000, {})  # an unknown route
    text = await scrape_text(daemon.url)
    assert len(text) < 100_000
    for secret in (fake.accounts[0].session_key, daemon.api_key, ADMIN_KEY, METRICS_KEY, random_name, "injected"):
        assert secret not in text
    samples = await scrape(daemon)
    models = {dict(labels).get("model") for (name, labels) in samples if name == "claude2api_requests_total"}
    assert models <= {MODEL, "other", "none"}
    assert value(samples, "claude2api_requests_total", dialect="openai", route="/chat/completions",
                 model="other", status="404") == 3
    routes = {dict(labels).get("route") for (name, labels) in samples if name == "claude2api_requests_total"}
    assert routes <= {"/chat/completions", "/metrics", "unmatched"}


# -- the access line ----------------------------------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("debug", "json", stream, cache_logger_on_first_use=False)
    yield stream
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def log_lines(stream: io.StringIO, event: str) -> list[dict]:
    return [line for line in map(json.loads, stream.getvalue().splitlines()) if line["event"] == event]


async def test_access_line_says_what_happened(fake: FakeClaude, make_daemon, log_output: io.StringIO) -> None:
    doomed = fake.add_account()
    fake.add_account()
    daemon = await make_daemon(env={"MAX_CHAT_HISTORY_LENGTH": "10"})
    doomed.behaviour = "dead"  # after start: found by this request, not by the start-up account check
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(**ask(model=MODEL + "-think", stream=True))
        async for _ in stream:
            pass
    [line] = [x for x in log_lines(log_output, "request") if x["path"] == "/v1/chat/completions"]
    good = fake.accounts[1]
    assert line["dialect"] == "openai" and line["stream"] is True
    assert line["status"] == 200
    assert line["model"] == MODEL + "-think" and line["model_sent"] == MODEL
    assert line["accounts_tried"] == 2  # the dead one first (least recently used), then the good one
    from claude2api.logs import fingerprint

    assert line["account"] == fingerprint(good.session_key)
    assert line["history_file"] is True
    assert line["input_tokens"] > 0 and line["output_tokens"] > 0
    assert line["tool_calls"] == 0
    assert 0 < line["ttft_ms"] <= line["duration_ms"]
    assert "error_code" not in line
    assert good.session_key not in log_output.getvalue()


async def test_a_claude_code_404_names_the_model_and_a_suggestion(daemon: Daemon, log_output: io.StringIO) -> None:
    status, _, _ = await raw_post(
        daemon, "/v1/messages", {"model": "claude-sonet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert status == 404
    [line] = log_lines(log_output, "request")
    assert line["status"] == 404 and line["dialect"] == "anthropic"
    assert line["model"] == "claude-sonet-4-6"
    assert line["error_code"] == "model_not_found" and "claude-sonet-4-6" in line["error"]
    assert MODEL in line["suggestion"]


async def test_unhonoured_asks_get_a_warning_line(daemon: Daemon, log_output: io.StringIO) -> None:
    client = anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=0)
    async with client:
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            extra_body={"temperature": 0.2},
            thinking={"type": "enabled", "budget_tokens": 2000},
            messages=[{"role": "user", "content": "Hi"}],
        )
        await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    [warning] = log_lines(log_output, "request_not_fully_honoured")
    assert warning["level"] == "warning"
    assert warning["unhonoured"] == ["temperature ignored", "thinking.budget_tokens 2000 sent as effort low"]
    assert warning["request_id"]
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask(temperature=0.5, seed=3, top_p=1))
    assert log_lines(log_output, "request_not_fully_honoured")[-1]["unhonoured"] == ["temperature ignored", "seed ignored"]


async def test_an_abandoned_stream_is_logged_as_such(fake: FakeClaude, daemon: Daemon, log_output: io.StringIO) -> None:
    fake.reply(deltas=[f"tok{i} " for i in range(200)], delay=0.05)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            daemon.url + "/v1/chat/completions",
            json=ask(stream=True),
            headers={"Authorization": f"Bearer {daemon.api_key}"},
        ) as resp:
            await resp.content.readuntil(b"tok2")
    for _ in range(100):
        if log_lines(log_output, "request"):
            break
        await asyncio.sleep(0.05)
    [line] = log_lines(log_output, "request")
    assert line["client_gone"] is True
    assert line["output_tokens"] > 0
