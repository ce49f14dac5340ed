"""The Anthropic surface end to end: the real anthropic SDK -> daemon -> fake claude.ai, over sockets."""

from __future__ import annotations

import base64
import inspect
import json
import time
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic.types import TextBlock, ThinkingBlock

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon, run_daemon, settings_for

from support import MODEL, raw_post

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HI = [{"role": "user", "content": "Hi"}]
#: claude.ai's web-only frames and fields, none of which may reach an Anthropic client.
WEB_ONLY = [
    "message_limit",
    "thinking_summary_delta",
    "tool_use_block_update_delta",
    "start_timestamp",
    "stop_timestamp",
    "citations",
    '"flags"',
]


def client(
    daemon: Daemon, prefix: str = "", api_key: str | None = None, **kwargs: Any
) -> anthropic.AsyncAnthropic:
    """The SDK the way users configure it: a base URL without ``/v1``."""
    kwargs.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=daemon.url + prefix, api_key=api_key or daemon.api_key, **kwargs)


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Every frame's data, checking it has an ``event:`` line equal to its ``type``."""
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"], frame
        events.append(data)
    return events


async def test_create_sends_the_conversation_and_returns_a_message(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("Bonjour, 세계!")
    async with client(daemon) as sdk:
        raw = await sdk.messages.with_raw_response.create(
            model=MODEL,
            max_tokens=256,
            system=[{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
            ],
            metadata={"user_id": "u-1"},
            extra_body={"temperature": 0.3, "top_k": 5},  # gone from the 2.x signature, still sent by clients
        )
        message = raw.parse()
        if inspect.isawaitable(message):  # async in anthropic 2.x, plain in 0.x
            message = await message
    assert raw.headers["request-id"].startswith("req_")
    assert message.content == [TextBlock(type="text", text="Bonjour, 세계!", citations=None)]
    assert message.id.startswith("msg_") and len(message.id) >= 28
    assert message.model == MODEL and message.role == "assistant" and message.type == "message"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    upstream = fake.calls_to("/completion")[-1].json
    assert (
        upstream["prompt"] == "System: Be brief\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: How are you?\n\n"
    )
    assert upstream["model"] == MODEL and upstream["thinking_mode"] == "off"


async def test_prefill_is_the_last_paragraph(fake: FakeClaude, daemon: Daemon) -> None:
    async with client(daemon) as sdk:
        await sdk.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[
                {"role": "user", "content": "Name a colour"},
                {"role": "assistant", "content": "The colour is"},
            ],
        )
    assert (
        fake.calls_to("/completion")[-1]
        .json["prompt"]
        .endswith("Human: Name a colour\n\nAssistant: The colour is\n\n")
    )


async def test_raw_stream_events(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["Hel", "lo", " there!"])
    async with client(daemon) as sdk:
        stream = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        events = [event async for event in stream]
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].message.usage.input_tokens > 0 and events[0].message.usage.output_tokens == 1
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Hello there!"
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens > 0


async def test_stream_helper(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["one ", "two"])
    async with client(daemon) as sdk:
        async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            text = await stream.get_final_text()
    assert pieces == ["one ", "two"] and text == "one two"
    assert final.content[0].text == "one two" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


