"""Unit tests of the Anthropic dialect: request parsing and the SSE / non-stream rendering."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from anthropic.types import Message as SDKMessage

from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import APIError
from claude2api.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Limit,
    Message,
    Stop,
    TextDelta,
    TextPart,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolResult,
)
from claude2api.dialects.anthropic import (
    THINKING_SIGNATURE,
    AnthropicCollector,
    AnthropicOptions,
    AnthropicStream,
    parse_count_tokens,
    parse_messages_request,
)
from claude2api.dialects.anthropic import error_body as anthropic_error_body
from claude2api.pipeline.transcript import build_prompt

CATALOG = ModelCatalog()
MODEL = "claude-sonnet-4-6"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PNG_B64 = base64.b64encode(PNG).decode()


def parse(**body: Any) -> tuple[ChatRequest, AnthropicOptions]:
    body.setdefault("model", MODEL)
    body.setdefault("max_tokens", 1024)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_messages_request(body, CATALOG)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def parse_messages(*messages: dict[str, Any], **body: Any) -> list[Message]:
    return parse(messages=list(messages), **body)[0].messages


def parse_error(body: object) -> APIError:
    with pytest.raises(APIError) as info:
        parse_messages_request(body, CATALOG)
    return info.value


# ---------------------------------------------------------------------------------------------
# Request parsing


def test_minimal_request() -> None:
    request, options = parse()
    assert request.model == MODEL and request.upstream_model == MODEL
    assert request.messages == [Message("user", [TextPart("hi")])]
    assert not request.stream and request.thinking is None and request.stop == []
    assert request.max_tokens == 1024
    assert options == AnthropicOptions(show_thinking=False)


def test_missing_model_and_max_tokens_are_defaulted() -> None:
    request, _ = parse_messages_request({"messages": [{"role": "user", "content": "hi"}]}, CATALOG)
    assert request.model == CATALOG.default and request.max_tokens is None


def test_unknown_fields_are_ignored() -> None:
    request, _ = parse(
        temperature=0.2,
        top_p=0.9,
        top_k=5,
        metadata={"user_id": "u"},
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto"},
        service_tier="auto",
        container="c",
        output_config={"effort": "high"},
        whatever=[1, 2],
    )
    assert request.model == MODEL


def test_stream_stop_sequences_and_max_tokens() -> None:
    request, _ = parse(stream=True, stop_sequences=["END", "", "STOP"], max_tokens=7)
    assert request.stream and request.stop == ["END", "STOP"] and request.max_tokens == 7


BAD_REQUESTS: list[tuple[object, str]] = [
    ([], "JSON object"),
    ({"model": MODEL}, "messages"),
    ({"messages": None}, "messages"),
    ({"messages": {"role": "user"}}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": ["hi"]}, "messages.0"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [user("text")]}, "messages.0.content.0"),
    ({"messages": [user({"type": "audio"})]}, "messages.0.content.0.type"),
    ({"messages": [user({"type": ["text"]})]}, "messages.0.content.0.type"),
    ({"messages": [user({"type": "text", "text": 5})]}, "messages.0.content.0.text"),
    ({"messages": [user({"type": "image"})]}, "messages.0.content.0.source"),
    (
        {
            "messages": [
                user(
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}}
                )
            ]
        },
        "messages.0.content.0.source.data",
    ),
    (
        {
            "messages": [
                user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}})
            ]
        },
        "messages.0.content.0.source.data",
    ),
    (
        {
            "messages": [
                user(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PNG_B64},
                    }
                )
            ]
        },
        "media_type",
    ),
    ({"messages": [user({"type": "image", "source": {"type": "url", "url": "ftp://x/a.png"}})]}, "url"),
    ({"messages": [user({"type": "image", "source": {"type": "url"}})]}, "url"),
    ({"messages": [user({"type": "image", "source": {"type": "file", "file_id": "f"}})]}, "Files API"),
    (
        {
            "messages": [
                user(
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/zip", "data": "UEsDBA=="},
                    }
                )
            ]
        },
        "unsupported document type application/zip",
    ),
    ({"messages": [user({"type": "tool_result", "tool_use_id": "t", "content": 5})]}, "content.0.content"),
    ({"messages": [{"role": "user", "content": "x"}], "system": 5}, "system"),
    ({"messages": [{"role": "user", "content": "x"}], "system": [{"type": "image"}]}, "system.0"),
    ({"messages": [{"role": "user", "content": "x"}], "system": [{"type": "text"}]}, "system.0.text"),
    ({"messages": [{"role": "user", "content": "x"}], "model": 5}, "model"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": True}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": "END"}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}], "stop_sequences": [1]}, "stop_sequences"),
    ({"messages": [{"role": "user", "content": "x"}], "thinking": "on"}, "thinking.type"),
    ({"messages": [{"role": "user", "content": "x"}], "thinking": {"type": "maybe"}}, "thinking.type"),
    (
        {
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": -1},
        },
        "thinking.budget_tokens",
    ),
    (
        {
            "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": "big"},
        },
        "thinking.budget_tokens",
    ),
]


@pytest.mark.parametrize(("body", "mentions"), BAD_REQUESTS)
def test_bad_requests_are_400_invalid_request_error(body: object, mentions: str) -> None:
    error = parse_error(body)
    assert error.status == 400
    assert mentions in error.message
    assert anthropic_error_body(error)["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404_not_found_error() -> None:
    error = parse_error({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert error.status == 404 and "gpt-4o" in error.message
    assert anthropic_error_body(error)["error"]["type"] == "not_found_error"


def test_system_as_string() -> None:
    messages = parse_messages({"role": "user", "content": "hi"}, system="Be brief")
    assert messages[0] == Message("system", [TextPart("Be brief")])


def test_system_as_blocks() -> None:
    system = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": ""},
        {"type": "text", "text": "Be brief."},
    ]
    messages = parse_messages({"role": "user", "content": "hi"}, system=system)
    assert messages[0] == Message("system", [TextPart("You are Claude Code."), TextPart("Be brief.")])


@pytest.mark.parametrize("system", [None, "", []])
def test_empty_system_is_left_out(system: object) -> None:
    assert parse_messages({"role": "user", "content": "hi"}, system=system) == [
        Message("user", [TextPart("hi")])
    ]


def test_text_blocks_and_cache_control() -> None:
    messages = parse_messages(
        user(
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "b"},
        )
    )
    assert messages == [Message("user", [TextPart("a"), TextPart("b")])]


@pytest.mark.parametrize("data", [PNG_B64, PNG_B64.rstrip("="), PNG_B64[:8] + "\n" + PNG_B64[8:]])
def test_base64_image_is_decoded(data: str) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": data}
    [message] = parse_messages(user({"type": "text", "text": "what?"}, {"type": "image", "source": source}))
    assert message.parts == [TextPart("what?"), ImagePart(media_type="image/png", data=PNG)]


def test_base64_image_without_media_type_is_sniffed() -> None:
    [message] = parse_messages(user({"type": "image", "source": {"type": "base64", "data": PNG_B64}}))
    assert message.parts == [ImagePart(media_type="image/png", data=PNG)]


def test_url_image_is_kept_for_download() -> None:
    source = {"type": "url", "url": "https://example.com/cat.jpg"}
    [message] = parse_messages(user({"type": "image", "source": source}))
    assert message.parts == [ImagePart(url="https://example.com/cat.jpg")]


@pytest.mark.parametrize(
    ("thinking", "expected"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, Thinking("low", 1024)),
        ({"type": "enabled", "budget_tokens": 4095}, Thinking("low", 4095)),
        ({"type": "enabled", "budget_tokens": 4096}, Thinking("medium", 4096)),
        ({"type": "enabled", "budget_tokens": 16384}, Thinking("high", 16384)),
        ({"type": "enabled", "budget_tokens": 40000}, Thinking("xhigh", 40000)),
        ({"type": "enabled"}, Thinking(None)),
        ({"type": "adaptive"}, Thinking(None)),
        ({"type": "adaptive", "display": "summarized"}, Thinking(None)),
    ],
)
def test_thinking_turns_thinking_on(thinking: dict[str, Any], expected: Thinking) -> None:
    request, options = parse(thinking=thinking)
    assert request.thinking == expected and options.show_thinking


def test_thinking_disabled() -> None:
    request, options = parse(thinking={"type": "disabled"})
    assert request.thinking is None and not options.show_thinking


def test_thinking_display_omitted_thinks_without_showing() -> None:
    request, options = parse(thinking={"type": "adaptive", "display": "omitted"})
    assert request.thinking == Thinking(None) and not options.show_thinking


def test_claude_code_thinking_and_effort() -> None:
    """Claude Code 2.1.197: adaptive thinking with ``output_config.effort``; effort alone keeps thinking off."""
    request, options = parse(thinking={"type": "adaptive"}, output_config={"effort": "high"})
    assert request.thinking == Thinking("high") and options.show_thinking
    request, options = parse(output_config={"effort": "low"})
    assert request.thinking == Thinking("low", enabled=False) and not options.show_thinking
    request, _ = parse(thinking={"type": "enabled", "budget_tokens": 2000}, output_config={"effort": "max"})
    assert request.thinking == Thinking("max", 2000)


@pytest.mark.parametrize("output_config", ["high", {"effort": "extreme"}, {"effort": 3}])
def test_output_config_effort_is_checked(output_config: object) -> None:
    with pytest.raises(APIError) as info:
        parse(output_config=output_config)
    assert info.value.status == 400 and info.value.param in ("output_config", "output_config.effort")


def test_system_messages_inside_messages() -> None:
    """Claude Code sends ``role: system`` mid-conversation: system text at that point of the transcript."""
    request, _ = parse_messages_request(
        {
            "model": MODEL,
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "metadata": {"user_id": "u"},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Agents: A, B"}]},
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": "go"},
            ],
        },
        CATALOG,
    )
    assert [m.role for m in request.messages] == ["user", "system", "system", "user"]
    prompt, _ = build_prompt(request.messages)
    assert prompt == "Human: hi\n\nSystem: Agents: A, B\n\nSystem: Be brief\n\nHuman: go\n\n"
    with pytest.raises(APIError) as info:
        parse_messages_request({"model": MODEL, "messages": [{"role": "system", "content": [{"type": "image"}]}]}, CATALOG)
    assert info.value.status == 400 and str(info.value.param).startswith("messages.0.content.0")


def test_think_model_suffix() -> None:
    request, options = parse(model=MODEL + "-think")
    assert request.model == MODEL + "-think" and request.upstream_model == MODEL
    assert request.thinking == Thinking("max") and options.show_thinking  # -think: the model's strongest
    request, _ = parse(model=MODEL + "-think-low")
    assert request.thinking == Thinking("low") and request.upstream_model == MODEL
    request, options = parse(model=MODEL + "-think", thinking={"type": "disabled"})
    assert request.thinking is None and not options.show_thinking
    request, _ = parse(model=MODEL + "-think", thinking={"type": "enabled", "budget_tokens": 2000})
    assert request.thinking == Thinking("low", 2000)


def test_final_assistant_message_is_a_prefill_paragraph() -> None:
    messages = parse_messages(
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": [{"type": "text", "text": "The colour is"}]},
        system="Be brief",
    )
    prompt, _ = build_prompt(messages)
    assert prompt == "System: Be brief\n\nHuman: Name a colour.\n\nAssistant: The colour is\n\n"


def test_round_tripped_thinking_is_dropped() -> None:
    messages = parse_messages(
        {"role": "user", "content": "one"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "secret", "signature": "EqQBCg"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "answer one"},
            ],
        },
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "no signature"}]},
        {"role": "user", "content": "three"},
    )
    assert messages == [
        Message("user", [TextPart("one")]),
        Message("assistant", [TextPart("answer one")]),
        Message("user", [TextPart("two")]),
        Message("user", [TextPart("three")]),
    ]


def test_tool_blocks_become_tool_parts() -> None:
    messages = parse_messages(
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        user(
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15°C"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "is_error": True,
                "content": [{"type": "text", "text": "timeout"}],
            },
            {
                "type": "tool_result",
                "tool_use_id": "toolu_3",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                    }
                ],
            },
            {"type": "tool_result", "tool_use_id": "toolu_4"},
        ),
    )
    assert messages[1].parts == [
        TextPart("Let me check."),
        ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
    ]
    assert messages[2].parts == [
        ToolResult("toolu_1", [TextPart("15°C")]),
        ToolResult("toolu_2", [TextPart("timeout")], is_error=True),
        ToolResult("toolu_3", [ImagePart(media_type="image/png", data=PNG)]),
        ToolResult("toolu_4", []),
    ]


def test_text_documents_become_documents_and_content_becomes_text() -> None:
    [message] = parse_messages(
        user(
            {
                "type": "document",
                "title": "notes.txt",
                "source": {"type": "text", "media_type": "text/plain", "data": "plain text"},
            },
            {
                "type": "document",
                "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]},
            },
            {"type": "document", "source": {"type": "content", "content": "as a string"}},
        )
    )
    assert message.parts == [
        DocumentPart(media_type="text/plain", text="plain text", filename="notes.txt"),
        TextPart("chunk"),
        TextPart("as a string"),
    ]


def test_count_tokens_body() -> None:
    request = parse_count_tokens(
        {
            "model": MODEL + "-think",
            "system": "S",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {}}],
        },
        CATALOG,
    )
    assert request.messages == [Message("system", [TextPart("S")]), Message("user", [TextPart("hi")])]
    assert request.thinking == Thinking("max")
    with pytest.raises(APIError) as info:
        parse_count_tokens({"model": MODEL}, CATALOG)
    assert info.value.status == 400


# ---------------------------------------------------------------------------------------------
# Rendering


def stream(
    show_thinking: bool = True, stops: list[str] | None = None, max_tokens: int | None = None
) -> AnthropicStream:
    return AnthropicStream(
        model=MODEL,
        options=AnthropicOptions(show_thinking=show_thinking),
        prompt_tokens=11,
        stops=stops or [],
        max_tokens=max_tokens,
    )


def collector(show_thinking: bool = True, stops: list[str] | None = None, max_tokens: int | None = None):
    return AnthropicCollector(
        model=MODEL,
        options=AnthropicOptions(show_thinking=show_thinking),
        prompt_tokens=11,
        stops=stops or [],
        max_tokens=max_tokens,
    )


def render(renderer: AnthropicStream, events: list[Any]) -> bytes:
    out = b"".join(renderer.feed(event) for event in events)
    return out + renderer.finish()


def frames(raw: bytes) -> list[dict[str, Any]]:
    """The data of each SSE frame, checking each has exactly an ``event:`` and a ``data:`` line, equal."""
    text = raw.decode()
    assert text.endswith("\n\n")
    parsed = []
    for frame in text[:-2].split("\n\n"):
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert event_line[7:] == data["type"]
        parsed.append(data)
    return parsed


def check_sequence(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assert the Messages stream grammar; returns the blocks as an SDK would accumulate them."""
    assert [e["type"] for e in events[:2]] == ["message_start", "ping"]
    usage = events[0]["message"]["usage"]
    assert type(usage["input_tokens"]) is int and usage["output_tokens"] == 1
    assert events[0]["message"]["content"] == [] and events[0]["message"]["id"].startswith("msg_")
    assert [e["type"] for e in events[-2:]] == ["message_delta", "message_stop"]
    final = events[-2]
    assert type(final["usage"]["output_tokens"]) is int and type(final["usage"]["input_tokens"]) is int
    assert set(final["delta"]) == {"stop_reason", "stop_sequence"}
    blocks: list[dict[str, Any]] = []
    open_index = None
    for event in events[2:-2]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None and event["index"] == len(blocks)
            blocks.append(dict(event["content_block"]))
            open_index = event["index"]
        elif kind == "content_block_delta":
            assert event["index"] == open_index
            delta, block = event["delta"], blocks[open_index]
            if delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                field = {"text_delta": "text", "thinking_delta": "thinking"}[delta["type"]]
                assert block["type"] == field
                block[field] += delta[field]
        else:
            assert kind == "content_block_stop" and event["index"] == open_index
            open_index = None
    assert open_index is None
    return blocks


