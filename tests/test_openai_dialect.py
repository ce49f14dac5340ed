"""Unit tests of the OpenAI dialect: request parsing, SSE/non-stream rendering, stop strings, tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai._streaming import SSEDecoder
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import APIError
from claude2api.core.stops import StopCutter
from claude2api.core.tokens import TokenCounter, estimate_request_tokens, estimate_tokens
from claude2api.core.types import (
    ChatRequest,
    ImagePart,
    Limit,
    Message,
    Stop,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCall,
    ToolResult,
)
from claude2api.dialects.openai import (
    OpenAICollector,
    OpenAIOptions,
    OpenAIStream,
    models_list,
    parse_chat_request,
)
from claude2api.dialects.openai import error_body as openai_error_body

CATALOG = ModelCatalog()
MODEL = "claude-sonnet-4-6"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def parse(**body: Any) -> tuple[ChatRequest, OpenAIOptions]:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat_request(body, CATALOG)


def parse_error(body: object) -> APIError:
    with pytest.raises(APIError) as info:
        parse_chat_request(body, CATALOG)
    return info.value


# ---------------------------------------------------------------------------------------------
# Request parsing


def test_minimal_request() -> None:
    request, options = parse()
    assert request.model == MODEL and request.upstream_model == MODEL
    assert request.messages == [Message("user", [TextPart("hi")])]
    assert (
        not request.stream and request.thinking is None and request.stop == [] and request.max_tokens is None
    )
    assert options == OpenAIOptions(include_usage=False, response_format=None, thinking_output=None)


@pytest.mark.parametrize("model", [None, ""])
def test_missing_model_is_default(model: str | None) -> None:
    request, _ = parse(model=model)
    assert request.model == CATALOG.default and request.upstream_model == CATALOG.default


def test_unknown_fields_are_ignored() -> None:
    request, _ = parse(
        user={"id": "open-webui"},
        temperature=0.3,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        logprobs=True,
        metadata={"a": "b"},
        whatever=[1, 2],
    )
    assert request.model == MODEL


BAD_REQUESTS: list[tuple[object, str | None]] = [
    ([], None),
    ("hi", None),
    ({"model": MODEL, "messages": None}, "messages"),
    ({"model": MODEL, "messages": {"role": "user"}}, "messages"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 5}]}, "messages[1].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}]}, "messages[0].content"),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio"}]}]},
        "messages[0].content[1]",
    ),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}, "messages[0].content[0].file"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": ["plain"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
    ({"model": 5, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"stream": "yes"}, "stream"),
    ({"n": 2}, "n"),
    ({"n": "1"}, "n"),
    ({"n": True}, "n"),
    ({"stop": 5}, "stop"),
    ({"stop": ["a", 1]}, "stop"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"max_completion_tokens": -1}, "max_completion_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"stream_options": True}, "stream_options"),
    ({"reasoning_effort": 3}, "reasoning_effort"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
]


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS)
def test_bad_requests(body: object, param: str | None) -> None:
    if isinstance(body, dict):
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}
    error = parse_error(body)
    assert error.status == 400
    assert error.param == param
    assert openai_error_body(error)["error"]["type"] == "invalid_request_error"


def test_missing_messages() -> None:
    error = parse_error({"model": MODEL})
    assert (error.status, error.param) == (400, "messages")


def test_unknown_model_is_404_model_not_found() -> None:
    error = parse_error({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert error.status == 404
    assert openai_error_body(error) == {
        "error": {
            "message": "The model `gpt-4o` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_roles() -> None:
    request, _ = parse(
        messages=[
            {"role": "system", "content": "s"},
            {"role": "developer", "content": [{"type": "text", "text": "d"}]},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
            {"role": "tool", "tool_call_id": "call_1", "content": "t"},
            {"role": "function", "name": "f", "content": "f"},
        ]
    )
    assert [(m.role, m.text) for m in request.messages] == [
        ("system", "s"),
        ("system", "d"),
        ("user", "u"),
        ("assistant", "a"),
        ("tool", ""),
        ("tool", ""),
    ]
    assert request.messages[4].parts == [ToolResult("toolu_1", [TextPart("t")])]
    assert request.messages[5].parts == [ToolResult("function:f", [TextPart("f")])]


def test_assistant_tool_calls_become_tool_call_parts() -> None:
    request, _ = parse(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"a":1}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": {"tz": "UTC"}},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
    )
    assert request.messages[1].parts == [
        ToolCall("toolu_1", "get_weather", '{"a":1}'),
        ToolCall("toolu_2", "get_time", '{"tz":"UTC"}'),
    ]
    assert request.messages[2].parts == [ToolResult("toolu_1", [TextPart("sunny")])]


def test_assistant_null_content_without_tool_calls() -> None:
    request, _ = parse(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": None}])
    assert request.messages[1] == Message("assistant", [TextPart("")])


def test_echoed_reasoning_is_stripped_from_history() -> None:
    request, _ = parse(
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "<think>\nplan\n</think>\n\nAnswer one",
                "reasoning_content": "plan",
                "reasoning": "plan",
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "<thinking>x</thinking>Two <think>y</think>"}],
            },
            {"role": "user", "content": "<think>user text stays</think>"},
        ]
    )
    assert request.messages[1].text == "Answer one"
    assert request.messages[2].text == "Two "
    assert request.messages[3].text == "<think>user text stays</think>"


def test_refusal_part_is_text() -> None:
    request, _ = parse(
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        ]
    )
    assert request.messages[1].text == "no"


def image_message(url: object) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": url}],
    }


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(PNG).decode(),
        base64.urlsafe_b64encode(b"\xfb\xff\xfe" + PNG).decode(),
        base64.b64encode(PNG).decode().rstrip("="),
        base64.b64encode(PNG).decode()[:8] + "\n" + base64.b64encode(PNG).decode()[8:],
    ],
)
def test_data_url_is_decoded(encoded: str) -> None:
    request, _ = parse(messages=[image_message({"url": f"data:image/PNG;base64,{encoded}", "detail": "low"})])
    text, image = request.messages[0].parts
    assert text == TextPart("what?")
    assert isinstance(image, ImagePart) and image.media_type == "image/png" and image.url is None
    assert image.data in (PNG, b"\xfb\xff\xfe" + PNG)


@pytest.mark.parametrize("url", ["https://example.com/cat.jpg", "http://10.0.0.1:8080/a.png?x=1"])
def test_http_url_is_kept(url: str) -> None:
    request, _ = parse(messages=[image_message({"url": url})])
    assert request.messages[0].parts[1] == ImagePart(url=url)


def test_image_url_as_bare_string() -> None:
    request, _ = parse(messages=[image_message("https://example.com/cat.jpg")])
    assert request.messages[0].parts[1] == ImagePart(url="https://example.com/cat.jpg")


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,!!!not-base64!!!",
        "data:image/png;base64,",
        "data:image/png;base64,A",
        "data:image/png,rawbytes",
        "data:text/plain;base64,aGVsbG8=",
        "data:;base64,aGVsbG8=",
        "data:image/png;base64",
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "https://",
        "cat.jpg",
    ],
)
def test_bad_image_urls(url: str) -> None:
    error = parse_error({"model": MODEL, "messages": [image_message({"url": url})]})
    assert (error.status, error.param) == (400, "messages[0].content[1]")


def test_think_suffix_and_reasoning_effort() -> None:
    request, _ = parse(model=MODEL + "-think")
    assert request.model == MODEL + "-think" and request.upstream_model == MODEL
    assert request.thinking is not None and request.thinking.effort == "max"  # the model's strongest
    request, _ = parse(model=MODEL + "-think-medium")
    assert request.thinking is not None and request.thinking.effort == "medium" and request.upstream_model == MODEL

    request, _ = parse(model=MODEL + "-think", reasoning_effort="low")
    assert request.thinking is not None and request.thinking.effort == "low"

    request, _ = parse(reasoning_effort="medium")
    assert request.upstream_model == MODEL
    assert request.thinking is not None and request.thinking.effort == "medium"

    request, _ = parse(reasoning_effort="minimal")
    assert request.thinking is not None and request.thinking.effort == "minimal"


def test_reasoning_effort_none_turns_thinking_off_even_for_think_model() -> None:
    assert parse(model=MODEL + "-think", reasoning_effort="none")[0].thinking is None
    assert parse(reasoning_effort="none")[0].thinking is None


def test_stop_stream_and_usage_options() -> None:
    request, options = parse(stop="END", stream=True, stream_options={"include_usage": True})
    assert request.stop == ["END"] and request.stream and options.include_usage
    assert parse(stop=["a", "", "b"])[0].stop == ["a", "b"]
    assert parse(stop=None)[0].stop == []
    assert not parse(stream_options={})[1].include_usage


def test_max_completion_tokens_wins() -> None:
    assert parse(max_tokens=10)[0].max_tokens == 10
    assert parse(max_completion_tokens=20)[0].max_tokens == 20
    assert parse(max_tokens=10, max_completion_tokens=20)[0].max_tokens == 20


def test_response_format() -> None:
    request, options = parse(response_format={"type": "text"})
    assert options.response_format is None and request.instructions == []

    request, options = parse(response_format={"type": "json_object"})
    assert options.response_format == "json_object"
    assert len(request.instructions) == 1 and "JSON object" in request.instructions[0]

    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request, options = parse(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )
    assert options.response_format == "json_schema"
    assert json.dumps(schema, ensure_ascii=False) in request.instructions[0]


# ---------------------------------------------------------------------------------------------
# Streaming


def sse_events(raw: bytes) -> list[str]:
    """The data payloads, as openai-python's own SSE decoder sees them."""
    assert b"event:" not in raw
    return [event.data for event in SSEDecoder().iter_bytes(iter([raw]))]


