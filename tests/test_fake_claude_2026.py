"""The fake claude.ai's 2026 additions (reference ``claude-web-2026-additions.md``), over real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from test_fake_claude import CONV, CONVS, Client, SSESplitter, completion_body, names, text_of

from claude2api.testing import FakeClaude
from claude2api.testing.fake_claude import MODEL_NOT_AVAILABLE, FakeModel, make_session_key

NOW = 1_790_000_000.0
APP_START = "/edge-api/bootstrap/{org}/app_start?statsig_hashing_algorithm=djb2&growthbook_format=sdk"
WEATHER = {
    "name": "get_weather",
    "description": "Current temperature for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SEARCH_TOOL = {"type": "web_search_v0", "name": "web_search"}
Event = tuple[str, dict[str, Any]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaude]:
    async with FakeClaude(clock=lambda: NOW) as server:
        server.ping_interval = 0.05
        yield server


@pytest.fixture
def client(http: aiohttp.ClientSession, fake: FakeClaude) -> Client:
    return Client(http, fake, fake.add_account())


def body_for(model: str, prompt: str = "Hello there", **extra: Any) -> dict[str, Any]:
    body = completion_body(prompt, model=model, **extra)
    body["create_conversation_params"]["model"] = model
    return body


async def error_of(resp: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    return resp.status, json.loads(await resp.text())


# --------------------------------------------------------------------------- models and thinking


async def test_app_start_lists_the_catalog_and_selector(client: Client, fake: FakeClaude) -> None:
    body = await (await client.call("GET", APP_START)).json()
    available = body["claude_ai_available_models"]["models"]
    ids = [m["model_id"] for m in available]
    assert ids[:3] == ["claude-sonnet-5", "claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
    assert {
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-5",
        "claude-fable-5",
    } <= set(ids)
    assert set(available[0]) == {"model_id", "name", "minimum_tier"}
    [chat] = body["model_selector_config"]
    assert chat["id"] == "chat"
    selector = {m["id"]: m for m in chat["models"]}
    sonnet5 = selector["claude-sonnet-5"]["thinking"]
    assert sonnet5["type"] == "effort_and_mode"
    assert [o["id"] for o in sonnet5["mode_options"]] == ["auto", "off"]
    assert [o["id"] for o in sonnet5["effort_options"]] == ["low", "medium", "high", "xhigh", "max"]
    assert "xhigh" not in [o["id"] for o in selector["claude-sonnet-4-6"]["thinking"]["effort_options"]]
    haiku = selector["claude-haiku-4-5-20251001"]["thinking"]
    assert haiku["type"] == "mode" and "effort_options" not in haiku
    assert not any(m["disabled"] for m in chat["models"])  # a pro account reaches every tier
    assert body["model_selector_state"] == [{"id": "chat", "model": "claude-sonnet-5"}]
    same = await (
        await client.call("GET", "/api/bootstrap/{org}/app_start?statsig_hashing_algorithm=djb2")
    ).json()
    assert same["claude_ai_available_models"] == body["claude_ai_available_models"]


async def test_app_start_per_account(http: aiohttp.ClientSession, fake: FakeClaude) -> None:
    free = Client(http, fake, fake.add_account(plan="free"))
    narrow = Client(http, fake, fake.add_account(models=["claude-sonnet-5", "claude-haiku-4-5-20251001"]))
    selector = (await (await free.call("GET", APP_START)).json())["model_selector_config"][0]["models"]
    disabled = {m["id"] for m in selector if m["disabled"]}
    assert "claude-opus-5" in disabled and "claude-sonnet-5" not in disabled
    body = await (await narrow.call("GET", APP_START)).json()
    assert [m["model_id"] for m in body["claude_ai_available_models"]["models"]] == [
        "claude-sonnet-5",
        "claude-haiku-4-5-20251001",
    ]
    fake.accounts[1].behaviour = "dead"
    assert (await narrow.call("GET", APP_START)).status == 403


@pytest.mark.parametrize(
    ("plan", "models", "model"),
    [("free", None, "claude-opus-5"), ("pro", ["claude-sonnet-5"], "claude-opus-4-8")],
)
async def test_model_not_available_on_the_plan(
    http: aiohttp.ClientSession, fake: FakeClaude, plan: str, models: list[str] | None, model: str
) -> None:
    client = Client(http, fake, fake.add_account(plan=plan, models=models))
    status, body = await error_of(
        await client.call("POST", f"{CONVS}/{CONV}/completion", json=body_for(model))
    )
    assert status == 403
    assert body == {"type": "error", "error": {"type": "permission_error", "message": MODEL_NOT_AVAILABLE}}
    assert CONV not in fake.conversations


async def test_unknown_models_only_refused_when_strict(client: Client, fake: FakeClaude) -> None:
    _, events = await client.stream(CONV, body_for("claude-3-7-sonnet-20250219"))
    assert names(events)[-1] == "message_stop"
    fake.strict_models = True
    resp = await client.call(
        "POST", f"{CONVS}/{uuid.uuid4()}/completion", json=body_for("claude-3-7-sonnet-20250219")
    )
    assert resp.status == 403


@pytest.mark.parametrize(
    ("model", "thinking", "field"),
    [
        ("claude-sonnet-5", {"thinking_mode": "extended", "effort": "high"}, "thinking_mode"),
        ("claude-sonnet-4-6", {"thinking_mode": "auto", "effort": "xhigh"}, "effort"),
        ("claude-haiku-4-5-20251001", {"thinking_mode": "off", "effort": "low"}, "effort"),
        ("claude-opus-4-6", {"thinking_mode": "auto", "effort": "medium"}, "thinking_mode"),
    ],
)
async def test_strict_thinking_rejects_unlisted_values(
    client: Client, fake: FakeClaude, model: str, thinking: dict[str, str], field: str
) -> None:
    fake.strict_models = True
    status, body = await error_of(
        await client.call("POST", f"{CONVS}/{CONV}/completion", json=body_for(model, **thinking))
    )
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"{field} {thinking[field]!r} is not available for {model}")
    assert body["error"]["details"] == {"error_visibility": "user_facing"} and body["request_id"].startswith(
        "req_"
    )


async def test_strict_thinking_accepts_listed_values(client: Client, fake: FakeClaude) -> None:
    fake.strict_models = True
    fake.reply("ok", thinking="pondering")
    _, events = await client.stream(CONV, body_for("claude-sonnet-5", thinking_mode="auto", effort="xhigh"))
    assert text_of(events, "thinking_delta", "thinking") == "pondering"
    _, events = await client.stream(
        str(uuid.uuid4()), body_for("claude-haiku-4-5-20251001", thinking_mode="off")
    )
    assert text_of(events) == "ok"


def test_sid02_session_keys(fake: FakeClaude) -> None:
    key = make_session_key("sid02")
    assert re.fullmatch(r"sk-ant-sid02-[0-9A-Za-z_-]{86,120}-[0-9A-Za-z_-]{6}AA", key)
    assert make_session_key().startswith("sk-ant-sid01-")
    with pytest.raises(ValueError):
        make_session_key("sid2")


async def test_sid02_account_works(http: aiohttp.ClientSession, fake: FakeClaude) -> None:
    client = Client(http, fake, fake.add_account(make_session_key("sid02")))
    assert (await client.call("GET", "/api/organizations")).status == 200


def test_custom_catalog_model(fake: FakeClaude) -> None:
    fake.models.append(FakeModel("claude-sonnet-5-5", "Sonnet 5.5", "max"))
    account = fake.add_account(plan="pro")
    assert not fake.can_use(account, fake.models[-1])


# --------------------------------------------------------------------------- usage and limits


async def test_usage_2026_shape(client: Client) -> None:
    client.account.limit_shape = "full"
    client.account.utilization = 0.4
    body = await (await client.call("GET", "/api/organizations/{org}/usage")).json()
    assert body["five_hour"]["utilization"] == 40.0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\+00:00", body["seven_day"]["resets_at"])
    assert body["seven_day_opus"] is None and body["seven_day_sonnet"]["utilization"] == 40.0
    assert set(body["extra_usage"]) == {
        "is_enabled",
        "monthly_limit",
        "used_credits",
        "utilization",
        "currency",
        "disabled_reason",
    }
    kinds = [limit["kind"] for limit in body["limits"]]
    assert kinds == ["session", "weekly_all", "weekly_scoped"]
    scoped = body["limits"][2]
    assert scoped["scope"]["model"] == {"id": "claude-fable-5", "display_name": "Fable 5"}
    assert sum(limit["is_active"] for limit in body["limits"]) == 1


async def test_usage_free_plan_shape(client: Client) -> None:
    client.account.limit_shape = "free"
    body = await (await client.call("GET", "/api/organizations/{org}/usage")).json()
    assert body["five_hour"] is None and body["seven_day"] is None and body["limits"] == []


async def test_usage_exhausted_model(client: Client) -> None:
    client.account.exhausted = "claude-opus-4-8"
    body = await (await client.call("GET", "/api/organizations/{org}/usage")).json()
    scoped = body["limits"][2]
    assert scoped["scope"]["model"]["id"] == "claude-opus-4-8"
    assert (scoped["percent"], scoped["severity"], scoped["is_active"]) == (100, "critical", True)


async def test_full_message_limit(client: Client) -> None:
    client.account.limit_shape = "full"
    _, events = await client.stream(CONV, body_for("claude-sonnet-5"))
    limit = events[-2][1]["message_limit"]
    assert list(limit) == [
        "type",
        "overageStatus",
        "resetsAt",
        "remaining",
        "perModelLimit",
        "representativeClaim",
        "overageResetsAt",
        "overageInUse",
        "windows",
        "resolved",
    ]
    assert set(limit["windows"]) == {"5h", "7d", "7d_oi", "overage"}
    assert limit["resolved"]["limit"]["kind"] == "session" and limit["representativeClaim"] == "five_hour"


@pytest.mark.parametrize(("fmt", "expected"), [("s", int), ("ms", int), ("iso", str)])
async def test_window_reset_formats(client: Client, fmt: str, expected: type) -> None:
    client.account.resets_at_format = fmt
    client.account.reset_at = 1_790_003_600
    _, events = await client.stream(CONV, body_for("claude-sonnet-5"))
    window = events[-2][1]["message_limit"]["windows"]["5h"]
    assert isinstance(window["resets_at"], expected)
    value = {"s": 1_790_003_600, "ms": 1_790_003_600_000, "iso": "2026-09-21T15:13:20+00:00"}[fmt]
    assert window["resets_at"] == value


async def test_exhausted_model_window_refuses_that_model_only(client: Client) -> None:
    client.account.exhausted = "claude-opus-4-8"
    status, body = await error_of(
        await client.call("POST", f"{CONVS}/{CONV}/completion", json=body_for("claude-opus-4-8"))
    )
    assert status == 429 and body["error"]["type"] == "rate_limit_error"
    inner = json.loads(body["error"]["message"])
    assert inner["type"] == "exceeded_limit" and inner["perModelLimit"] is True
    assert inner["windows"]["7d_oi"]["status"] == "exceeded_limit"
    assert inner["windows"]["5h"]["status"] == "within_limit"
    assert inner["resolved"]["limit"]["scope"]["model"]["id"] == "claude-opus-4-8"
    _, events = await client.stream(CONV, body_for("claude-sonnet-5"))
    limit = events[-2][1]["message_limit"]
    assert limit["type"] == "within_limit" and limit["windows"]["7d_oi"]["status"] == "exceeded_limit"


async def test_exhausted_all_window_refuses_every_model(client: Client) -> None:
    client.account.exhausted = "all"
    client.account.reset_at = 1_790_006_400
    for model in ("claude-sonnet-5", "claude-opus-4-8"):
        status, body = await error_of(
            await client.call("POST", f"{CONVS}/{CONV}/completion", json=body_for(model))
        )
        inner = json.loads(body["error"]["message"])
        assert status == 429 and inner["windows"]["5h"]["status"] == "exceeded_limit"
        assert inner["resolved"]["limit"]["kind"] == "session" and inner["resetsAt"] == 1_790_006_400


async def test_exceeded_in_stream_2026(client: Client) -> None:
    client.account.limit_shape = "full"
    client.account.behaviour = "exceeded_in_stream"
    _, events = await client.stream(CONV, body_for("claude-sonnet-5"))
    limit = events[-2][1]["message_limit"]
    assert limit["type"] == "exceeded_limit" and limit["windows"]["5h"]["surpassed_threshold"] == 1.0


# --------------------------------------------------------------------------- client tools


class Stream:
    """A completion read incrementally; SSE comment blocks (pings) are counted, not parsed."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.buffer = b""
        self.events: list[Event] = []
        self.pings = 0

    async def read_until(self, predicate: Any, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                chunk = await self.resp.content.readany()
                if not chunk:
                    return
                self.buffer += chunk
                *blocks, self.buffer = self.buffer.split(b"\n\n")
                for block in blocks:
                    if block.startswith(b":"):
                        assert re.fullmatch(rb": ping - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", block)
                        self.pings += 1
                    else:
                        self.events += SSESplitter().feed(block + b"\n\n")


async def open_stream(client: Client, conv: str, body: dict[str, Any]) -> Stream:
    resp = await client.call("POST", f"{CONVS}/{conv}/completion", json=body)
    assert resp.status == 200, await resp.text()
    return Stream(resp)


async def read_all(client: Client, conv: str, body: dict[str, Any]) -> list[Event]:
    """A whole completion, comment pings skipped."""
    stream = await open_stream(client, conv, body)
    await stream.read_until(lambda s: False)
    return stream.events


def tool_uses(events: list[Event]) -> list[dict[str, Any]]:
    return [
        d["content_block"]
        for n, d in events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    ]


def tool_input(events: list[Event], index: int) -> Any:
    return json.loads(
        "".join(
            d["delta"]["partial_json"]
            for n, d in events
            if n == "content_block_delta" and d["index"] == index and d["delta"]["type"] == "input_json_delta"
        )
    )


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"name": "x y", "input_schema": {"type": "object"}}, "tools.0.name"),
        ({"name": "get_weather"}, "tools.0.input_schema: Input should be a valid dictionary"),
        ({"name": "get_weather", "input_schema": {"type": "string"}}, "tools.0.input_schema.type"),
        ("get_weather", "tools.0: Input should be a valid dictionary"),
    ],
)
async def test_malformed_tool_is_rejected(client: Client, fake: FakeClaude, tool: Any, message: str) -> None:
    status, body = await error_of(
        await client.call(
            "POST", f"{CONVS}/{CONV}/completion", json=body_for("claude-sonnet-5", tools=[tool])
        )
    )
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(message)
    assert CONV not in fake.conversations


