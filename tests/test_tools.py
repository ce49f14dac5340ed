"""Client tools and structured output end to end: the real SDKs, the daemon and the fake claude.ai.

The fake calls a tool when the last user text holds ``[[tool:NAME {json}]]`` (several in a row:
parallel calls) and holds the turn open with comment pings, as claude.ai does (reference 2026 §1.2).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, npm_tool, raw_post, sdk

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIME_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
OAI_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA},
}
OAI_TIME = {"type": "function", "function": {"name": "get_time", "description": "Time", "parameters": TIME_SCHEMA}}
ANT_WEATHER = {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA}
ANT_TIME = {"name": "get_time", "description": "Time", "input_schema": TIME_SCHEMA}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CALL_WEATHER = '[[tool:get_weather {"city": "Paris"}]]'
CALL_BOTH = '[[tool:get_weather {"city": "Paris"}]] [[tool:get_time {"tz": "UTC"}]]'


@pytest.fixture(autouse=True)
def quick_pings(fake: FakeClaude) -> None:
    fake.ping_interval = 0.2  # a paused tool turn ends at the first ping


def anthropic_client(daemon: Daemon, retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=retries)


async def assert_cleaned_up(fake: FakeClaude, daemon: Daemon, stops: int) -> None:
    """Each paused tool turn was stopped upstream and its conversation deleted."""
    await daemon.idle()
    assert len(fake.calls_to("/stop_response")) == stops
    assert fake.conversations == {}
    for _ in range(100):  # the fake notices the stop on its next tick
        if all(call.outcome != "pending" for call in fake.tool_calls.values()):
            break
        await asyncio.sleep(0.02)
    assert {call.outcome for call in fake.tool_calls.values()} <= {"stopped", "disconnected"}


# ---------------------------------------------------------------------------------------------
# OpenAI


async def test_openai_tool_call_then_result_round_trip(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        first = await client.chat.completions.create(
            model=MODEL, tools=[OAI_WEATHER], messages=[{"role": "user", "content": f"Weather? {CALL_WEATHER}"}]
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        body = fake.calls_to("/completion")[-1].json
        assert body["tools"] == [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA}]
        await assert_cleaned_up(fake, daemon, stops=1)

        second = await client.chat.completions.create(
            model=MODEL,
            tools=[OAI_WEATHER],
            messages=[
                {"role": "user", "content": f"Weather? {CALL_WEATHER}"},
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "15 degrees and cloudy"},
            ],
        )
    answer = second.choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    upstream_id = "toolu_" + call.id.removeprefix("call_")
    assert f"[tool result get_weather {upstream_id}" in (answer.message.content or "")
    assert "15 degrees and cloudy" in (answer.message.content or "")
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert f'<tool_call id="{upstream_id}" name="get_weather">{{"city":"Paris"}}</tool_call>' in prompt


async def test_openai_stream_parallel_calls(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            stream=True,
            tools=[OAI_WEATHER, OAI_TIME],
            messages=[{"role": "user", "content": f"Both please {CALL_BOTH}"}],
        )
        chunks = [chunk async for chunk in stream]
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                assert delta.type == "function"
                entry["id"], entry["name"] = delta.id, delta.function.name
            entry["arguments"] += delta.function.arguments or ""
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert [json.loads(c["arguments"]) for c in calls.values()] == [{"city": "Paris"}, {"tz": "UTC"}]
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    await assert_cleaned_up(fake, daemon, stops=1)


async def test_openai_parallel_off_keeps_the_first_call(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL,
            tools=[OAI_WEATHER, OAI_TIME],
            parallel_tool_calls=False,
            messages=[{"role": "user", "content": f"Both {CALL_BOTH}"}],
        )
    assert [c.function.name for c in result.choices[0].message.tool_calls or []] == ["get_weather"]
    assert "at most one tool" in fake.calls_to("/completion")[-1].json["prompt"]
    await assert_cleaned_up(fake, daemon, stops=1)


async def test_tool_choice_none_sends_no_tools(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL,
            tools=[OAI_WEATHER],
            tool_choice="none",
            messages=[{"role": "user", "content": f"Weather? {CALL_WEATHER}"}],
        )
    assert result.choices[0].finish_reason == "stop" and not result.choices[0].message.tool_calls
    assert fake.calls_to("/completion")[-1].json["tools"] == []


@pytest.mark.parametrize("choice", ["auto", "required", {"type": "function", "function": {"name": "get_weather"}}])
async def test_openai_tool_choices_that_allow_the_call(fake: FakeClaude, daemon: Daemon, choice: Any) -> None:
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL,
            tools=[OAI_WEATHER, OAI_TIME],
            tool_choice=choice,
            messages=[{"role": "user", "content": f"Weather? {CALL_WEATHER}"}],
        )
    assert result.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert ("must call" in prompt) == (choice != "auto")


async def test_required_tool_choice_converts_a_json_answer(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply('Here you go:\n```json\n{"city": "Oslo"}\n```')
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL, tools=[OAI_WEATHER], tool_choice="required", messages=[{"role": "user", "content": "Oslo?"}]
        )
        stream = await client.chat.completions.create(
            model=MODEL,
            stream=True,
            tools=[OAI_WEATHER, OAI_TIME],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            messages=[{"role": "user", "content": "Oslo?"}],
        )
        chunks = [chunk async for chunk in stream]
    message = result.choices[0].message
    assert result.choices[0].finish_reason == "tool_calls" and message.content is None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}  # type: ignore[index]
    streamed = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert streamed[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in streamed)) == {"city": "Oslo"}
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)  # the held text is not relayed


async def test_forced_tool_choice_without_a_call_fails_once(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("I would rather chat about the weather.")
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, max_retries=2)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(
            model=MODEL, tools=[OAI_WEATHER], tool_choice="required", messages=[{"role": "user", "content": "x"}]
        )
    await client.close()
    assert info.value.status_code == 502
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "tool_choice" in info.value.message
    assert len(fake.calls_to("/completion")) == 1  # the SDK did not retry: one generation spent

    async with anthropic_client(daemon, retries=2) as client_a:
        with pytest.raises(anthropic.APIStatusError) as info_a:
            await client_a.messages.create(
                model=MODEL,
                max_tokens=100,
                tools=[ANT_WEATHER],
                tool_choice={"type": "tool", "name": "get_weather"},
                messages=[{"role": "user", "content": "x"}],
            )
    assert info_a.value.status_code == 502 and "get_weather" in info_a.value.message
    assert len(fake.calls_to("/completion")) == 2


# ---------------------------------------------------------------------------------------------
# Anthropic


async def test_anthropic_tool_use_non_stream_and_stream(fake: FakeClaude, daemon: Daemon) -> None:
    async with anthropic_client(daemon) as client:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=200,
            tools=[ANT_WEATHER, ANT_TIME],
            messages=[{"role": "user", "content": f"Both {CALL_BOTH}"}],
        )
        async with client.messages.stream(
            model=MODEL,
            max_tokens=200,
            tools=[ANT_WEATHER, ANT_TIME],
            messages=[{"role": "user", "content": f"Both {CALL_BOTH}"}],
        ) as stream:
            events = [event async for event in stream]
            streamed = await stream.get_final_message()
    for result in (message, streamed):
        assert result.stop_reason == "tool_use"
        assert [b.type for b in result.content] == ["text", "tool_use", "tool_use"]
        uses = [b for b in result.content if b.type == "tool_use"]
        assert [(b.name, b.input) for b in uses] == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
        assert all(b.id.startswith("toolu_") and b.id in fake.tool_calls for b in uses)
    starts = [e.index for e in events if e.type == "content_block_start"]
    assert starts == [0, 1, 2]
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)
    await assert_cleaned_up(fake, daemon, stops=2)


async def test_anthropic_tool_results_with_errors_and_images(fake: FakeClaude, daemon: Daemon) -> None:
    async with anthropic_client(daemon) as client:
        first = await client.messages.create(
            model=MODEL,
            max_tokens=200,
            tools=[ANT_WEATHER, ANT_TIME],
            messages=[{"role": "user", "content": f"Both {CALL_BOTH}"}],
        )
        uses = [b for b in first.content if b.type == "tool_use"]
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}}
        second = await client.messages.create(
            model=MODEL,
            max_tokens=2000,
            tools=[ANT_WEATHER, ANT_TIME],
            messages=[
                {"role": "user", "content": f"Both {CALL_BOTH}"},
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": uses[0].id, "content": [{"type": "text", "text": "rainy"}, image]},
                        {"type": "tool_result", "tool_use_id": uses[1].id, "is_error": True, "content": "clock broken"},
                    ],
                },
            ],
        )
    text = "".join(b.text for b in second.content if b.type == "text")
    assert second.stop_reason == "end_turn"
    assert f"[tool result get_weather {uses[0].id}" in text and "rainy" in text
    assert f"[tool result get_time {uses[1].id}" in text and "clock broken" in text
    body = fake.calls_to("/completion")[-1].json
    assert 'is_error="true"' in body["prompt"] and "[image 1]" in body["prompt"]
    assert len(body["files"]) == 1  # the result's image was uploaded like any other image


async def test_anthropic_any_converts_json_and_output_format_is_honoured(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply('{"city": "Rome"}')
    async with anthropic_client(daemon) as client:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            tools=[ANT_WEATHER],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Rome?"}],
        )
        fake.reply('Sure! {"name": "Ada", "age": 36} Anything else?')
        structured = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": "Who?"}],
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        )
    assert message.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in message.content] == [("tool_use", {"city": "Rome"})]
    assert [b.text for b in structured.content if b.type == "text"] == ['{"name": "Ada", "age": 36}']
    assert "JSON Schema" in fake.calls_to("/completion")[-1].json["prompt"]


# ---------------------------------------------------------------------------------------------
# JSON mode, validation, settings


async def test_json_mode_extracts_or_fails_without_retries(fake: FakeClaude, daemon: Daemon) -> None:
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, max_retries=2)
    fmt = {"type": "json_object"}
    fake.reply('The JSON you asked for: {"ok": true}. Enjoy!')
    result = await client.chat.completions.create(model=MODEL, response_format=fmt, messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    assert result.choices[0].message.content == '{"ok": true}'
    fake.reply("No JSON today.")
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model=MODEL, response_format=fmt, messages=[{"role": "user", "content": "x"}])  # type: ignore[arg-type]
    assert info.value.status_code == 502 and info.value.response.headers["x-should-retry"] == "false"
    assert len(fake.calls_to("/completion")) == 2  # one generation for the failure, not three
    fake.reply('{"ok": tru')  # starts like JSON: relayed as it streams, then found broken
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, response_format=fmt, messages=[{"role": "user", "content": "x"}]  # type: ignore[arg-type]
    )
    with pytest.raises(openai.APIError, match="not valid JSON"):
        async for _ in stream:
            pass
    fake.reply('```json\n{"ok": 1}\n```')  # fenced: held, then sent clean
    stream = await client.chat.completions.create(
        model=MODEL, stream=True, response_format=fmt, messages=[{"role": "user", "content": "x"}]  # type: ignore[arg-type]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == '{"ok": 1}'
    await client.close()


OAI_BAD = [
    ({"tools": [{"type": "function", "function": {"name": "bad name", "parameters": {"type": "object"}}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "a" * 65}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}, "tools[0].function"),
    ({"tools": [OAI_WEATHER, OAI_WEATHER]}, "tools"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
    ({"tools": [OAI_WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [OAI_WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [OAI_WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
]
ANT_BAD = [
    ({"tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}, "tools.0.name"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
    ({"tools": [{"name": "f", "input_schema": {"type": "string"}}]}, "tools.0"),
    ({"tools": [ANT_WEATHER, ANT_WEATHER]}, "tools"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools.0.type"),
    ({"tools": [ANT_WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
    ({"tools": [ANT_WEATHER], "tool_choice": {"type": "whatever"}}, "tool_choice"),
    ({"output_config": {"format": {"type": "xml"}}}, "output_config.format"),
]


@pytest.mark.parametrize(("extra", "param"), OAI_BAD)
async def test_openai_bad_tools_are_400(fake: FakeClaude, daemon: Daemon, extra: dict[str, Any], param: str) -> None:
    status, _, raw = await raw_post(
        daemon, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "x"}], **extra}
    )
    error = json.loads(raw)["error"]
    assert status == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert fake.calls_to("/completion") == []


@pytest.mark.parametrize(("extra", "param"), ANT_BAD)
async def test_anthropic_bad_tools_are_400(fake: FakeClaude, daemon: Daemon, extra: dict[str, Any], param: str) -> None:
    status, _, raw = await raw_post(
        daemon, "/v1/messages", {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **extra}
    )
    body = json.loads(raw)
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert param in body["error"]["message"], body
    assert fake.calls_to("/completion") == []


async def test_web_search_server_tool_is_accepted(fake: FakeClaude, daemon: Daemon) -> None:
    status, _, raw = await raw_post(
        daemon,
        "/v1/messages",
        {
            "model": MODEL,
            "max_tokens": 10,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}, ANT_WEATHER],
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    assert status == 200, raw
    tools = fake.calls_to("/completion")[-1].json["tools"]
    assert tools[0] == {"type": "web_search_v0", "name": "web_search"}  # claude.ai's own search, first
    assert [t["name"] for t in tools[1:]] == ["get_weather"]


async def test_tools_off_is_a_400_that_says_so(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"TOOLS": "false"})
    status, _, raw = await raw_post(
        daemon, "/v1/messages", {"model": MODEL, "max_tokens": 10, "tools": [ANT_WEATHER], "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 400 and "TOOLS=false" in json.loads(raw)["error"]["message"]


async def test_claude_code_system_and_long_history(fake: FakeClaude, make_daemon) -> None:
    """The billing-header block stays out of the conversation; tool definitions travel in the
    completion's tools even when the transcript goes to context.txt."""
    daemon = await make_daemon(env={"MAX_CHAT_HISTORY_LENGTH": "50"})
    async with anthropic_client(daemon) as client:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;"},
                {"type": "text", "text": "You are a Claude agent."},
            ],
            tools=[ANT_WEATHER],
            messages=[{"role": "user", "content": "a long question " * 20 + CALL_WEATHER}],
        )
    assert message.stop_reason == "tool_use"
    body = fake.calls_to("/completion")[-1].json
    [attachment] = body["attachments"]
    assert "You are a Claude agent." in attachment["extracted_content"]
    assert "billing-header" not in attachment["extracted_content"] + body["prompt"]
    assert "input_schema" not in attachment["extracted_content"]
    assert body["tools"][0]["name"] == "get_weather"


