"""claude.ai's web search end to end: each dialect's real SDK, stream and non-stream, the operator's
``WEB_SEARCH`` switch, the ``-search`` suffix and both protocol generations, against the fake.

The fake searches when the prompt holds ``[[search:QUERY]]``, the conversation's
``enabled_web_search`` is on and the completion's ``tools`` carry ``web_search_v0``. Its reply is
``Searched the web for QUERY. According to QUERY - result 1, it is covered. …`` with the middle
sentence cited from ``https://example1.org/<slug>``.
"""

from __future__ import annotations

import json

import aiohttp
import anthropic
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon
from tests.support import MODEL, raw_post, sdk

QUERY = "paris weather"
PROMPT = f"[[search:{QUERY}]] What is the weather in Paris?"
CITED = f"According to {QUERY} - result 1, it is covered."
SOURCE = "https://example1.org/paris-weather"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}
WEB_TOOL = {"type": "web_search_v0", "name": "web_search"}


def anthropic_sdk(daemon: Daemon) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=0)


def assert_search_went_upstream(fake: FakeClaude) -> None:
    completion = fake.calls_to("/completion")[-1]
    assert completion.json["tools"][0] == WEB_TOOL
    assert completion.json["create_conversation_params"]["enabled_web_search"] is True
    assert fake.searches == [QUERY]


def assert_no_search_upstream(fake: FakeClaude) -> None:
    completion = fake.calls_to("/completion")[-1]
    assert WEB_TOOL not in completion.json["tools"]
    assert "enabled_web_search" not in completion.json["create_conversation_params"]
    assert fake.searches == []


# --------------------------------------------------------------------------- Anthropic


def assert_anthropic_message(message: anthropic.types.Message) -> None:
    kinds = [block.type for block in message.content]
    assert kinds[:2] == ["server_tool_use", "web_search_tool_result"], kinds
    use, result = message.content[0], message.content[1]
    assert use.name == "web_search" and use.input == {"query": QUERY}
    assert result.tool_use_id == use.id
    assert [r.url for r in result.content] == [SOURCE, "https://example2.org/paris-weather"]
    assert result.content[0].title == f"{QUERY} - result 1" and result.content[0].type == "web_search_result"
    cited = [c for block in message.content if block.type == "text" for c in block.citations or ()]
    assert len(cited) == 1
    assert cited[0].type == "web_search_result_location"
    assert (cited[0].url, cited[0].cited_text, cited[0].title) == (SOURCE, CITED, f"{QUERY} - result 1")
    text = "".join(block.text for block in message.content if block.type == "text")
    assert f"Searched the web for {QUERY}. {CITED}" in text
    assert "Sources:" not in text  # the client asked in its own terms: it reads the citations
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_server_tool_search_with_citations(fake: FakeClaude, daemon: Daemon, stream: bool) -> None:
    request = {"model": MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": PROMPT}]}
    async with anthropic_sdk(daemon) as client:
        if stream:
            async with client.messages.stream(**request, tools=[SEARCH_TOOL]) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**request, tools=[SEARCH_TOOL])
    assert_anthropic_message(message)
    assert_search_went_upstream(fake)


async def test_anthropic_search_options_become_instructions_and_warnings(fake: FakeClaude, daemon: Daemon) -> None:
    tool = {
        **SEARCH_TOOL,
        "max_uses": 2,
        "allowed_domains": ["example1.org"],
        "user_location": {"type": "approximate", "city": "Paris", "country": "FR"},
    }
    async with anthropic_sdk(daemon) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=500, messages=[{"role": "user", "content": PROMPT}], tools=[tool]
        )
    assert message.usage.server_tool_use.web_search_requests == 1
    prompt = fake.calls_to("/completion")[-1].json["prompt"]
    assert "Search the web at most 2 times" in prompt
    assert "only results from these domains: example1.org" in prompt
    assert "The user is located in Paris, FR." in prompt


async def test_anthropic_bad_max_uses_is_a_400(fake: FakeClaude, daemon: Daemon) -> None:
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{**SEARCH_TOOL, "max_uses": 0}]}
    status, _, raw = await raw_post(daemon, "/v1/messages", body)
    assert status == 400 and "max_uses" in json.loads(raw)["error"]["message"]


# --------------------------------------------------------------------------- OpenAI chat


async def test_openai_chat_annotations_non_stream(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        completion = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], web_search_options={}
        )
    message = completion.choices[0].message
    [annotation] = message.annotations or []
    assert annotation.type == "url_citation" and annotation.url_citation.url == SOURCE
    span = annotation.url_citation
    assert message.content[span.start_index : span.end_index] == CITED
    assert "Sources:" not in message.content
    assert_search_went_upstream(fake)


async def test_openai_chat_annotations_stream(fake: FakeClaude, daemon: Daemon) -> None:
    content, annotations = "", []
    async with sdk(daemon) as client:
        chunks = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PROMPT}], web_search_options={}, stream=True
        )
        async for chunk in chunks:
            if chunk.choices:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                annotations += (delta.model_extra or {}).get("annotations") or []
    [annotation] = annotations
    span = annotation["url_citation"]
    assert annotation["type"] == "url_citation" and span["url"] == SOURCE
    assert content[span["start_index"] : span["end_index"]] == CITED
    assert_search_went_upstream(fake)