async def test_tool_call_holds_then_resumes_on_tool_result(client: Client, fake: FakeClaude) -> None:
    prompt = 'Weather? [[tool:get_weather {"city": "Paris"}]]'
    stream = await open_stream(
        client, CONV, body_for("claude-sonnet-5", prompt, tools=[WEATHER, SEARCH_TOOL])
    )
    await stream.read_until(lambda s: s.pings >= 2)
    assert names(stream.events) == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 2,
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 2,
        "content_block_stop",
    ]
    [block] = tool_uses(stream.events)
    assert re.fullmatch(r"toolu_[0-9A-Za-z]{24}", block["id"]) and block["input"] == {}
    assert set(block) >= {
        "approval_options",
        "approval_key",
        "is_mcp_app",
        "mcp_server_url",
        "integration_name",
    }
    assert tool_input(stream.events, 1) == {"city": "Paris"}
    call = fake.tool_calls[block["id"]]
    assert call.outcome == "pending" and call.input == {"city": "Paris"}

    result = fixture_result(block["id"])
    resp = await client.call("POST", f"{CONVS}/{CONV}/tool_result", json=result)
    assert resp.status == 200
    await stream.read_until(lambda s: s.events[-1][0] == "message_stop")
    tail = names(stream.events)[8:]
    assert tail[-3:] == ["message_delta", "message_limit", "message_stop"] and "message_start" not in tail
    echo = [
        d
        for n, d in stream.events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_result"
    ]
    assert echo[0]["content_block"]["tool_use_id"] == block["id"]
    assert "15°C and cloudy" in text_of(stream.events)
    assert call.outcome == "answered" and call.result == result