# ---------------------------------------------------------------------------------------------
# Frameworks: LangChain (both integrations) and litellm


class Person(BaseModel):
    """A person."""

    name: str
    age: int


PERSON_CALL = '[[tool:Person {"name": "Ada", "age": 36}]]'


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "sunny"


def langchain_models(daemon: Daemon) -> dict[str, Any]:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    return {
        "openai": ChatOpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, model=MODEL, max_retries=0),
        "anthropic": ChatAnthropic(base_url=daemon.url, api_key=daemon.api_key, model=MODEL, max_retries=0, max_tokens=500),
    }


@pytest.mark.parametrize("integration", ["openai", "anthropic"])
async def test_langchain_bind_tools(fake: FakeClaude, daemon: Daemon, integration: str) -> None:
    model = langchain_models(daemon)[integration].bind_tools([get_weather])
    result = await model.ainvoke(f"Weather in Paris? {CALL_WEATHER}")
    assert [(c["name"], c["args"]) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]
    streamed = None
    async for chunk in model.astream(f"Weather in Paris? {CALL_WEATHER}"):
        streamed = chunk if streamed is None else streamed + chunk
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [("get_weather", {"city": "Paris"})]


@pytest.mark.parametrize(
    ("integration", "method"),
    [
        ("openai", "function_calling"),
        ("openai", "json_mode"),
        ("openai", "json_schema"),
        ("anthropic", "function_calling"),
        ("anthropic", "json_schema"),
    ],
)
async def test_langchain_with_structured_output(fake: FakeClaude, daemon: Daemon, integration: str, method: str) -> None:
    fake.reply('{"name": "Ada", "age": 36}')  # what a JSON-mode answer looks like; tool calls come from the directive
    model = langchain_models(daemon)[integration].with_structured_output(Person, method=method)
    prompt = f"Who wrote the first program? Answer as JSON with name and age. {PERSON_CALL}"
    assert await model.ainvoke(prompt) == Person(name="Ada", age=36)