@pytest.mark.parametrize("stream", [False, True])
async def test_search_suffix_searches_and_lists_sources(fake: FakeClaude, daemon: Daemon, stream: bool) -> None:
    async with sdk(daemon) as client:
        models = {m.id async for m in client.models.list()}
        assert MODEL + "-search" in models
        request = {"model": MODEL + "-search", "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            chunks = await client.chat.completions.create(**request, stream=True)
            content = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            content = (await client.chat.completions.create(**request)).choices[0].message.content or ""
    assert CITED in content
    assert content.endswith(f"Sources:\n- [{QUERY} - result 1]({SOURCE})\n- [{QUERY} - result 2](https://example2.org/paris-weather)")
    assert_search_went_upstream(fake)


# --------------------------------------------------------------------------- Responses


async def test_responses_web_search_call_and_annotations_non_stream(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        response = await client.responses.create(model=MODEL, input=PROMPT, tools=[{"type": "web_search"}])
    kinds = [item.type for item in response.output]
    assert kinds == ["web_search_call", "message"], kinds
    call = response.output[0]
    assert call.status == "completed" and call.action.type == "search" and call.action.query == QUERY
    text = response.output[1].content[0]
    [annotation] = text.annotations
    assert annotation.type == "url_citation" and annotation.url == SOURCE
    assert text.text[annotation.start_index : annotation.end_index] == CITED
    assert_search_went_upstream(fake)


async def test_responses_web_search_call_and_annotations_stream(fake: FakeClaude, daemon: Daemon) -> None:
    types = []
    async with sdk(daemon) as client:
        async with client.responses.stream(model=MODEL, input=PROMPT, tools=[{"type": "web_search"}]) as events:
            async for event in events:
                types.append(event.type)
            response = await events.get_final_response()
    for phase in ("in_progress", "searching", "completed"):
        assert f"response.web_search_call.{phase}" in types
    assert "response.output_text.annotation.added" in types
    call, message = response.output
    assert call.type == "web_search_call" and call.action.query == QUERY
    text = message.content[0]
    [annotation] = text.annotations
    assert text.text[annotation.start_index : annotation.end_index] == CITED
    assert_search_went_upstream(fake)


# --------------------------------------------------------------------------- the operator's switch


async def test_off_refuses_a_request_asking_for_search(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"WEB_SEARCH": "off"})
    messages = [{"role": "user", "content": PROMPT}]
    anthropic_body = {"model": MODEL, "max_tokens": 50, "messages": messages, "tools": [SEARCH_TOOL]}
    for path, body in (
        ("/v1/messages", anthropic_body),
        ("/v1/chat/completions", {"model": MODEL, "messages": messages, "web_search_options": {}}),
        ("/v1/chat/completions", {"model": MODEL + "-search", "messages": messages}),
        ("/v1/responses", {"model": MODEL, "input": PROMPT, "tools": [{"type": "web_search"}]}),
    ):
        status, _, raw = await raw_post(daemon, path, body)
        assert status == 400, (path, raw)
        assert "WEB_SEARCH=off" in json.loads(raw)["error"]["message"]
    assert fake.calls_to("/completion") == []
    async with sdk(daemon) as client:  # not asking: answered, without search
        await client.chat.completions.create(model=MODEL, messages=messages)
    assert_no_search_upstream(fake)


async def test_on_request_searches_only_when_asked(fake: FakeClaude, daemon: Daemon) -> None:
    async with sdk(daemon) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    assert not completion.choices[0].message.annotations
    assert_no_search_upstream(fake)


async def test_always_sends_the_tool_and_setting_without_asking(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"WEB_SEARCH": "always", "METRICS_KEY": "metrics-key"})
    async with anthropic_sdk(daemon) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=500, messages=[{"role": "user", "content": PROMPT}]
        )
    assert message.usage.server_tool_use.web_search_requests == 1
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text.rstrip().endswith("(https://example2.org/paris-weather)")  # SEARCH_SOURCES=auto: a footer
    assert_search_went_upstream(fake)
    async with aiohttp.ClientSession() as http:
        async with http.get(daemon.url + "/metrics", headers={"Authorization": "Bearer metrics-key"}) as resp:
            metrics = await resp.text()
    assert 'claude2api_web_searches_total{dialect="anthropic"} 1.0' in metrics


async def test_always_with_sources_off_has_no_footer(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"WEB_SEARCH": "always", "SEARCH_SOURCES": "off"})
    async with sdk(daemon) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}])
    content = completion.choices[0].message.content or ""
    assert CITED in content and "Sources:" not in content
    assert completion.choices[0].message.annotations


# --------------------------------------------------------------------------- 2025 protocol


async def test_2025_flow_puts_enabled_web_search(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"UPSTREAM_PROTOCOL": "2025"})
    async with anthropic_sdk(daemon) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=500, messages=[{"role": "user", "content": PROMPT}], tools=[SEARCH_TOOL]
        )
    assert_anthropic_message(message)
    [put] = [c for c in fake.calls if c.method == "PUT" and "/chat_conversations/" in c.path]
    assert put.json == {"settings": {"enabled_web_search": True}}
    completion = fake.calls_to("/completion")[-1]
    assert completion.json["tools"][0] == WEB_TOOL
    assert fake.searches == [QUERY]


async def test_2025_flow_without_search_leaves_the_setting(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"UPSTREAM_PROTOCOL": "2025"})
    async with sdk(daemon) as client:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert not [c for c in fake.calls if c.method == "PUT" and "/chat_conversations/" in c.path]
    assert fake.calls_to("/completion")[-1].json["tools"] == []