def fixture_result(tool_use_id: str) -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": tool_use_id,
        "content": [{"type": "text", "text": "15°C and cloudy", "cache_control": None}],
        "is_error": False,
        "cache_control": None,
    }


async def test_parallel_tool_calls(client: Client, fake: FakeClaude) -> None:
    prompt = '[[tool:get_weather {"city": "Paris"}]] [[tool:get_weather {"city": "Oslo"}]] then'
    stream = await open_stream(client, CONV, body_for("claude-sonnet-5", prompt, tools=[WEATHER]))
    await stream.read_until(lambda s: s.pings >= 1)
    blocks = tool_uses(stream.events)
    assert [tool_input(stream.events, i) for i in (1, 2)] == [{"city": "Paris"}, {"city": "Oslo"}]
    first = await client.call("POST", f"{CONVS}/{CONV}/tool_result", json=fixture_result(blocks[0]["id"]))
    assert first.status == 200
    await asyncio.sleep(0.2)
    assert stream.events[-1][0] == "content_block_stop"  # still waiting for the second result
    await client.call("POST", f"{CONVS}/{CONV}/tool_result", json=fixture_result(blocks[1]["id"]))
    await stream.read_until(lambda s: s.events[-1][0] == "message_stop")
    again = await client.call("POST", f"{CONVS}/{CONV}/tool_result", json=fixture_result(blocks[1]["id"]))
    assert again.status == 404