def run_stream(
    events: list[Any],
    *,
    include_usage: bool = False,
    thinking_output: str = "reasoning_content",
    stops: list[str] | None = None,
    max_tokens: int | None = None,
    response_format: str | None = None,
) -> tuple[OpenAIStream, list[dict[str, Any]]]:
    stream = OpenAIStream(
        MODEL,
        OpenAIOptions(include_usage=include_usage, response_format=response_format),
        thinking_output,
        12,
        stops or [],
        max_tokens,
    )
    raw = b""
    for event in events:
        if stream.done:
            break
        raw += stream.feed(event)
    raw += stream.finish()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    datas = sse_events(raw)
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    check_chunks(chunks, include_usage)
    return stream, chunks


def check_chunks(chunks: list[dict[str, Any]], include_usage: bool) -> None:
    """The stream invariants of client-contract.md section 1.6."""
    first = chunks[0]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["id"].startswith("chatcmpl-") and len(first["id"]) == len("chatcmpl-") + 32
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["id"] == first["id"] and chunk["created"] == first["created"]
        assert chunk["model"] == MODEL and chunk["object"] == "chat.completion.chunk"
        assert chunk["system_fingerprint"] is None
        if include_usage:
            assert "usage" in chunk
        else:
            assert chunk.get("usage") is None
    choice_chunks = [c for c in chunks if c["choices"]]
    *body, last = choice_chunks
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] is not None
    for chunk in body:
        (choice,) = chunk["choices"]
        assert choice["finish_reason"] is None and choice["logprobs"] is None and choice["index"] == 0
        delta = choice["delta"]
        assert not ("content" in delta and {"reasoning_content", "reasoning"} & delta.keys())
    if include_usage:
        usage_chunk = chunks[-1]
        assert usage_chunk["choices"] == [] and chunks[-2] is last
        usage = usage_chunk["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] == 12
    else:
        assert chunks[-1] is last
        assert all("usage" not in c for c in chunks)


def contents(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def finish_reason(chunks: list[dict[str, Any]]) -> str:
    return [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"]


def test_stream_basic_with_usage() -> None:
    stream, chunks = run_stream(
        [Limit(exceeded=False, windows=()), TextDelta("Hello"), TextDelta(" there!"), Stop("end_turn")],
        include_usage=True,
    )
    assert contents(chunks) == "Hello there!"
    assert finish_reason(chunks) == "stop"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert stream.done


def test_stream_without_usage_has_no_usage_chunk() -> None:
    _, chunks = run_stream([TextDelta("Hi"), Stop()])
    assert contents(chunks) == "Hi"


def test_stream_without_stop_event_finishes_with_stop() -> None:
    _, chunks = run_stream([TextDelta("partial")])
    assert finish_reason(chunks) == "stop" and contents(chunks) == "partial"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("user_canceled", "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reason_mapping(reason: str, expected: str) -> None:
    _, chunks = run_stream([TextDelta("x"), Stop(reason)])
    assert finish_reason(chunks) == expected


def test_role_chunk_is_first_and_sent_once() -> None:
    stream = OpenAIStream(
        MODEL, OpenAIOptions(), "hidden", 1, [], None, created=123, completion_id="chatcmpl-x"
    )
    role = stream.role_chunk()
    assert json.loads(sse_events(role)[0])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert stream.role_chunk() == b""
    keepalive = json.loads(sse_events(stream.keepalive())[0])
    assert keepalive["choices"] == [
        {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": None}
    ]
    assert keepalive["id"] == "chatcmpl-x" and keepalive["created"] == 123


def test_keepalive_before_content_starts_with_role() -> None:
    stream = OpenAIStream(MODEL, OpenAIOptions(), "hidden", 1, [], None)
    datas = sse_events(stream.keepalive())
    assert len(datas) == 2 and json.loads(datas[0])["choices"][0]["delta"]["role"] == "assistant"


def test_error_frame() -> None:
    stream = OpenAIStream(MODEL, OpenAIOptions(), "hidden", 1, [], None)
    stream.feed(TextDelta("x"))
    datas = sse_events(stream.error_frame("upstream broke"))
    assert datas == [
        '{"error":{"message":"upstream broke","type":"server_error","param":null,"code":null}}',
        "[DONE]",
    ]
    assert stream.finish() == b"" and stream.feed(TextDelta("y")) == b""


THINKING_EVENTS = [
    ThinkingDelta("Let me "),
    ThinkingDelta("think."),
    TextDelta("Hello"),
    TextDelta("!"),
    Stop(),
]


def test_thinking_reasoning_content() -> None:
    _, chunks = run_stream(THINKING_EVENTS, include_usage=True)
    assert contents(chunks, "reasoning_content") == "Let me think."
    assert contents(chunks) == "Hello!"
    assert all("reasoning" not in c["choices"][0]["delta"] for c in chunks if c["choices"])
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_thinking_reasoning() -> None:
    _, chunks = run_stream(THINKING_EVENTS, thinking_output="reasoning")
    assert contents(chunks, "reasoning") == "Let me think." and contents(chunks) == "Hello!"
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks if c["choices"])


def test_thinking_both() -> None:
    _, chunks = run_stream(THINKING_EVENTS, thinking_output="both")
    deltas = [c["choices"][0]["delta"] for c in chunks[1:3]]
    assert deltas == [
        {"reasoning_content": "Let me ", "reasoning": "Let me "},
        {"reasoning_content": "think.", "reasoning": "think."},
    ]
    assert contents(chunks) == "Hello!"


def test_thinking_think_tags() -> None:
    _, chunks = run_stream(THINKING_EVENTS, thinking_output="think_tags")
    assert contents(chunks) == "<think>\nLet me think.\n</think>\n\nHello!"


def test_think_tags_closed_at_stop_without_text() -> None:
    _, chunks = run_stream([ThinkingDelta("hmm"), Stop()], thinking_output="think_tags")
    assert contents(chunks) == "<think>\nhmm\n</think>\n\n"


def test_thinking_hidden() -> None:
    _, chunks = run_stream(THINKING_EVENTS, thinking_output="hidden", include_usage=True)
    assert contents(chunks) == "Hello!" and len(chunks) == 5  # role, 2 text, finish, usage
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_unknown_thinking_output_mode() -> None:
    with pytest.raises(ValueError):
        OpenAIStream(MODEL, OpenAIOptions(), "shout", 1, [], None)


def test_options_thinking_output_overrides_setting() -> None:
    stream = OpenAIStream(MODEL, OpenAIOptions(thinking_output="think_tags"), "hidden", 1, [], None)
    raw = b"".join(stream.feed(e) for e in THINKING_EVENTS) + stream.finish()
    chunks = [json.loads(d) for d in sse_events(raw)[:-1]]
    assert contents(chunks) == "<think>\nLet me think.\n</think>\n\nHello!"


def test_stream_stop_sequence_split_across_deltas() -> None:
    stream, chunks = run_stream(
        [TextDelta("Hello EN"), TextDelta("D more"), TextDelta("never")], stops=["END"], include_usage=True
    )
    assert contents(chunks) == "Hello " and finish_reason(chunks) == "stop"
    assert stream.done and stream.feed(TextDelta("x")) == b""


def test_stream_stop_not_applied_to_thinking() -> None:
    _, chunks = run_stream([ThinkingDelta("the END"), TextDelta("ok"), Stop()], stops=["END"])
    assert contents(chunks, "reasoning_content") == "the END" and contents(chunks) == "ok"


def test_stream_held_back_prefix_flushed_at_stop() -> None:
    _, chunks = run_stream([TextDelta("value: EN"), Stop()], stops=["END"])
    assert contents(chunks) == "value: EN" and finish_reason(chunks) == "stop"


def test_stream_max_tokens_length() -> None:
    words = [TextDelta("word ") for _ in range(50)]
    stream, chunks = run_stream([*words, Stop()], max_tokens=10, include_usage=True)
    assert finish_reason(chunks) == "length" and stream.done
    text = contents(chunks)
    assert 0 < len(text) < 50 * 5
    assert estimate_tokens(text) <= 10
    assert chunks[-1]["usage"]["completion_tokens"] <= 10


def test_stream_upstream_max_tokens_is_length() -> None:
    _, chunks = run_stream([TextDelta("cut"), Stop("max_tokens")], max_tokens=100)
    assert finish_reason(chunks) == "length"


def test_stream_unicode_and_escaping() -> None:
    _, chunks = run_stream([TextDelta('日本語 "quoted"\n\n'), TextDelta("data: [DONE]\n\n😀"), Stop()])
    assert contents(chunks) == '日本語 "quoted"\n\ndata: [DONE]\n\n😀'


# ---------------------------------------------------------------------------------------------
# Non-stream


def collect(
    events: list[Any],
    *,
    thinking_output: str = "reasoning_content",
    stops: list[str] | None = None,
    max_tokens: int | None = None,
    response_format: str | None = None,
) -> dict[str, Any]:
    collector = OpenAICollector(
        MODEL, OpenAIOptions(response_format=response_format), thinking_output, 7, stops or [], max_tokens
    )
    for event in events:
        collector.feed(event)
    result = collector.result()
    ChatCompletion.model_validate(result)
    return result


def test_collector_fields() -> None:
    result = collect(THINKING_EVENTS)
    assert result["id"].startswith("chatcmpl-") and result["object"] == "chat.completion"
    assert isinstance(result["created"], int) and result["model"] == MODEL
    assert result["system_fingerprint"] is None
    assert result["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello!",
                "refusal": None,
                "reasoning_content": "Let me think.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = result["usage"]
    assert (
        usage["prompt_tokens"] == 7
        and usage["completion_tokens"] > usage["completion_tokens_details"]["reasoning_tokens"]
    )
    assert usage["total_tokens"] == 7 + usage["completion_tokens"]
    parsed = ChatCompletion.model_validate(result)
    assert parsed.choices[0].message.reasoning_content == "Let me think."  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mode", "content", "extra"),
    [
        ("reasoning", "Hello!", {"reasoning": "Let me think."}),
        ("both", "Hello!", {"reasoning_content": "Let me think.", "reasoning": "Let me think."}),
        ("think_tags", "<think>\nLet me think.\n</think>\n\nHello!", {}),
        ("hidden", "Hello!", {}),
    ],
)
def test_collector_thinking_modes(mode: str, content: str, extra: dict[str, str]) -> None:
    message = collect(THINKING_EVENTS, thinking_output=mode)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": content, "refusal": None, **extra}


def test_collector_without_thinking_has_no_reasoning_fields() -> None:
    result = collect([TextDelta("Hi"), Stop()])
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "Hi", "refusal": None}
    assert "completion_tokens_details" not in result["usage"]
    assert result["usage"]["completion_tokens"] >= 1


def test_collector_prompt_tokens_never_zero() -> None:
    collector = OpenAICollector(MODEL, OpenAIOptions(), "hidden", 0, [], None)
    assert collector.result()["usage"]["prompt_tokens"] == 1


def test_collector_stop_and_length() -> None:
    result = collect([TextDelta("a STOP b"), TextDelta("c")], stops=["STOP", "a S"])
    assert (
        result["choices"][0]["message"]["content"] == "" and result["choices"][0]["finish_reason"] == "stop"
    )
    result = collect([TextDelta("one two three four five six seven eight")], max_tokens=3)
    assert result["choices"][0]["finish_reason"] == "length"
    assert "one" in result["choices"][0]["message"]["content"]
    assert result["usage"]["completion_tokens"] <= 3


def test_collector_json_mode_keeps_truncated_reply() -> None:
    result = collect([TextDelta('{"a": "'), Stop("max_tokens")], response_format="json_object")
    assert result["choices"][0]["finish_reason"] == "length"


def test_json_mode_hides_think_tags() -> None:
    result = collect(
        [ThinkingDelta("x"), TextDelta("{}"), Stop()],
        thinking_output="think_tags",
        response_format="json_object",
    )
    assert result["choices"][0]["message"]["content"] == "{}"


# ---------------------------------------------------------------------------------------------
# StopCutter


def cut(stops: list[str], deltas: list[str]) -> tuple[str, str | None]:
    cutter = StopCutter(stops)
    out = ""
    for delta in deltas:
        text, matched = cutter.feed(delta)
        out += text
        if matched is not None:
            assert cutter.feed("more") == ("", None) and cutter.flush() == ""
            return out, matched
    return out + cutter.flush(), None


@pytest.mark.parametrize(
    ("stops", "deltas", "expected"),
    [
        ([], ["a", "b"], ("ab", None)),
        (["END"], ["abc"], ("abc", None)),
        (["END"], ["abEND", "x"], ("ab", "END")),
        (["END"], ["ab", "E", "N", "D", "x"], ("ab", "END")),
        (["END"], ["abE", "Nx"], ("abENx", None)),  # partial prefix, then mismatch
        (["END"], ["abE"], ("abE", None)),  # held prefix flushed at the end
        (["aab"], ["a", "a", "a", "b"], ("a", "aab")),  # overlapping prefixes
        (["abcabd"], ["abcab", "cabd"], ("abc", "abcabd")),
        (["xyz", "b"], ["axy", "zb"], ("a", "xyz")),  # earliest match wins
        (["xyz", "b"], ["ab", "xyz"], ("a", "b")),
        (["\n\nHuman:", "STOP"], ["Hi\n", "\nHu", "man: yo"], ("Hi", "\n\nHuman:")),
        (["終わり"], ["日本語終", "わ", "り残り"], ("日本語", "終わり")),
        (["😀"], ["a😀b"], ("a", "😀")),
        (["", "x"], ["ab", "x"], ("ab", "x")),
    ],
)
def test_stop_cutter(stops: list[str], deltas: list[str], expected: tuple[str, str | None]) -> None:
    assert cut(stops, deltas) == expected


def test_stop_cutter_emits_safe_text_immediately() -> None:
    cutter = StopCutter(["END"])
    assert cutter.feed("hello E") == ("hello ", None)
    assert cutter.feed("x") == ("Ex", None)
    assert cutter.feed("EN") == ("", None)
    assert cutter.flush() == "EN"


# ---------------------------------------------------------------------------------------------
# Tokens and models


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens(" ") == 1 and estimate_tokens("a") == 1
    assert 5 <= estimate_tokens("Hello world, how are you?") <= 9
    assert estimate_tokens("日本語のテキスト") >= 4
    assert estimate_tokens("x" * 4000) == 1000
    assert estimate_tokens("\ud83d") >= 1  # a lone surrogate does not crash


def test_token_counter_matches_whole_text_estimate() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 3
    for size in (1, 2, 3, 7):
        counter = TokenCounter()
        for i in range(0, len(text), size):
            counter.add(text[i : i + size])
        assert counter.tokens == estimate_tokens(text)


def test_token_counter_add_within() -> None:
    counter = TokenCounter()
    kept = counter.add_within("one two three four five six", 3)
    assert kept and "one two three four five six".startswith(kept)
    assert estimate_tokens(kept) <= 3 < estimate_tokens("one two three four five six"[: len(kept) + 1])
    assert counter.tokens == estimate_tokens(kept)


def test_estimate_request_tokens() -> None:
    empty = ChatRequest(model=MODEL, upstream_model=MODEL, messages=[Message("user", [TextPart("")])])
    assert estimate_request_tokens(empty) >= 1
    text = ChatRequest(
        model=MODEL, upstream_model=MODEL, messages=[Message("user", [TextPart("hello " * 100)])]
    )
    image = ChatRequest(
        model=MODEL,
        upstream_model=MODEL,
        messages=[Message("user", [TextPart("hello " * 100), ImagePart(url="https://x")])],
    )
    assert estimate_request_tokens(text) > 100
    assert estimate_request_tokens(image) > estimate_request_tokens(text)


def test_models_list() -> None:
    body = models_list(CATALOG)
    assert body["object"] == "list" and body["has_more"] is False
    ids = [m["id"] for m in body["data"]]
    assert body["first_id"] == ids[0] and body["last_id"] == ids[-1]
    assert MODEL in ids and MODEL + "-think" in ids
    for item in body["data"]:
        Model.model_validate(item)
        assert item["object"] == "model" and item["type"] == "model" and item["owned_by"] == "anthropic"
        assert isinstance(item["created"], int) and item["created_at"].endswith("Z") and item["display_name"]


# ---------------------------------------------------------------------------------------------
# The real openai client reading our bytes (an in-memory transport, no sockets)


def sdk_client(body: bytes, content_type: str) -> Any:
    httpx = pytest.importorskip("httpx2")  # openai 3.x transport; 1.x/2.x use httpx
    import openai

    def handler(_request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": content_type}, content=body)

    transport = httpx.MockTransport(handler)
    return openai.OpenAI(
        api_key="sk-test", base_url="http://test/v1", http_client=httpx.Client(transport=transport)
    )


def sse_body(events: list[Any], options: OpenAIOptions, mode: str = "reasoning_content") -> bytes:
    stream = OpenAIStream(MODEL, options, mode, 5, [], None)
    return b"".join(stream.feed(e) for e in events) + stream.finish()


def test_sdk_reads_stream() -> None:
    client = sdk_client(sse_body(THINKING_EVENTS, OpenAIOptions(include_usage=True)), "text/event-stream")
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 5


def test_sdk_accumulates_stream() -> None:
    client = sdk_client(sse_body(THINKING_EVENTS, OpenAIOptions(include_usage=True)), "text/event-stream")
    with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello!" and final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.reasoning_content == "Let me think."  # type: ignore[attr-defined]


def test_sdk_raises_on_error_frame() -> None:
    import openai

    stream = OpenAIStream(MODEL, OpenAIOptions(), "hidden", 5, [], None)
    body = stream.feed(TextDelta("partial")) + stream.error_frame("upstream broke")
    client = sdk_client(body, "text/event-stream")
    with pytest.raises(openai.APIError, match="upstream broke"):
        list(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )


def test_sdk_reads_collector_result() -> None:
    collector = OpenAICollector(
        MODEL, OpenAIOptions(response_format="json_object"), "reasoning_content", 5, [], None
    )
    for event in [TextDelta('{"city": "Paris"}'), Stop()]:
        collector.feed(event)
    client = sdk_client(json.dumps(collector.result()).encode(), "application/json")
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content or "") == {"city": "Paris"}