def test_text_stream() -> None:
    events = frames(render(stream(), [TextDelta("Hel"), TextDelta("lo"), Stop()]))
    assert check_sequence(events) == [{"type": "text", "text": "Hello"}]
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[0]["message"]["usage"]["input_tokens"] == 11
    assert events[0]["message"]["model"] == MODEL


def test_thinking_then_text_stream() -> None:
    renderer = stream()
    raw = render(renderer, [ThinkingDelta("Let me "), ThinkingDelta("think."), TextDelta("Hi"), Stop()])
    events = frames(raw)
    assert check_sequence(events) == [
        {"type": "thinking", "thinking": "Let me think.", "signature": THINKING_SIGNATURE},
        {"type": "text", "text": "Hi"},
    ]
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    stop_at = next(i for i, e in enumerate(events) if e["type"] == "content_block_stop")
    assert events[stop_at - 1]["delta"]["type"] == "signature_delta"
    assert events[-2]["usage"]["output_tokens"] > 1


def test_a_new_block_whenever_the_kind_changes() -> None:
    events = frames(
        render(stream(), [ThinkingDelta("a"), TextDelta("b"), ThinkingDelta("c"), TextDelta("d")])
    )
    blocks = check_sequence(events)
    assert [(b["type"], b.get("text") or b.get("thinking")) for b in blocks] == [
        ("thinking", "a"),
        ("text", "b"),
        ("thinking", "c"),
        ("text", "d"),
    ]