async def test_stop_response_ends_a_held_tool_stream(client: Client, fake: FakeClaude) -> None:
    stream = await open_stream(
        client, CONV, body_for("claude-sonnet-5", '[[tool:get_weather {"city": "Rome"}]]', tools=[WEATHER])
    )
    await stream.read_until(lambda s: s.pings >= 1)
    assert (await client.call("POST", f"{CONVS}/{CONV}/stop_response")).status == 200
    await stream.read_until(lambda s: s.events[-1][0] == "message_stop")
    assert stream.events[-3][1]["delta"]["stop_reason"] == "user_canceled"
    [call] = fake.tool_calls.values()
    assert call.outcome == "stopped"


async def test_client_disconnect_ends_a_held_tool_stream(client: Client, fake: FakeClaude) -> None:
    stream = await open_stream(
        client, CONV, body_for("claude-sonnet-5", '[[tool:get_weather {"city": "Rome"}]]', tools=[WEATHER])
    )
    await stream.read_until(lambda s: s.pings >= 1)
    stream.resp.close()
    [call] = fake.tool_calls.values()
    for _ in range(250):  # the fake notices at its next ping
        if call.outcome != "pending":
            break
        await asyncio.sleep(0.02)
    assert call.outcome == "disconnected"


async def test_held_tool_stream_times_out(client: Client, fake: FakeClaude) -> None:
    fake.tool_wait_timeout = 0.2
    events = await read_all(
        client, CONV, body_for("claude-sonnet-5", '[[tool:get_weather {"city": "Rome"}]]', tools=[WEATHER])
    )
    assert events[-3][1]["delta"]["stop_reason"] == "tool_use" and events[-1][0] == "message_stop"
    assert [c.outcome for c in fake.tool_calls.values()] == ["timed_out"]


