"""Today's claude.ai end to end (issue 9): live model lists per account, every id a client sends,
thinking and effort per model, per-model routing and parking, 403 model-not-available failover.

The fake claude.ai runs with ``strict_models``: a model id outside its catalogue, or a thinking
mode / effort the model's selector does not list, fails the request there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from claude2api.logs import fingerprint
from claude2api.testing import FakeClaude
from claude2api.testing.fake_claude import FakeModel, make_session_key

from support import raw_post, sdk

#: The ``/v1/messages`` body Claude Code 2.1.197 sent (captured from the real CLI).
CLAUDE_CODE_BODY = json.loads((Path(__file__).parent / "data" / "claude-code-2.1.197-messages.json").read_text())


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaude]:
    async with FakeClaude(strict_models=True) as server:
        yield server


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def anthropic_sdk(daemon: Any, prefix: str = "") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=daemon.url + prefix, api_key=daemon.api_key, max_retries=0)


def sent(fake: FakeClaude) -> dict[str, Any]:
    body: dict[str, Any] = fake.calls_to("/completion")[-1].json
    return body


def served_by(fake: FakeClaude) -> str | None:
    return fake.calls_to("/completion")[-1].session_key


@pytest.mark.parametrize(
    ("requested", "upstream"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
        ("claude-haiku-4-5", "claude-haiku-4-5-20251001"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-4-8[1m]", "claude-opus-4-8"),
        ("  Claude-Sonnet-4-6  ", "claude-sonnet-4-6"),
        ("sonnet", "claude-sonnet-5"),
        ("opus", "claude-opus-5"),
        ("haiku", "claude-haiku-4-5-20251001"),
        ("claude-opus-4-7-think-low", "claude-opus-4-7"),
    ],
)
async def test_every_client_id_resolves_and_is_echoed(
    fake: FakeClaude, make_daemon, requested: str, upstream: str
) -> None:
    fake.models.append(FakeModel("claude-sonnet-4-5-20250929", "Sonnet 4.5", modes=("extended", "off"), efforts=()))
    fake.add_account(plan="max")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        reply = await client.chat.completions.create(**ask(requested))
    assert reply.model == requested and reply.choices[0].message.content
    assert sent(fake)["model"] == upstream
    async with anthropic_sdk(daemon) as client:
        message = await client.messages.create(max_tokens=100, **ask(requested))
    assert message.model == requested and sent(fake)["model"] == upstream


async def test_aliases_and_default_model(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(plan="max")
    env = {"MODEL_ALIASES": "gpt-4o=claude-opus-4-7, fast=claude-haiku-4-5-think", "DEFAULT_MODEL": "claude-sonnet-4-6"}
    daemon = await make_daemon(env=env)
    async with sdk(daemon) as client:
        assert (await client.chat.completions.create(**ask("gpt-4o"))).model == "gpt-4o"
        assert sent(fake)["model"] == "claude-opus-4-7"
        await client.chat.completions.create(**ask("fast"))
        assert (sent(fake)["model"], sent(fake)["thinking_mode"]) == ("claude-haiku-4-5-20251001", "extended")
        assert "effort" not in sent(fake)  # Haiku's selector has no effort
        assert (await client.chat.completions.create(**ask("my-own-model"))).model == "my-own-model"
        assert sent(fake)["model"] == "claude-sonnet-4-6"


async def test_unknown_id_is_a_404_naming_the_closest(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(plan="max")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(**ask("claude-sonet-4-6"))
        assert "Did you mean `claude-sonnet-4-6`" in caught.value.message
        with pytest.raises(openai.NotFoundError) as listed:
            await client.models.retrieve("claude-sonet-4-6")
        assert "Did you mean" in listed.value.message
    async with anthropic_sdk(daemon) as client:
        with pytest.raises(anthropic.NotFoundError) as retired:
            await client.messages.create(max_tokens=10, **ask("claude-3-7-sonnet-20250219"))
        assert "claude-3-7-sonnet-20250219" in retired.value.message
    assert not fake.calls_to("/completion")


async def test_models_list_is_the_union_of_the_accounts_lists(fake: FakeClaude, make_daemon) -> None:
    fake.add_account(plan="max", models=["claude-sonnet-4-6", "claude-haiku-4-5-20251001"])
    fake.add_account(plan="max", models=["claude-opus-4-8"])
    daemon = await make_daemon(env={"MODELS": "claude-operator-x"})
    async with sdk(daemon) as client:
        ids = [m.id for m in (await client.models.list()).data]
    async with anthropic_sdk(daemon) as client:
        assert [m.id async for m in client.models.list()] == ids
    bases = {i for i in ids if not ("-think" in i or i.endswith("-search"))}
    assert bases == {"claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-8", "claude-operator-x"}
    assert {"claude-opus-4-8-think", "claude-opus-4-8-think-xhigh", "claude-sonnet-4-6-think-max"} <= set(ids)
    assert "claude-sonnet-4-6-think-xhigh" not in ids and "claude-haiku-4-5-20251001-think-low" not in ids
    assert "claude-sonnet-5" not in ids  # retired from neither list: simply nobody has it


async def test_a_model_only_one_account_has_is_routed_there(fake: FakeClaude, make_daemon) -> None:
    small = fake.add_account(plan="max", models=["claude-sonnet-4-6"])
    big = fake.add_account(plan="max")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(4):
            await client.chat.completions.create(**ask("claude-opus-4-8"))
            assert served_by(fake) == big.session_key
        keys = set()
        for _ in range(4):
            await client.chat.completions.create(**ask("claude-sonnet-4-6"))
            keys.add(served_by(fake))
    assert keys == {small.session_key, big.session_key}  # both have it: rotation as before
    assert fake.calls_to("/app_start")  # read from the live list, not guessed


async def test_exhausted_per_model_window_routes_that_model_elsewhere(fake: FakeClaude, make_daemon) -> None:
    """The tired account's Opus 4.8 window is used up (``/usage`` shows it, a send gets the per-model
    429): Opus goes to the other account, every other model still goes to both."""
    tired = fake.add_account(plan="max", exhausted="claude-opus-4-8", limit_shape="full")
    fresh = fake.add_account(plan="max")
    daemon = await make_daemon()
    async with anthropic_sdk(daemon) as client:
        for _ in range(3):
            message = await client.messages.create(max_tokens=50, **ask("claude-opus-4-8"))
            assert message.content and served_by(fake) == fresh.session_key
        serving = set()
        for _ in range(4):
            await client.messages.create(max_tokens=50, **ask("claude-sonnet-4-6"))
            serving.add(served_by(fake))
    assert serving == {tired.session_key, fresh.session_key}
    state = next(s for s in daemon.services.pool.snapshot() if s["fingerprint"] == fingerprint(tired.session_key))
    assert state["state"] == "healthy" and state["windows"]  # every window is shown


async def test_every_account_parked_for_a_model_is_a_429(fake: FakeClaude, make_daemon) -> None:
    tired = fake.add_account(plan="max", exhausted="claude-opus-4-8", limit_shape="full")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(2):
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(**ask("claude-opus-4-8"))
        assert (await client.chat.completions.create(**ask("claude-sonnet-4-6"))).choices[0].message.content
    assert len([c for c in fake.calls_to("/completion") if c.json["model"] == "claude-opus-4-8"]) == 1
    [state] = daemon.services.pool.snapshot()
    assert state["fingerprint"] == fingerprint(tired.session_key) and state["state"] == "healthy"
    assert list(state["model_cooling"]) == ["claude-opus-4-8"]  # parked for that model only
    assert any(w["scope"] == "model" and w["exceeded"] for w in state["windows"])


async def test_model_not_available_fails_over_then_names_the_model(fake: FakeClaude, make_daemon) -> None:
    refused = fake.add_account(plan="max", denied_models={"claude-opus-4-8"})
    willing = fake.add_account(plan="max")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        for _ in range(3):
            assert (await client.chat.completions.create(**ask("claude-opus-4-8"))).choices[0].message.content
            assert served_by(fake) == willing.session_key
    denied = {s["fingerprint"]: s["denied_models"] for s in daemon.services.pool.snapshot()}
    assert sorted(map(len, denied.values())) in ([0, 0], [0, 1])  # refused at most once, for that model
    willing.denied_models.add("claude-opus-4-8")
    refused.denied_models.add("claude-opus-4-8")
    async with anthropic_sdk(daemon) as client:
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            for _ in range(2):
                await client.messages.create(max_tokens=10, **ask("claude-opus-4-8"))
    assert "claude-opus-4-8" in caught.value.message
    assert caught.value.body["error"]["type"] == "permission_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "extra", "mode", "effort"),
    [
        ("claude-sonnet-4-6", {"reasoning_effort": "xhigh"}, "auto", "high"),  # no xhigh: the nearest
        ("claude-sonnet-4-6", {"reasoning_effort": "minimal"}, "auto", "low"),
        ("claude-sonnet-4-6", {"reasoning_effort": "none"}, "off", "medium"),
        ("claude-opus-4-8-think", {}, "auto", "max"),
        ("claude-opus-4-6-think", {}, "extended", "max"),
        ("claude-haiku-4-5-think", {}, "extended", None),
        ("claude-haiku-4-5", {"reasoning_effort": "high"}, "extended", None),
    ],
)
async def test_thinking_is_what_the_model_lists(fake: FakeClaude, make_daemon, model: str, extra: dict, mode: str, effort: str | None) -> None:
    fake.add_account(plan="max")
    daemon = await make_daemon()
    async with sdk(daemon) as client:
        assert (await client.chat.completions.create(**ask(model, **extra))).choices[0].message.content
    body = sent(fake)
    assert body["thinking_mode"] == mode and body.get("effort") == effort


async def test_claude_code_request_is_served(fake: FakeClaude, make_daemon) -> None:
    """Claude Code 2.1.197's captured ``/v1/messages`` body: system messages mid-conversation,
    adaptive thinking, ``output_config.effort``, ``context_management``, metadata."""
    body = CLAUDE_CODE_BODY
    assert any(m["role"] == "system" for m in body["messages"]) and body["thinking"] == {"type": "adaptive"}
    fake.add_account(plan="max")
    daemon = await make_daemon()
    status, headers, raw = await raw_post(daemon, "/v1/messages?beta=true", body, {"anthropic-version": "2023-06-01"})
    assert status == 200, raw[:500]
    assert headers["content-type"].startswith("text/event-stream") and b"message_stop" in raw
    upstream = sent(fake)
    assert (upstream["model"], upstream["thinking_mode"], upstream["effort"]) == ("claude-opus-4-8", "auto", "high")
    sent_text = upstream["prompt"] + "".join(a["extracted_content"] for a in upstream["attachments"])
    assert "System: Available agent types" in sent_text  # the mid-conversation system message, in place


async def test_sid02_keys_in_config_and_mirror_mode(fake: FakeClaude, make_daemon) -> None:
    pooled = fake.add_account(session_key=make_session_key("sid02"))
    own = fake.add_account(session_key=make_session_key("sid02"))
    fake.accounts.remove(own)
    daemon = await make_daemon(env={"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"})
    fake.accounts.append(own)
    async with sdk(daemon) as client:
        assert (await client.chat.completions.create(**ask("claude-sonnet-4-6"))).choices[0].message.content
    assert served_by(fake) == pooled.session_key
    async with sdk(daemon, prefix="/mirror/v1", api_key=own.session_key) as client:
        assert (await client.chat.completions.create(**ask("claude-sonnet-4-6"))).choices[0].message.content
    assert served_by(fake) == own.session_key