async def test_thinking(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("answer", thinking="deep thoughts")
    thinking = {"type": "enabled", "budget_tokens": 2048}
    async with client(daemon) as sdk:
        message = await sdk.messages.create(model=MODEL, max_tokens=4096, messages=HI, thinking=thinking)
        upstream = fake.calls_to("/completion")[-1].json
        async with sdk.messages.stream(
            model=MODEL, max_tokens=4096, messages=HI, thinking=thinking
        ) as stream:
            streamed = await stream.get_final_message()
    for result in (message, streamed):
        assert [block.type for block in result.content] == ["thinking", "text"]
        assert isinstance(result.content[0], ThinkingBlock) and isinstance(result.content[1], TextBlock)
        assert result.content[0].thinking == "deep thoughts" and isinstance(result.content[0].signature, str)
        assert result.content[1].text == "answer"
    assert upstream["thinking_mode"] == "auto" and upstream["effort"] == "low"


async def test_thinking_round_trip(fake: FakeClaude, daemon: Daemon) -> None:
    """What the SDK got back can be sent back as history; the thinking stays out of the prompt."""
    fake.reply("first answer", thinking="private thoughts")
    async with client(daemon) as sdk:
        first = await sdk.messages.create(model=MODEL + "-think", max_tokens=1024, messages=HI)
        assert first.content[0].type == "thinking"
        fake.reply("second answer")
        await sdk.messages.create(
            model=MODEL + "-think",
            max_tokens=1024,
            messages=[
                *HI,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": "And?"},
            ],
        )
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert prompt == "Human: Hi\n\nAssistant: first answer\n\nHuman: And?\n\n"
    assert fake.calls_to("/completion")[-1].json["thinking_mode"] == "auto"


async def test_no_thinking_unless_asked(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("plain", thinking="unwanted")
    async with client(daemon) as sdk:
        message = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert [block.type for block in message.content] == ["text"]
    assert fake.calls_to("/completion")[-1].json["thinking_mode"] == "off"


async def test_stop_sequences(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["alpha be", "ta END gam", "ma"])
    async with client(daemon) as sdk:
        message = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI, stop_sequences=["END"])
        async with sdk.messages.stream(
            model=MODEL, max_tokens=64, messages=HI, stop_sequences=["END"]
        ) as stream:
            streamed = await stream.get_final_message()
    for result in (message, streamed):
        assert result.content[0].text == "alpha beta "
        assert result.stop_reason == "stop_sequence" and result.stop_sequence == "END"


async def test_max_tokens_is_a_soft_cap(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(" ".join(f"word{i}" for i in range(200)))
    async with client(daemon) as sdk:
        message = await sdk.messages.create(model=MODEL, max_tokens=5, messages=HI)
        async with sdk.messages.stream(model=MODEL, max_tokens=5, messages=HI) as stream:
            streamed = await stream.get_final_message()
    for result in (message, streamed):
        assert result.stop_reason == "max_tokens"
        assert 0 < len(result.content[0].text) < 100 and result.usage.output_tokens <= 5


async def test_images(fake: FakeClaude, daemon: Daemon) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
    async with client(daemon) as sdk:
        await sdk.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": source},
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        )
    [upload] = fake.calls_to("/wiggle/upload-file")  # the file goes away with the conversation
    file_uuid = upload.file["file_uuid"]
    assert upload.file["size"] == len(PNG)
    upstream = fake.calls_to("/completion")[-1].json
    assert upstream["files"] == [file_uuid]
    assert upstream["prompt"] == "Human: [image 1]\n\nWhat is this?\n\n"


async def test_x_api_key_beta_query_and_v1_alias(fake: FakeClaude, daemon: Daemon) -> None:
    body = {"model": MODEL, "max_tokens": 32, "messages": HI}
    headers = {"x-api-key": daemon.api_key, "anthropic-version": "2023-06-01", "anthropic-beta": "x"}
    async with aiohttp.ClientSession() as http:
        for path in ("/v1/messages", "/v1/messages?beta=true", "/v1/v1/messages"):
            async with http.post(daemon.url + path, json=body, headers=headers) as resp:
                assert resp.status == 200, path
                assert (await resp.json())["type"] == "message"
    async with client(daemon, prefix="/v1") as sdk:  # a base URL pasted with /v1
        assert (await sdk.messages.create(**body)).content[0].text
        assert (await sdk.messages.count_tokens(model=MODEL, messages=HI)).input_tokens > 0
        assert [m.id async for m in sdk.models.list()]


async def test_count_tokens(fake: FakeClaude, daemon: Daemon) -> None:
    async with client(daemon) as sdk:
        short = await sdk.messages.count_tokens(model=MODEL, messages=HI)
        long = await sdk.messages.count_tokens(
            model=MODEL,
            system="You are a helpful assistant. " * 20,
            messages=HI,
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
        )
        with pytest.raises(anthropic.NotFoundError):
            await sdk.messages.count_tokens(model="gpt-4o", messages=HI)
    assert 0 < short.input_tokens < long.input_tokens
    status, _, raw = await raw_post(
        daemon,
        "/v1/messages/count_tokens?beta=true",
        {"model": MODEL, "messages": HI},
        headers={"Authorization": "", "x-api-key": daemon.api_key},
    )
    assert status == 200 and json.loads(raw) == {"input_tokens": short.input_tokens}
    assert not fake.calls_to("/completion")


async def test_models(daemon: Daemon) -> None:
    async with client(daemon) as sdk:
        models = [m async for m in sdk.models.list()]
        one = await sdk.models.retrieve(MODEL + "-think")
        with pytest.raises(anthropic.NotFoundError):
            await sdk.models.retrieve("gpt-4o")
    assert MODEL in [m.id for m in models] and all(m.type == "model" and m.display_name for m in models)
    assert one.id == MODEL + "-think" and one.created_at.year >= 2025


def error_body(exc: anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(exc.body, dict) and exc.body["type"] == "error", exc.body
    return exc.body["error"]


async def test_bad_request_is_a_400_in_anthropic_shape(fake: FakeClaude, daemon: Daemon) -> None:
    async with client(daemon) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(model=MODEL, max_tokens=64, messages=[])
        with pytest.raises(anthropic.BadRequestError):
            await sdk.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": "%%%"},
                            }
                        ],
                    }
                ],
            )
    error = error_body(caught.value)
    assert error["type"] == "invalid_request_error" and "messages" in error["message"]
    assert caught.value.body["request_id"] == caught.value.request_id
    for body in (b"{not json", b""):
        status, _, raw = await raw_post(daemon, "/v1/messages", body)
        assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    assert not fake.calls_to("/completion")