async def test_undeclared_tool_is_not_called(client: Client) -> None:
    _, events = await client.stream(
        CONV, body_for("claude-sonnet-5", '[[tool:get_weather {"city": "Rome"}]]')
    )
    assert tool_uses(events) == [] and events[-1][0] == "message_stop"


async def test_replayed_tool_results_are_seen_and_the_next_step_runs(
    client: Client, fake: FakeClaude
) -> None:
    """A fresh conversation whose transcript carries the call id and result: the fake goes on with the
    next directive group, then answers in text quoting every result it saw."""
    fake.tool_wait_timeout = 0.1
    prompt = '[[tool:get_weather {"city": "Paris"}]] and then [[tool:get_weather {"city": "Oslo"}]]'
    first = await read_all(client, CONV, body_for("claude-sonnet-5", prompt, tools=[WEATHER]))
    [paris] = tool_uses(first)
    history = f"User: {prompt}\nAssistant called get_weather id={paris['id']}\nResult for {paris['id']}: 15°C sunny\n"
    attachment = {
        "file_name": "context.txt",
        "file_type": "txt",
        "file_size": len(history),
        "extracted_content": history,
    }
    conv2 = str(uuid.uuid4())
    second = await read_all(
        client, conv2, body_for("claude-sonnet-5", "go on", tools=[WEATHER], attachments=[attachment])
    )
    [oslo] = tool_uses(second)
    assert tool_input(second, 1) == {"city": "Oslo"}
    history += f"Assistant called get_weather id={oslo['id']}\nResult for {oslo['id']}: -3°C snow\n"
    attachment = {**attachment, "extracted_content": history}
    third = await read_all(
        client,
        str(uuid.uuid4()),
        body_for("claude-sonnet-5", "and?", tools=[WEATHER], attachments=[attachment]),
    )
    assert tool_uses(third) == []
    reply = text_of(third)
    assert f"[tool result get_weather {paris['id']}: : 15°C sunny" in reply and "-3°C snow" in reply