def test_thinking_not_asked_for_is_not_shown() -> None:
    events = frames(render(stream(show_thinking=False), [ThinkingDelta("hidden"), TextDelta("Hi"), Stop()]))
    assert check_sequence(events) == [{"type": "text", "text": "Hi"}]
    assert b"hidden" not in render(stream(show_thinking=False), [ThinkingDelta("hidden"), TextDelta("Hi")])


def test_empty_reply_still_has_a_text_block() -> None:
    assert check_sequence(frames(render(stream(), [Stop()]))) == [{"type": "text", "text": ""}]
    blocks = check_sequence(frames(render(stream(), [ThinkingDelta("t"), Stop()])))
    assert [b["type"] for b in blocks] == ["thinking", "text"]


def test_limit_event_emits_only_the_start() -> None:
    renderer = stream()
    start = frames(renderer.feed(Limit(exceeded=False, windows=())))
    assert [e["type"] for e in start] == ["message_start", "ping"]
    rest = frames(renderer.feed(TextDelta("x")) + renderer.finish())
    check_sequence(start + rest)


def test_stop_sequence_cuts_the_stream() -> None:
    renderer = stream(stops=["END"])
    raw = renderer.feed(TextDelta("alpha E")) + renderer.feed(TextDelta("ND beta"))
    assert renderer.done
    assert renderer.feed(TextDelta("more")) == b"" and renderer.finish() == b""
    events = frames(raw)
    assert check_sequence(events) == [{"type": "text", "text": "alpha "}]
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_stop_sequences_do_not_apply_to_thinking() -> None:
    events = frames(render(stream(stops=["END"]), [ThinkingDelta("END?"), TextDelta("ok"), Stop()]))
    assert check_sequence(events)[0]["thinking"] == "END?"
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_held_back_prefix_is_flushed_at_the_end() -> None:
    events = frames(render(stream(stops=["END"]), [TextDelta("the E"), Stop()]))
    assert check_sequence(events) == [{"type": "text", "text": "the E"}]


