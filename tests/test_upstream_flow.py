"""What the daemon does upstream: conversations, thinking, images, history, failover, clean-up."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import aiohttp
import openai
import pytest
from aiohttp import web

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, raw_post, sdk

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def ask(text: str = "Hi", model: str = MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def test_conversation_is_created_by_the_completion_and_deleted(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask())
    await daemon.idle()
    body = fake.calls_to("/completion")[-1].json
    assert body["create_conversation_params"]["is_temporary"] is True
    assert "human_message_uuid" in body["turn_message_uuids"]
    assert body["rendering_mode"] == "messages"
    assert not fake.calls_to(re.compile(r"/chat_conversations$"))  # 2026: no separate create call
    assert fake.conversations == {}
    assert len([c for c in fake.calls if c.method == "DELETE"]) == 1


async def test_chat_delete_off_keeps_the_finished_conversation(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"CHAT_DELETE": "false"})
    async with sdk(daemon) as client:
        await client.chat.completions.create(**ask())
    await daemon.idle()
    assert len(fake.conversations) == 1


async def test_2025_protocol_creates_then_sets_thinking_per_conversation(fake: FakeClaude, make_daemon) -> None:
    fake.reply("answer", thinking="pondering")
    daemon = await make_daemon(env={"UPSTREAM_PROTOCOL": "2025"})
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(**ask(model=MODEL + "-think"))
    await daemon.idle()
    create = fake.calls_to(re.compile(r"/chat_conversations$"))
    assert len(create) == 1 and create[0].method == "POST"
    puts = [c for c in fake.calls if c.method == "PUT"]
    assert [c.json for c in puts] == [{"settings": {"paprika_mode": "extended"}}]
    assert "/api/account" not in " ".join(c.path for c in fake.calls)
    completion = fake.calls_to("/completion")[-1].json
    assert completion["parent_message_uuid"] == "00000000-0000-4000-8000-000000000000"
    assert completion["model"] == MODEL
    assert result.choices[0].message.content == "<think>\npondering\n</think>\n\nanswer"
    assert fake.conversations == {}


async def test_thinking_model_turns_thinking_on_for_that_conversation_only(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply("the answer", thinking="let me think")
    async with sdk(daemon) as client:
        thought = await client.chat.completions.create(**ask(model=MODEL + "-think"))
        plain = await client.chat.completions.create(**ask())
    bodies = [c.json for c in fake.calls_to("/completion")]
    assert bodies[0]["thinking_mode"] == "auto" and bodies[0]["model"] == MODEL
    assert bodies[1]["thinking_mode"] == "off"
    assert thought.choices[0].message.content == "<think>\nlet me think\n</think>\n\nthe answer"
    assert thought.model == MODEL + "-think"
    assert plain.choices[0].message.content == "the answer"
    assert not [c for c in fake.calls if c.path.startswith("/api/account")]


async def test_reasoning_content_mode(fake: FakeClaude, make_daemon) -> None:
    fake.reply("42", thinking="hmm")
    daemon = await make_daemon(env={"THINKING_OUTPUT": "reasoning_content"})
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(**ask(reasoning_effort="low"))
        stream = await client.chat.completions.create(**ask(reasoning_effort="low"), stream=True)
        chunks = [c async for c in stream]
    assert result.choices[0].message.content == "42"
    assert result.choices[0].message.reasoning_content == "hmm"
    assert fake.calls_to("/completion")[0].json["effort"] == "low"
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (reasoning, content) == ("hmm", "42")


async def test_echoed_reasoning_is_stripped_from_history(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        await client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "<think>\nsecret musing\n</think>\n\nHello!"},
                {"role": "user", "content": "Again"},
            ],
        )
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert "secret musing" not in prompt
    assert prompt == "Human: Hi\n\nAssistant: Hello!\n\nHuman: Again\n\n"


async def test_no_role_prefix_and_artifacts_instruction(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"NO_ROLE_PREFIX": "true", "PROMPT_DISABLE_ARTIFACTS": "true"})
    async with sdk(daemon) as client:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "developer", "content": "rules"}, {"role": "user", "content": "Hi"}]
        )
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert prompt.startswith("System: Forbidden to use <antArtifact>")
    assert prompt.endswith("rules\n\nHi\n\n")
    assert "Human:" not in prompt


async def test_long_history_goes_as_an_attachment(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"MAX_CHAT_HISTORY_LENGTH": "200"})
    history = [{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": "the last question"}]
    async with sdk(daemon) as client:
        await client.chat.completions.create(model=MODEL, messages=history)
    body = fake.calls_to("/completion")[-1].json
    assert len(body["prompt"].encode()) <= 200
    [attachment] = body["attachments"]
    assert attachment["file_name"] == "context.txt"
    assert "the last question" in attachment["extracted_content"]
    assert attachment["file_size"] == len(attachment["extracted_content"].encode())


async def test_data_url_images_are_uploaded_and_attached(fake: FakeClaude, daemon: Daemon) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    async with sdk(daemon) as client:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}],
        )
    [upload] = fake.calls_to("/wiggle/upload-file")  # into the conversation (reference 2026 §3.1)
    assert upload.file["size"] == len(PNG)
    completion = fake.calls_to("/completion")[-1]
    assert completion.json["files"] == [upload.file["file_uuid"]]
    assert upload.file["conversation"] in completion.path


async def test_http_image_urls_are_downloaded(fake: FakeClaude, make_daemon, aiohttp_server) -> None:
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    images = web.Application()
    images.router.add_get("/cat.png", image)
    server = await aiohttp_server(images)
    daemon = await make_daemon(env={"IMAGE_FETCH_ALLOW_PRIVATE": "true"})
    async with sdk(daemon) as client:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": str(server.make_url("/cat.png"))}}]}],
        )
    [upload] = fake.calls_to("/wiggle/upload-file")
    assert upload.file["size"] == len(PNG)


async def test_private_image_urls_are_refused_by_default(fake: FakeClaude, daemon: Daemon) -> None:
    status, _, raw = await raw_post(
        daemon,
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}]}]},
    )
    assert status == 400, raw
    assert not fake.calls_to("/completion")


async def test_org_is_looked_up_once_and_the_chat_org_is_chosen(fake: FakeClaude, make_daemon) -> None:
    api_org = {"uuid": "11111111-1111-4111-8111-111111111111", "name": "console", "capabilities": ["api"],
               "rate_limit_tier": "default_api"}
    account = fake.add_account()
    chat_org = account.org_id
    account.orgs.insert(0, api_org)
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(3):
            await client.chat.completions.create(**ask())
    assert len(fake.calls_to("/api/organizations")) == 1
    assert all(f"/organizations/{chat_org}/" in c.path for c in fake.calls_to("/completion"))


async def test_key_with_org_skips_the_lookup(fake: FakeClaude, make_daemon) -> None:
    account = fake.add_account()
    from claude2api.testing.daemon import run_daemon, settings_for

    settings = settings_for(fake.base_url, [f"  {account.session_key}:{account.org_id}  "])
    async with run_daemon(settings) as daemon:
        async with sdk(daemon) as client:
            await client.chat.completions.create(**ask())
    assert not fake.calls_to("/api/organizations")


async def test_failover_from_a_dead_session_which_is_then_left_alone(fake: FakeClaude, make_daemon) -> None:
    dead = fake.add_account(behaviour="dead")
    good = fake.add_account()
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(4):
            result = await client.chat.completions.create(**ask())
            assert result.choices[0].message.content
    dead_calls = [c for c in fake.calls if c.session_key == dead.session_key]
    assert len(dead_calls) == 1  # one failed call is enough to know
    assert len([c for c in fake.calls_to("/completion") if c.session_key == good.session_key]) == 4
    [state] = [s for s in daemon.services.pool.snapshot() if s["state"] == "dead"]
    assert dead.session_key not in str(state)


async def test_rate_limited_session_is_parked_until_reset(fake: FakeClaude, make_daemon) -> None:
    now = [time.time()]
    reset = int(now[0]) + 7200
    limited = fake.add_account(behaviour="rate_limited", reset_at=reset)
    daemon = await make_daemon(clock=lambda: now[0])
    async with sdk(daemon) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(**ask())
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert "retry-after" not in caught.value.response.headers
        assert time.strftime("%Y-%m-%dT%H:%M", time.gmtime(reset)) in caught.value.message
        await daemon.idle()
        calls = len(fake.calls)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(**ask())
        assert len(fake.calls) == calls  # parked: not even tried
        limited.behaviour = "ok"
        now[0] = reset + 1
        result = await client.chat.completions.create(**ask())
    assert result.choices[0].message.content


async def test_message_limit_exceeded_in_stream_parks_the_session(fake: FakeClaude, make_daemon) -> None:
    reset = int(time.time()) + 3600
    first = fake.add_account(behaviour="exceeded_in_stream", reset_at=reset)
    second = fake.add_account()
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        answered = await client.chat.completions.create(**ask())
        await client.chat.completions.create(**ask())
        await client.chat.completions.create(**ask())
    assert answered.choices[0].message.content  # the reply itself was fine: the limit is for the next
    users = [c.session_key for c in fake.calls_to("/completion")]
    assert users == [first.session_key, second.session_key, second.session_key]
    parked = daemon.services.pool.snapshot()[0]
    assert parked["state"] == "cooling"
    assert parked["until"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))


async def test_cloudflare_block_is_reported_as_an_ip_problem(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(behaviour="cloudflare")
    daemon = await make_daemon()
    status, _, raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert status == 503
    error = json.loads(raw)["error"]
    assert "Cloudflare" in error["message"] and "IP" in error["message"]
    assert "<html" not in raw.decode().lower()
    assert error["code"] == "upstream_blocked"


async def test_overloaded_before_content_fails_over(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(behaviour="overloaded")
    fake.add_account(behaviour="overloaded")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**ask())
    assert caught.value.status_code == 529
    assert len(fake.calls_to("/completion")) == 2
    await daemon.idle()
    assert fake.conversations == {}


async def test_mid_stream_error_is_an_error_frame_not_text(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=["partial ", "answer ", "more"], error_after=2)
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(**ask(), stream=True)
        received = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                if chunk.choices:
                    received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "partial answer "
    status, _, _raw = await raw_post(daemon, "/v1/chat/completions", ask())
    assert status in (502, 529)
    await daemon.idle()
    assert fake.conversations == {}


async def test_client_disconnect_stops_and_deletes_upstream(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=[f"tok{i} " for i in range(200)], delay=0.05)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            daemon.url + "/v1/chat/completions",
            json=ask(stream=True),
            headers={"Authorization": f"Bearer {daemon.api_key}"},
        ) as resp:
            assert resp.status == 200
            await resp.content.readuntil(b"tok2")
    for _ in range(100):
        if fake.stopped and not fake.conversations:
            break
        await asyncio.sleep(0.05)
    await daemon.idle()
    assert len(fake.stopped) == 1
    assert fake.conversations == {}


async def test_mirror_mode_uses_the_callers_session_key(fake: FakeClaude, make_daemon) -> None:
    own = fake.add_account()
    other = fake.add_account()
    from claude2api.testing.daemon import run_daemon, settings_for

    settings = settings_for(fake.base_url, [other.session_key],
                            {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"})
    async with run_daemon(settings) as daemon:
        async with sdk(daemon, prefix="/mirror/v1", api_key=own.session_key) as client:
            result = await client.chat.completions.create(**ask())
            assert result.choices[0].message.content
        async with sdk(daemon, prefix="/mirror/v1", api_key="not-a-session-key") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.chat.completions.create(**ask())
        async with sdk(daemon, prefix="/mirror/v1", api_key=own.session_key + ":" + own.org_id) as client:
            await client.chat.completions.create(**ask())
    assert [c.session_key for c in fake.calls_to("/completion")] == [own.session_key] * 2
    # One check per credential (key, key:org): claude.ai must accept a mirror key before any work.
    assert len([c for c in fake.calls_to("/api/organizations") if c.session_key == own.session_key]) == 2


@pytest.mark.parametrize(
    "framing",
    [
        {"crlf": True},
        {"split": "bytes", "split_size": 3},
        {"split": "random", "seed": 7, "crlf": True},
        {"noise": True},
        {"padding": False},
        {"legacy": True},
    ],
)
async def test_real_world_framing_reaches_the_client_intact(fake: FakeClaude, daemon: Daemon, framing) -> None:
    text = "코드를 분석해서 문제가 있는 부분들에 대해서 짚어줘 — 42°C…"
    fake.reply(text, thinking=None if framing.get("legacy") else "사용자가 생각")
    for knob, value in framing.items():
        setattr(fake.framing, knob, value)
    async with sdk(daemon) as client:
        plain = await client.chat.completions.create(**ask(model=MODEL + "-think"))
        stream = await client.chat.completions.create(**ask(model=MODEL + "-think"), stream=True)
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    thought = "" if framing.get("legacy") else "<think>\n사용자가 생각\n</think>\n\n"
    assert plain.choices[0].message.content == thought + text
    assert streamed == thought + text
    await daemon.idle()
    assert fake.conversations == {}


async def test_client_walking_away_from_a_non_stream_request_stops_upstream(fake: FakeClaude, daemon: Daemon) -> None:
    fake.reply(deltas=[f"tok{i} " for i in range(100)], delay=0.05)

    async def call() -> None:
        await raw_post(daemon, "/v1/chat/completions", ask())

    task = asyncio.create_task(call())
    for _ in range(100):
        if fake.calls_to("/completion"):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if fake.stopped and not fake.conversations:
            break
        await asyncio.sleep(0.05)
    await daemon.idle()
    assert len(fake.stopped) == 1
    assert fake.conversations == {}