# --------------------------------------------------------------------------- web search


async def test_web_search_streams_results_and_citations(client: Client, fake: FakeClaude) -> None:
    body = body_for("claude-sonnet-5", "[[search:paris weather]] What now?", tools=[SEARCH_TOOL])
    body["create_conversation_params"]["enabled_web_search"] = True
    _, events = await client.stream(CONV, body)
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["tool_use", "tool_result", "text"]
    use, result, text = starts
    assert (use["name"], use["icon_name"], use["message"], use["input"]) == (
        "web_search",
        "globe",
        "Searching the web",
        {},
    )
    assert tool_input(events, 0) == {"query": "paris weather"}
    assert set(result) == {
        "start_timestamp",
        "stop_timestamp",
        "flags",
        "type",
        "tool_use_id",
        "name",
        "content",
        "is_error",
        "structured_content",
        "meta",
        "message",
        "integration_name",
        "mcp_server_url",
        "integration_icon_url",
        "icon_name",
        "display_content",
    }
    assert result["tool_use_id"] == use["id"] and result["content"] == []
    [result_delta] = [
        d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1
    ]
    assert '", "' in result_delta  # Python-style separators, as captured
    items = json.loads(result_delta)
    assert items[0]["type"] == "knowledge" and items[0]["metadata"]["type"] == "webpage_metadata"
    assert text["citations"] == []
    deltas = [d["delta"] for n, d in events if n == "content_block_delta" and d["index"] == 2]
    kinds = [d["type"] for d in deltas]
    start, end = kinds.index("citation_start_delta"), kinds.index("citation_end_delta")
    assert start < end and "text_delta" in kinds[start:end]
    citation = deltas[start]["citation"]
    assert citation["origin_tool_name"] == "web_search" and citation["url"] == items[0]["url"]
    assert deltas[end]["citation_uuid"] == citation["uuid"]
    assert fake.searches == ["paris weather"]


@pytest.mark.parametrize(("setting", "tool"), [(None, True), (True, False), (False, True)])
async def test_no_search_without_both_switches(
    client: Client, fake: FakeClaude, setting: Any, tool: bool
) -> None:
    body = body_for("claude-sonnet-5", "[[search:paris weather]]", tools=[SEARCH_TOOL] if tool else [])
    if setting is not None:
        body["create_conversation_params"]["enabled_web_search"] = setting
    _, events = await client.stream(CONV, body)
    assert [d["content_block"]["type"] for n, d in events if n == "content_block_start"] == ["text"]
    assert fake.searches == []


async def test_search_switched_on_by_settings_put_and_account_default(
    client: Client, fake: FakeClaude
) -> None:
    await client.call("POST", CONVS, json={"uuid": CONV, "name": ""})
    await client.call("PUT", f"{CONVS}/{CONV}", json={"settings": {"enabled_web_search": True}})
    _, events = await client.stream(CONV, completion_body("[[search:a]]", create=False, tools=[SEARCH_TOOL]))
    assert tool_uses(events)[0]["name"] == "web_search"
    resp = await client.call("PATCH", "/api/account/settings", json={"enabled_web_search": True})
    assert (resp.status, await resp.json()) == (200, None)
    assert (await client.call("GET", "/api/account/settings")).status == 405
    conv2 = str(uuid.uuid4())
    _, events = await client.stream(conv2, body_for("claude-sonnet-5", "[[search:b]]", tools=[SEARCH_TOOL]))
    assert fake.conversations[conv2].settings["enabled_web_search"] is True
    assert fake.searches == ["a", "b"]


# --------------------------------------------------------------------------- uploads


def form(data: bytes, filename: str, content_type: str) -> aiohttp.FormData:
    payload = aiohttp.FormData()
    payload.add_field("file", data, filename=filename, content_type=content_type)
    return payload


def wiggle(conv: str) -> str:
    return f"/api/organizations/{{org}}/conversations/{conv}/wiggle/upload-file"


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n2 0 obj<</Length 44>>stream\n"
    b"BT /F1 12 Tf (Quarterly revenue rose 12%) Tj ET\nendstream endobj\n%%EOF"
)


