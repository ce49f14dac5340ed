"""The Responses API end to end: real clients (openai SDK, LangChain, litellm) -> daemon -> fake claude.ai."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time

import aiohttp
import openai
import pydantic
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, sdk


async def test_non_stream_create(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Bonjour!")
    async with sdk(daemon) as client:
        response = await client.responses.create(
            model=MODEL, instructions="Be brief", input="Hi", metadata={"k": "v"}, temperature=0.2
        )
    assert response.id.startswith("resp_") and response.object == "response" and response.model == MODEL
    assert response.status == "completed" and response.output_text == "Bonjour!"
    assert (
        response.metadata == {"k": "v"}
        and response.instructions == "Be brief"
        and response.temperature == 0.2
    )
    assert response.usage is not None and response.usage.total_tokens > response.usage.input_tokens > 0
    assert fake.calls_to("/completion")[-1].json["prompt"] == "System: Be brief\n\nHuman: Hi\n\n"


async def test_stream_create_events_in_order(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["Hel", "lo"])
    async with sdk(daemon) as client:
        stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
        events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello"


async def test_stream_helper_and_reasoning_summary(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("42", thinking="Let me think.")
    async with sdk(daemon) as client:
        async with client.responses.stream(
            model=MODEL, input="answer?", reasoning={"effort": "high", "summary": "auto"}
        ) as stream:
            summary = [e.delta async for e in stream if e.type == "response.reasoning_summary_text.delta"]
            final = await stream.get_final_response()
    assert "".join(summary) == "Let me think."
    assert final.output_text == "42" and [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens > 0
    assert fake.calls_to("/completion")[-1].json.get("thinking_mode") not in (None, "off")


class Person(pydantic.BaseModel):
    name: str
    age: int


async def test_parse_with_pydantic_model(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply('```json\n{"name": "Ada", "age": 36}\n```')
    async with sdk(daemon) as client:
        parsed = await client.responses.parse(model=MODEL, input="Who?", text_format=Person)
        fake.reply('{"name": "Alan", "age": 41}')
        async with client.responses.stream(model=MODEL, input="Who?", text_format=Person) as stream:
            streamed = await stream.get_final_response()
    assert parsed.output_parsed == Person(name="Ada", age=36)
    assert streamed.output_parsed == Person(name="Alan", age=41)
    assert "JSON Schema" in fake.calls_to("/completion")[-1].json["prompt"]


async def test_parse_refuses_prose_with_502(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Sure! Here is some prose instead.")
    async with sdk(daemon) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.responses.parse(model=MODEL, input="Who?", text_format=Person)
    assert "not valid JSON" in caught.value.message


async def test_previous_response_id_get_and_delete(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Paris.")
    async with sdk(daemon) as client:
        first = await client.responses.create(
            model=MODEL, instructions="Old rules", input="Capital of France?"
        )
        fake.reply("About 2 million.")
        second = await client.responses.create(
            model=MODEL, instructions="New rules", input="Its population?", previous_response_id=first.id
        )
        prompt = fake.calls_to("/completion")[-1].json["prompt"]
        assert prompt == (
            "System: New rules\n\nHuman: Capital of France?\n\nAssistant: Paris.\n\nHuman: Its population?\n\n"
        )
        assert second.previous_response_id == first.id
        kept = await client.responses.retrieve(second.id)
        assert kept.id == second.id and kept.output_text == "About 2 million."
        await client.responses.delete(second.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(second.id)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model=MODEL, input="more?", previous_response_id=second.id)
    assert caught.value.code == "previous_response_not_found" and caught.value.param == "previous_response_id"


async def test_stream_is_kept_and_store_false_keeps_nothing(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("streamed")
    async with sdk(daemon) as client:
        async with client.responses.stream(model=MODEL, input="Hi") as stream:
            final = await stream.get_final_response()
        assert (await client.responses.retrieve(final.id)).output_text == "streamed"
        unkept = await client.responses.create(model=MODEL, input="Hi", store=False)
        assert unkept.store is False
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(unkept.id)


async def test_one_key_cannot_read_or_continue_anothers(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"APIKEY": "key-alice,key-bob"})
    fake.reply("secret answer")
    async with sdk(daemon, api_key="key-alice") as alice, sdk(daemon, api_key="key-bob") as bob:
        kept = await alice.responses.create(model=MODEL, input="Hi")
        with pytest.raises(openai.NotFoundError):
            await bob.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            await bob.responses.delete(kept.id)
        with pytest.raises(openai.BadRequestError):
            await bob.responses.create(model=MODEL, input="more", previous_response_id=kept.id)
        assert (await alice.responses.retrieve(kept.id)).output_text == "secret answer"


async def test_store_ttl_expires(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"RESPONSES_STORE_TTL": "0.2"})
    fake.reply("soon gone")
    async with sdk(daemon) as client:
        kept = await client.responses.create(model=MODEL, input="Hi")
        await asyncio.sleep(0.3)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model=MODEL, input="more", previous_response_id=kept.id)
    assert "expired" in caught.value.message


async def test_max_output_tokens_is_incomplete(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(" ".join(f"word{i}" for i in range(400)))
    async with sdk(daemon) as client:
        response = await client.responses.create(model=MODEL, input="talk", max_output_tokens=20)
        stream = await client.responses.create(model=MODEL, input="talk", max_output_tokens=20, stream=True)
        events = [event async for event in stream]
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"


async def test_errors_before_the_stream_are_openai_shaped(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        with pytest.raises(openai.NotFoundError) as missing:
            await client.responses.create(model="gpt-nope", input="Hi")
        with pytest.raises(openai.BadRequestError) as tools:
            await client.responses.create(
                model=MODEL,
                input="Hi",
                tools=[{"type": "function", "name": "f", "parameters": {}}, {"type": "file_search", "vector_store_ids": ["v"]}],
                stream=True,
            )
        with pytest.raises(openai.BadRequestError) as files:
            await client.responses.create(
                model=MODEL,
                input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}],
            )
    assert missing.value.code == "model_not_found"
    assert tools.value.code == "unsupported_tool_type" and tools.value.param == "tools[1].type"
    assert "'file_search'" in tools.value.message
    assert files.value.param == "input[0].content[0].file_id"
    assert not fake.calls_to("/completion")


async def test_rate_limit_before_first_byte(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(behaviour="rate_limited", reset_at=time.time() + 7200)
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model=MODEL, input="Hi", stream=True)
    assert caught.value.response.headers.get("x-should-retry") == "false"


async def test_failure_after_commit_is_response_failed(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["partial ", "answer ", "more"], error_after=2)
    async with sdk(daemon) as client:
        stream = await client.responses.create(model=MODEL, input="Hi", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and "overloaded" in failed.error.message
    assert failed.output_text == "partial answer "
    async with sdk(daemon) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(failed.id)  # a failed exchange is not kept


@pytest.mark.parametrize("prefix", ["/v1", "/hf/v1", "", "/v1/v1"])
async def test_every_openai_prefix(fake: FakeClaude, daemon: Daemon, prefix: str) -> None:
    fake.reply("ok")
    async with sdk(daemon, prefix=prefix) as client:
        response = await client.responses.create(model=MODEL, input="Hi")
        assert (await client.responses.retrieve(response.id)).id == response.id


async def test_raw_stream_frames_have_event_lines(fake: FakeClaude, daemon: Daemon) -> None:
    """What non-SDK parsers (Codex's, litellm's) read: ``event:`` equal to the data's ``type``, no [DONE]."""
    fake.reply("hi")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            daemon.url + "/v1/responses",
            json={"model": MODEL, "input": "Hi", "stream": True},
            headers={"Authorization": f"Bearer {daemon.api_key}"},
        ) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            raw = (await resp.read()).decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    for frame in frames:
        event, data = frame.split("\n")
        assert event.removeprefix("event: ") == json.loads(data.removeprefix("data: "))["type"]
    assert "[DONE]" not in raw and frames[-1].startswith("event: response.completed")