@pytest.mark.parametrize("prefix", ["openai", "anthropic"])
async def test_litellm_tool_calls(fake: FakeClaude, daemon: Daemon, prefix: str) -> None:
    import litellm

    base = daemon.url + ("/v1" if prefix == "openai" else "")
    response = await litellm.acompletion(
        model=f"{prefix}/{MODEL}",
        api_base=base,
        api_key=daemon.api_key,
        tools=[OAI_WEATHER, OAI_TIME],
        tool_choice="required",
        max_tokens=200,
        messages=[{"role": "user", "content": f"Both {CALL_BOTH}"}],
    )
    calls = response.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "UTC"}),
    ]
    assert response.choices[0].finish_reason == "tool_calls"


# ---------------------------------------------------------------------------------------------
# Claude Code drives a real tool loop


def claude_code() -> str | None:
    """The Claude Code binary scripts/npm-tools installed (the test command runs it), or ``None``."""
    binary = npm_tool("claude")
    return None if binary is None else str(binary)


async def test_claude_code_tool_loop(fake: FakeClaude, daemon: Daemon, tmp_path: Path) -> None:
    binary = claude_code()
    if binary is None:
        pytest.skip("Claude Code is not installed: needs node/npm and scripts/npm-tools (run by scripts/test)")
    notes = tmp_path / "notes.txt"
    notes.write_text("the secret word is pelican\n")
    read = json.dumps({"file_path": str(notes)})
    bash = json.dumps({"command": "echo tool-loop-$((40+2))", "description": "Print a marker"})
    prompt = f"Read notes.txt, then run a command. [[tool:Read {read}]] and then [[tool:Bash {bash}]]"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": daemon.url,
        "ANTHROPIC_API_KEY": daemon.api_key,
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        binary, "-p", prompt, "--allowedTools", "Read", "Bash",  # granted here: no prompt, also as root
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    answer = out.decode()
    assert proc.returncode == 0, (answer, err.decode()[-2000:])
    names = [call.name for call in fake.tool_calls.values()]
    assert names == ["Read", "Bash"], names
    assert "pelican" in answer  # the file's content went back to the model
    assert "tool-loop-42" in answer  # and so did the command's output