async def test_wiggle_upload_before_the_conversation_then_files_reach_the_model(
    client: Client, fake: FakeClaude
) -> None:
    resp = await client.call("POST", wiggle(CONV), data=form(PDF, "report.pdf", "application/pdf"))
    pdf = await resp.json()
    assert resp.status == 200 and pdf["success"] is True and pdf["file_uuid"] == pdf["uuid"]
    assert (pdf["path"], pdf["file_kind"], pdf["size_bytes"]) == (
        "/mnt/user-data/uploads/report.pdf",
        "blob",
        len(PDF),
    )
    note = await (
        await client.call("POST", wiggle(CONV), data=form(b"remember: teal", "notes.md", "text/markdown"))
    ).json()
    image = await (
        await client.call("POST", wiggle(CONV), data=form(b"\x89PNG", "cat.png", "image/png"))
    ).json()
    assert (
        image["file_kind"] == "image"
        and image["created_at"]
        and image["thumbnail_url"]
        and image["preview_url"]
    )
    assert CONV not in fake.conversations
    files = [pdf["file_uuid"], note["file_uuid"], image["file_uuid"]]
    _, events = await client.stream(CONV, body_for("claude-sonnet-5", "Summarise", files=files))
    reply = text_of(events)
    assert (
        "[file report.pdf: Quarterly revenue rose 12%]" in reply
        and "[file notes.md: remember: teal]" in reply
    )
    assert "cat.png" not in reply
    assert set(fake.uploads_of(client.account)) == set(files)
    assert (await client.call("DELETE", f"{CONVS}/{CONV}")).status == 204
    assert fake.uploads_of(client.account) == {}


async def test_legacy_uploads_stay_after_the_conversation_is_deleted(
    client: Client, fake: FakeClaude
) -> None:
    legacy = await (
        await client.call("POST", "/api/{org}/upload", data=form(b"hi", "a.txt", "text/plain"))
    ).json()
    await client.stream(CONV, body_for("claude-sonnet-5", files=[legacy["file_uuid"]]))
    await client.call("DELETE", f"{CONVS}/{CONV}")
    assert list(fake.uploads_of(client.account)) == [legacy["file_uuid"]]


async def test_wiggle_can_be_switched_off_for_the_fallback(client: Client, fake: FakeClaude) -> None:
    client.account.wiggle_upload = False
    status, body = await error_of(
        await client.call("POST", wiggle(CONV), data=form(b"hi", "a.txt", "text/plain"))
    )
    assert status == 404 and body["error"]["type"] == "not_found_error"
    assert fake.uploads == {}
    assert (
        await client.call("POST", "/api/{org}/upload", data=form(b"hi", "a.txt", "text/plain"))
    ).status == 200


@pytest.mark.parametrize(
    ("path", "data", "filename", "content_type", "status"),
    [
        (wiggle("cse_0123"), b"hi", "a.txt", "text/plain", 400),
        (wiggle(CONV), b"PK\x03\x04", "a.zip", "application/zip", 400),
        (wiggle(CONV), b"MZ", "a.exe", "application/octet-stream", 400),
        ("/api/{org}/upload", b"x" * 2048, "big.txt", "text/plain", 413),
    ],
)
async def test_refused_uploads(
    client: Client, fake: FakeClaude, path: str, data: bytes, filename: str, content_type: str, status: int
) -> None:
    fake.upload_max_bytes = 1024
    got, body = await error_of(await client.call("POST", path, data=form(data, filename, content_type)))
    assert got == status and body["type"] == "error"
    assert fake.uploads == {}


async def test_unknown_file_in_the_completion_is_refused(
    http: aiohttp.ClientSession, fake: FakeClaude
) -> None:
    owner, other = (Client(http, fake, fake.add_account()) for _ in range(2))
    upload = await (
        await owner.call("POST", "/api/{org}/upload", data=form(b"x", "a.txt", "text/plain"))
    ).json()
    for files in ([str(uuid.uuid4())], [upload["file_uuid"]]):
        status, body = await error_of(
            await other.call(
                "POST", f"{CONVS}/{CONV}/completion", json=body_for("claude-sonnet-5", files=files)
            )
        )
        assert status == 400 and body["error"]["message"] == "files.0: File not found"