def test_max_tokens_is_a_soft_cap() -> None:
    renderer = stream(max_tokens=3)
    raw = b"".join(renderer.feed(TextDelta("word ")) for _ in range(20))
    assert renderer.done
    events = frames(raw)
    text = check_sequence(events)[0]["text"]
    assert 0 < len(text) < 100
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"]["output_tokens"] <= 3


@pytest.mark.parametrize("reason", ["refusal", "max_tokens", "pause_turn"])
def test_upstream_stop_reason_passes_through(reason: str) -> None:
    events = frames(render(stream(), [TextDelta("x"), Stop(reason)]))
    assert events[-2]["delta"]["stop_reason"] == reason


def test_finish_without_stop_ends_the_turn() -> None:
    events = frames(render(stream(), [TextDelta("x")]))
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_unicode_and_escaping() -> None:
    text = 'Grüße "quoted"\nline\\ 世界 🎉'
    raw = render(stream(), [TextDelta(text), Stop()])
    assert "世界".encode() in raw and b"\\u" not in raw
    assert check_sequence(frames(raw)) == [{"type": "text", "text": text}]


def test_error_frame_ends_the_stream() -> None:
    renderer = stream()
    raw = renderer.feed(TextDelta("partial"))
    error = renderer.error_frame("Overloaded", "overloaded_error")
    assert error.startswith(b"event: error\n")
    assert frames(error) == [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    ]
    assert renderer.feed(TextDelta("more")) == b"" and renderer.finish() == b""
    assert b"message_stop" not in raw + error
    assert frames(stream().error_frame("x"))[0]["error"]["type"] == "api_error"