async def test_unknown_model_is_not_found(daemon: Daemon) -> None:
    async with client(daemon) as sdk:
        with pytest.raises(anthropic.NotFoundError) as caught:
            await sdk.messages.create(model="gpt-5", max_tokens=64, messages=HI)
    assert error_body(caught.value)["type"] == "not_found_error"


async def test_authentication(daemon: Daemon) -> None:
    async with client(daemon, api_key="wrong") as sdk:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert error_body(caught.value)["type"] == "authentication_error"
    status, _, raw = await raw_post(
        daemon, "/v1/messages", {"model": MODEL, "messages": HI}, headers={"Authorization": ""}
    )
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"


async def test_rate_limit_is_raised_without_sleeping(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(behaviour="rate_limited", reset_at=time.time() + 7200)
    daemon = await make_daemon()
    async with client(daemon, max_retries=2) as sdk:  # the SDK's default: it must still not retry
        started = time.monotonic()
        with pytest.raises(anthropic.RateLimitError) as caught:
            await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
        elapsed = time.monotonic() - started
    assert elapsed < 2
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert error_body(caught.value)["type"] == "rate_limit_error"
    assert len(fake.calls_to("/completion")) == 1


async def test_overloaded_is_529(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(behaviour="overloaded")
    fake.add_account(behaviour="overloaded")
    daemon = await make_daemon()
    async with client(daemon) as sdk:
        with pytest.raises(anthropic.OverloadedError) as caught:
            await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    assert caught.value.status_code == 529
    assert error_body(caught.value)["type"] == "overloaded_error"


async def test_mid_stream_failure_is_an_error_event(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["partial ", "answer ", "more"], error_after=2)
    received = []
    async with client(daemon) as sdk:
        stream = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        with pytest.raises(anthropic.APIStatusError) as caught:
            async for event in stream:
                if event.type == "content_block_delta":
                    received.append(event.delta.text)
    assert "".join(received) == "partial answer "
    assert caught.value.body["error"]["type"] == "overloaded_error"
    status, _, raw = await raw_post(daemon, "/v1/messages", {"model": MODEL, "messages": HI, "stream": True})
    events = sse_events(raw)
    assert status == 200 and events[-1]["type"] == "error"
    assert "message_stop" not in [e["type"] for e in events]


async def test_web_only_frames_never_leak(fake: FakeClaude, daemon: Daemon) -> None:
    fake.framing.noise = True
    fake.reply("the answer", thinking="some thinking")
    body = {
        "model": MODEL,
        "max_tokens": 1024,
        "stream": True,
        "messages": HI,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    status, headers, raw = await raw_post(daemon, "/v1/messages", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    for word in WEB_ONLY:
        assert word not in raw.decode(), word
    events = sse_events(raw)
    assert {e["type"] for e in events} <= {
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [(e["index"], e["content_block"]["type"]) for e in starts] == [(0, "thinking"), (1, "text")]
    status, _, raw = await raw_post(daemon, "/v1/messages", {**body, "stream": False})
    assert status == 200 and not any(word in raw.decode() for word in WEB_ONLY)


async def test_mirror_mode(fake: FakeClaude) -> None:
    own = fake.add_account()
    other = fake.add_account()
    settings = settings_for(
        fake.base_url, [other.session_key], {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"}
    )
    async with run_daemon(settings) as daemon:
        async with client(daemon, prefix="/mirror", api_key=own.session_key) as sdk:
            message = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
            assert (await sdk.messages.count_tokens(model=MODEL, messages=HI)).input_tokens > 0
        async with client(daemon, prefix="/mirror", api_key="not-a-session-key") as sdk:
            with pytest.raises(anthropic.AuthenticationError):
                await sdk.messages.create(model=MODEL, max_tokens=64, messages=HI)
    assert message.content[0].text
    assert [c.session_key for c in fake.calls_to("/completion")] == [own.session_key]