@pytest.mark.skipif(
    importlib.util.find_spec("langchain_openai") is None, reason="langchain-openai not installed"
)
async def test_langchain_use_responses_api(fake: FakeClaude, daemon: Daemon) -> None:
    import httpx
    from langchain_openai import ChatOpenAI

    fake.reply("from langchain")
    async with httpx.AsyncClient() as http:  # its own default client is cached and never closed
        llm = ChatOpenAI(
            model=MODEL,
            base_url=daemon.url + "/v1",
            api_key=daemon.api_key,
            use_responses_api=True,
            max_retries=0,
            http_async_client=http,
        )
        message = await llm.ainvoke("Hi")
        chunks = [chunk async for chunk in llm.astream("Hi")]
    assert message.text == "from langchain"
    assert "".join(chunk.text for chunk in chunks) == "from langchain"


@pytest.mark.skipif(importlib.util.find_spec("litellm") is None, reason="litellm not installed")
async def test_litellm_responses(fake: FakeClaude, daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    import litellm

    fake.reply("from litellm")
    response = await litellm.aresponses(
        model=f"openai/{MODEL}", input="Hi", api_base=daemon.url + "/v1", api_key=daemon.api_key
    )
    await litellm.close_litellm_async_clients()
    assert response.output[-1].content[0].text == "from litellm"