def test_keepalive_is_a_ping() -> None:
    renderer = stream()
    assert [e["type"] for e in frames(renderer.keepalive())] == ["message_start", "ping"]
    assert frames(renderer.keepalive()) == [{"type": "ping"}]
    renderer.feed(Stop())
    assert renderer.keepalive() == b""


def test_message_ids_are_unique_and_long() -> None:
    ids = {stream().id for _ in range(3)}
    assert len(ids) == 3 and all(i.startswith("msg_") and len(i) >= 28 for i in ids)


def test_collector() -> None:
    renderer = collector()
    for event in [
        Limit(exceeded=False, windows=()),
        ThinkingDelta("Let me "),
        ThinkingDelta("think."),
        TextDelta("Hello"),
        TextDelta(" there!"),
        Stop(),
    ]:
        renderer.feed(event)
    result = renderer.result()
    assert result["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": THINKING_SIGNATURE},
        {"type": "text", "text": "Hello there!"},
    ]
    assert result["stop_reason"] == "end_turn" and result["stop_sequence"] is None
    assert result["usage"]["input_tokens"] == 11 and result["usage"]["output_tokens"] > 0
    assert result["id"].startswith("msg_") and result["model"] == MODEL
    message = SDKMessage.model_validate(result)
    assert message.content[1].text == "Hello there!"


def test_collector_matches_the_stream() -> None:
    events = [ThinkingDelta("a"), TextDelta("b"), ThinkingDelta("c"), TextDelta("d END e"), Stop()]
    renderer = collector(stops=["END"])
    for event in events:
        renderer.feed(event)
    result = renderer.result()
    streamed = frames(render(stream(stops=["END"]), events))
    assert result["content"] == check_sequence(streamed)
    assert (result["stop_reason"], result["stop_sequence"]) == ("stop_sequence", "END")
    assert result["usage"] == streamed[-2]["usage"]


def test_collector_hidden_thinking_cap_and_empty_reply() -> None:
    hidden = collector(show_thinking=False)
    hidden.feed(ThinkingDelta("secret"))
    hidden.feed(TextDelta("x"))
    assert hidden.result()["content"] == [{"type": "text", "text": "x"}]
    capped = collector(max_tokens=2)
    for _ in range(10):
        capped.feed(TextDelta("word "))
    assert capped.done and capped.result()["stop_reason"] == "max_tokens"
    empty = collector()
    assert empty.result()["content"] == [{"type": "text", "text": ""}]
