"""Function tools, files and JSON honesty in the Responses API, end to end: the real OpenAI SDK,
LangChain and litellm -> daemon -> fake claude.ai.

The fake calls a tool when the last user text holds ``[[tool:NAME {json}]]`` (several in a row:
parallel calls) and holds the turn open with comment pings, as claude.ai does (reference 2026 §1.2).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from typing import Any

import openai
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, raw_post, sdk

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TIME_SCHEMA = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA}
TIME = {"type": "function", "name": "get_time", "description": "Time", "parameters": TIME_SCHEMA, "strict": False}
AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for spawning sub-agents.",
    "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn", "parameters": {"type": "object"}}],
}
CALL_WEATHER = '[[tool:get_weather {"city": "Paris"}]]'
CALL_BOTH = '[[tool:get_weather {"city": "Paris"}]] [[tool:get_time {"tz": "UTC"}]]'


@pytest.fixture(autouse=True)
def quick_pings(fake: FakeClaude) -> None:
    fake.ping_interval = 0.2  # a paused tool turn ends at the first ping


def calls_of(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


def upstream(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")


async def test_tool_loop_non_stream(fake: FakeClaude, daemon: Daemon) -> None:
    question = {"role": "user", "content": f"Weather? {CALL_WEATHER}"}
    async with sdk(daemon) as client:
        first = await client.responses.create(model=MODEL, tools=[WEATHER], input=[question])
        [call] = calls_of(first)
        assert first.status == "completed" and call.call_id.startswith("call_")
        assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
        assert fake.calls_to("/completion")[-1].json["tools"][0]["name"] == "get_weather"
        second = await client.responses.create(
            model=MODEL,
            tools=[WEATHER],
            input=[
                question,
                *[item.model_dump(exclude_none=True) for item in first.output],
                {"type": "function_call_output", "call_id": call.call_id, "output": "15 degrees and cloudy"},
            ],
        )
    assert not calls_of(second) and second.status == "completed"
    assert f"[tool result get_weather {upstream(call.call_id)}" in second.output_text
    assert "15 degrees and cloudy" in second.output_text
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert f'<tool_call id="{upstream(call.call_id)}" name="get_weather">' in prompt


async def test_tool_loop_stream_events(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        async with client.responses.stream(model=MODEL, tools=[WEATHER, TIME], input=f"Both {CALL_BOTH}") as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
    added = [e.item for e in events if e.type == "response.output_item.added" and e.item.type == "function_call"]
    assert [(item.name, item.call_id.startswith("call_")) for item in added] == [("get_weather", True), ("get_time", True)]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Paris"}, {"tz": "UTC"}]
    assert any(e.type == "response.function_call_arguments.delta" for e in events)
    assert events[-1].type == "response.completed" and final.status == "completed"
    assert [(c.name, c.call_id) for c in calls_of(final)] == [(i.name, i.call_id) for i in added]


async def test_parallel_off_keeps_the_first_call(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        response = await client.responses.create(
            model=MODEL, tools=[WEATHER, TIME], parallel_tool_calls=False, input=f"Both {CALL_BOTH}"
        )
    assert [c.name for c in calls_of(response)] == ["get_weather"] and response.parallel_tool_calls is False
    assert "at most one tool" in fake.calls_to("/completion")[-1].json["prompt"]


async def test_required_and_named_tool_choice(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply('Here you go:\n```json\n{"city": "Oslo"}\n```')
    async with sdk(daemon) as client:
        required = await client.responses.create(model=MODEL, tools=[WEATHER], tool_choice="required", input="Oslo?")
        fake.reply('{"tz": "CET"}')
        async with client.responses.stream(
            model=MODEL, tools=[WEATHER, TIME], tool_choice={"type": "function", "name": "get_time"}, input="Time?"
        ) as stream:
            named = await stream.get_final_response()
        fake.reply("I would rather chat.")
        with pytest.raises(openai.InternalServerError) as unmet:
            await client.responses.create(model=MODEL, tools=[WEATHER], tool_choice="required", input="x")
    assert [(c.name, json.loads(c.arguments)) for c in calls_of(required)] == [("get_weather", {"city": "Oslo"})]
    assert required.output_text == ""  # the held prose did not become a message
    assert [(c.name, json.loads(c.arguments)) for c in calls_of(named)] == [("get_time", {"tz": "CET"})]
    assert "`get_time`" in fake.calls_to("/completion")[1].json["prompt"]
    assert unmet.value.code == "tool_choice_unmet" and unmet.value.response.headers["x-should-retry"] == "false"


async def test_tool_loop_across_previous_response_id(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        async with client.responses.stream(model=MODEL, tools=[WEATHER], input=f"Weather? {CALL_WEATHER}") as stream:
            first = await stream.get_final_response()
        [call] = calls_of(first)
        second = await client.responses.create(
            model=MODEL,
            tools=[WEATHER],
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        )
        fake.reply("You are welcome.")
        third = await client.responses.create(model=MODEL, previous_response_id=second.id, input="thanks")
    assert "sunny, 21C" in second.output_text and f"get_weather {upstream(call.call_id)}" in second.output_text
    assert third.output_text == "You are welcome."
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert prompt.index("<tool_call") < prompt.index("<tool_result") < prompt.index("sunny, 21C") < prompt.index("thanks")


async def test_namespaced_tools_round_trip(fake: FakeClaude, daemon: Daemon) -> None:
    directive = '[[tool:multi_agent_v1__spawn_agent {"task": "lint"}]]'
    async with sdk(daemon) as client:
        first = await client.responses.create(model=MODEL, tools=[WEATHER, AGENTS], input=f"Spawn {directive}", store=False)
        [call] = calls_of(first)
        raw = call.model_dump(exclude_none=True)
        second = await client.responses.create(
            model=MODEL,
            tools=[WEATHER, AGENTS],
            store=False,
            input=[
                {"role": "user", "content": f"Spawn {directive}"},
                raw,
                {"type": "function_call_output", "call_id": call.call_id, "output": "agent 7 started"},
            ],
        )
    assert (call.namespace, call.name, json.loads(call.arguments)) == ("multi_agent_v1", "spawn_agent", {"task": "lint"})
    sent = fake.calls_to("/completion")[0].json["tools"]
    assert [t["name"] for t in sent] == ["get_weather", "multi_agent_v1__spawn_agent"]
    assert "agent 7 started" in second.output_text


async def test_web_search_is_accepted_and_hosted_tools_are_400(fake: FakeClaude, daemon: Daemon) -> None:
    body = {"model": MODEL, "input": "x", "tools": [{"type": "web_search", "external_web_access": False}, WEATHER]}
    status, _, raw = await raw_post(daemon, "/v1/responses", body)
    assert status == 200, raw
    completion = fake.calls_to("/completion")[-1].json  # claude.ai's own search tool, then the function tool
    assert [(t.get("type"), t["name"]) for t in completion["tools"]] == [("web_search_v0", "web_search"), (None, "get_weather")]
    assert completion["create_conversation_params"]["enabled_web_search"] is True
    for kind in ("code_interpreter", "image_generation", "computer_use_preview", "mcp", "custom"):
        status, _, raw = await raw_post(daemon, "/v1/responses", {**body, "tools": [{"type": kind, "name": "t"}]})
        error = json.loads(raw)["error"]
        assert status == 400 and error["param"] == "tools[0].type" and repr(kind) in error["message"], error
    assert len(fake.calls_to("/completion")) == 1


async def test_tools_off_is_a_400(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"TOOLS": "false"})
    status, _, raw = await raw_post(daemon, "/v1/responses", {"model": MODEL, "input": "x", "tools": [WEATHER]})
    assert status == 400 and "TOOLS=false" in json.loads(raw)["error"]["message"]


async def test_json_text_format_follows_the_chat_completions_rules(fake: FakeClaude, daemon: Daemon) -> None:
    text = {"format": {"type": "json_object"}}
    client = openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, max_retries=2)
    fake.reply('The JSON you asked for: {"ok": true}. Enjoy!')
    extracted = await client.responses.create(model=MODEL, input="x", text=text)  # type: ignore[arg-type]
    assert extracted.output_text == '{"ok": true}'
    fake.reply("No JSON today.")
    with pytest.raises(openai.InternalServerError) as info:
        await client.responses.create(model=MODEL, input="x", text=text)  # type: ignore[arg-type]
    assert info.value.response.headers["x-should-retry"] == "false" and info.value.code == "invalid_json_output"
    assert len(fake.calls_to("/completion")) == 2  # not retried
    fake.reply('{"ok": tru')  # starts like JSON: relayed as it streams, then found broken
    stream = await client.responses.create(model=MODEL, input="x", text=text, stream=True)  # type: ignore[arg-type]
    events = [event async for event in stream]
    assert events[-1].type == "response.failed" and "not valid JSON" in events[-1].response.error.message
    fake.reply('```json\n{"ok": 1}\n```')  # fenced: held, then sent clean
    async with client.responses.stream(model=MODEL, input="x", text=text) as held:  # type: ignore[arg-type]
        final = await held.get_final_response()
    assert final.output_text == '{"ok": 1}'
    await client.close()


PDF_DATA = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n").decode()


async def test_input_files_reach_the_model(fake: FakeClaude, daemon: Daemon) -> None:
    notes = base64.b64encode(b"remember: the answer is teal\n").decode()
    async with sdk(daemon) as client:
        response = await client.responses.create(
            model=MODEL,
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Summarise these."},
                        {"type": "input_file", "filename": "notes.md", "file_data": f"data:text/markdown;base64,{notes}"},
                        {"type": "input_file", "filename": "report.pdf", "file_data": f"data:application/pdf;base64,{PDF_DATA}"},
                    ],
                }
            ],
        )
        with pytest.raises(openai.BadRequestError) as by_id:
            await client.responses.create(
                model=MODEL, input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]
            )
    assert "[file notes.md: remember: the answer is teal]" in response.output_text
    [upload] = fake.calls_to("/wiggle/upload-file")
    assert upload.file["content_type"] == "application/pdf"
    completion = fake.calls_to("/completion")[-1].json
    assert completion["files"] == [upload.file["file_uuid"]]
    assert "[document 1: notes.md]" in completion["prompt"] and "[document 2: report.pdf]" in completion["prompt"]
    assert "Files API" in by_id.value.message and by_id.value.param == "input[0].content[0].file_id"


# ---------------------------------------------------------------------------------------------
# Frameworks


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return "sunny"


@pytest.mark.skipif(importlib.util.find_spec("langchain_openai") is None, reason="langchain-openai not installed")
async def test_langchain_responses_bind_tools(fake: FakeClaude, daemon: Daemon) -> None:
    import httpx
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    async with httpx.AsyncClient() as http:  # its own default client is cached and never closed
        llm = ChatOpenAI(
            model=MODEL,
            base_url=daemon.url + "/v1",
            api_key=daemon.api_key,
            use_responses_api=True,
            max_retries=0,
            http_async_client=http,
        ).bind_tools([get_weather])
        question = HumanMessage(f"Weather in Paris? {CALL_WEATHER}")
        result = await llm.ainvoke([question])
        streamed = None
        async for chunk in llm.astream([question]):
            streamed = chunk if streamed is None else streamed + chunk
        [call] = result.tool_calls
        answer = await llm.ainvoke([question, result, ToolMessage("sunny and 22C", tool_call_id=call["id"])])
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    assert streamed is not None and [(c["name"], c["args"]) for c in streamed.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert "sunny and 22C" in answer.text


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="litellm not installed")
async def test_litellm_responses_with_tools(fake: FakeClaude, daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    import litellm

    response = await litellm.aresponses(
        model=f"openai/{MODEL}",
        input=f"Both {CALL_BOTH}",
        tools=[WEATHER, TIME],
        api_base=daemon.url + "/v1",
        api_key=daemon.api_key,
    )
    await litellm.close_litellm_async_clients()
    calls = [item for item in response.output if getattr(item, "type", None) == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "UTC"})]
