"""The OpenAI surface end to end: the real openai SDK -> daemon -> fake claude.ai, all over sockets."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, raw_post, sdk, sse_data


async def test_non_stream_answer(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Bonjour, 세계!")
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
        )
    assert result.choices[0].message.content == "Bonjour, 세계!"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == MODEL
    assert result.id.startswith("chatcmpl-")
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    completion = fake.calls_to("/completion")[-1]
    assert completion.json["prompt"] == "System: Be brief\n\nHuman: Hi\n\n"
    assert completion.json["model"] == MODEL
    assert completion.session_key in [a.session_key for a in fake.accounts]


async def test_stream_frames_follow_the_contract(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["Hel", "lo", " there", "!"])
    status, headers, raw = await raw_post(
        daemon,
        "/v1/chat/completions",
        {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
         "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    payloads = sse_data(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert {c["model"] for c in chunks} == {MODEL}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello there!"
    choice_chunks = [c for c in chunks if c["choices"]]
    assert choice_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in choice_chunks[:-1])
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0


async def test_stream_with_sdk_and_no_usage_chunk_unless_asked(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["a", "b", "c"])
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "Hi"}]
        )
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "abc"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_sdk_stream_helper_accumulates(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["one ", "two"])
    async with sdk(daemon) as client:
        async with client.chat.completions.stream(
            model=MODEL, messages=[{"role": "user", "content": "count"}]
        ) as stream:
            final = await stream.get_final_completion()
    assert final.choices[0].message.content == "one two"


async def test_stop_sequences_cut_the_output(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["alpha be", "ta END gam", "ma"])
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL, stop=["END"], messages=[{"role": "user", "content": "go"}]
        )
        stream = await client.chat.completions.create(
            model=MODEL, stop="END", stream=True, messages=[{"role": "user", "content": "go"}]
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert result.choices[0].message.content == "alpha beta "
    assert result.choices[0].finish_reason == "stop"
    assert streamed == "alpha beta "


async def test_models_endpoints(daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        models = [m.id async for m in client.models.list()]
        one = await client.models.retrieve(MODEL + "-think")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("gpt-4o")
    assert MODEL in models and MODEL + "-think" in models
    assert one.id == MODEL + "-think" and one.object == "model"
    async with sdk(daemon, prefix="/hf/v1") as client:
        assert [m.id async for m in client.models.list()] == models


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"", None),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": MODEL, "n": 2, "messages": [{"role": "user", "content": "x"}]}, "n"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
            "messages[0].content[0]",
        ),
    ],
)
async def test_bad_input_gets_a_400_with_an_openai_error(daemon: Daemon, fake: FakeClaude, body, param) -> None:
    status, _headers, raw = await raw_post(daemon, "/v1/chat/completions", body)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}
    assert not fake.calls_to("/completion")


async def test_unknown_model_is_404_model_not_found(daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


async def test_unknown_fields_and_object_user_are_accepted(fake: FakeClaude, daemon: Daemon) -> None:
    status, _, raw = await raw_post(
        daemon,
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "user": {"id": 1},
         "temperature": 0.2, "seed": 7, "some_future_field": True},
    )
    assert status == 200, raw


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer sk-test-claude2api"},
        {"Authorization": "bearer sk-test-claude2api"},
        {"x-api-key": "sk-test-claude2api"},
    ],
)
async def test_auth_styles(daemon: Daemon, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/v1/models", headers=headers) as resp:
            assert resp.status == 200


async def test_auth_failures(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/v1/models") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "missing_api_key"
        async with http.get(daemon.url + "/v1/models", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_api_key"
        async with http.get(daemon.url + "/health") as resp:
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
    async with sdk(daemon, api_key="wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()


async def test_several_api_keys(make_daemon) -> None:
    daemon = await make_daemon(env={"APIKEY": "key-one, key-two"})
    for key in ("key-one", "key-two"):
        async with sdk(daemon, api_key=key) as client:
            assert [m async for m in client.models.list()]


async def test_cors_preflight_and_headers(make_daemon) -> None:
    daemon = await make_daemon(env={"CORS_ORIGINS": "*"})  # CORS is opt-in
    async with aiohttp.ClientSession() as http:
        async with http.options(
            daemon.url + "/v1/chat/completions",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
            },
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "x-stainless-os" in resp.headers["Access-Control-Allow-Headers"]
        async with http.get(daemon.url + "/health", headers={"Origin": "https://app.example"}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert resp.headers["x-request-id"]


async def test_unknown_route_is_a_json_404(daemon: Daemon) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/v1/nothing", headers={"x-api-key": daemon.api_key}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["message"]


async def test_keepalive_chunks_during_silence(fake: FakeClaude, make_daemon) -> None:
    fake.reply(deltas=["slow", " answer"], delay=0.35)
    daemon = await make_daemon(env={"KEEPALIVE_INTERVAL": "0.1"})
    status, _, raw = await raw_post(
        daemon, "/v1/chat/completions",
        {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert status == 200
    chunks = [json.loads(p) for p in sse_data(raw)[:-1]]
    empty = [c for c in chunks if c["choices"] and c["choices"][0]["delta"] == {"content": ""}]
    assert len(empty) >= 2
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "slow answer"


async def test_response_format_json_schema_with_parse(fake: FakeClaude, daemon: Daemon) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    fake.reply('```json\n{"name": "Ada", "age": 36}\n```')
    async with sdk(daemon) as client:
        parsed = await client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "Who?"}], response_format=Person
        )
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert '"age"' in prompt and "JSON" in prompt  # the schema went upstream as an instruction


async def test_response_format_rejects_a_reply_that_is_not_json(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Sure! Here is some prose instead.")
    status, _, raw = await raw_post(
        daemon, "/v1/chat/completions",
        {"model": MODEL, "response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "x"}]},
    )
    assert status == 502
    assert "JSON" in json.loads(raw)["error"]["message"]


async def test_max_tokens_is_a_soft_cap(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(" ".join(f"word{i}" for i in range(400)))
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(
            model=MODEL, max_completion_tokens=20, messages=[{"role": "user", "content": "long please"}]
        )
        stream = await client.chat.completions.create(
            model=MODEL, max_tokens=20, stream=True, messages=[{"role": "user", "content": "long please"}]
        )
        chunks = [c async for c in stream]
    assert result.choices[0].finish_reason == "length"
    assert 0 < result.usage.completion_tokens <= 20
    assert len(result.choices[0].message.content) < 200
    assert chunks[-1].choices[0].finish_reason == "length"
    await daemon.idle()
    assert len(fake.calls_to("/stop_response")) == 2  # the cut-off generations were stopped upstream
    assert fake.conversations == {}


@pytest.mark.parametrize("prefix", ["", "/v1/v1", "/hf/v1"])
async def test_base_url_aliases(fake: FakeClaude, daemon: Daemon, prefix: str) -> None:
    async with sdk(daemon, prefix=prefix) as client:
        result = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert MODEL in [m.id async for m in client.models.list()]
    assert result.choices[0].message.content
