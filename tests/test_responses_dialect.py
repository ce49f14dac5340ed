"""Unit tests of the Responses API dialect and its store: parsing, stream and non-stream rendering.

The renderers are fed neutral events directly; their output is checked with openai-python's own
types (``Response`` validated strictly) and the SDK's ``responses.stream()`` accumulator
(``ResponseStreamState``), which refuses streams out of order or with unfinished items.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import APIError
from claude2api.core.types import (
    ChatRequest,
    DocumentPart,
    Event,
    ImagePart,
    Message,
    ResponseFormat,
    Stop,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    WebSearch,
)
from claude2api.dialects.response_store import MemoryResponseStore, StoredResponse, history_size, owner_of
from claude2api.dialects.responses import (
    ResponsesCollector,
    ResponsesOptions,
    ResponsesStream,
    continue_conversation,
    conversation_of,
    parse_responses_request,
    stored_history,
)

CATALOG = ModelCatalog()
MODEL = "claude-sonnet-4-6"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def parse(**body: Any) -> tuple[ChatRequest, ResponsesOptions]:
    body.setdefault("model", MODEL)
    body.setdefault("input", "hi")
    return parse_responses_request(body, CATALOG)


def parse_error(**body: Any) -> APIError:
    body.setdefault("model", MODEL)
    body.setdefault("input", "hi")
    with pytest.raises(APIError) as info:
        parse_responses_request(body, CATALOG)
    return info.value


# ---------------------------------------------------------------------------------------------
# Request parsing


def test_string_input_and_instructions() -> None:
    request, options = parse(instructions="Be brief.", input="hello", stream=True, max_output_tokens=50)
    assert request.messages == [
        Message("system", [TextPart("Be brief.")]),
        Message("user", [TextPart("hello")]),
    ]
    assert request.stream and request.max_tokens == 50 and request.thinking is None
    assert options.instruction_messages == 1 and options.store and options.previous_response_id is None
    assert conversation_of(request, options) == [Message("user", [TextPart("hello")])]
    assert options.echo["instructions"] == "Be brief." and options.echo["max_output_tokens"] == 50


def test_input_items_as_codex_sends_them() -> None:
    """The shape of Codex CLI 0.171's request: developer messages, input_text parts, extra fields."""
    request, options = parse(
        input=[
            {
                "type": "message",
                "id": "msg_1",
                "role": "developer",
                "content": [{"type": "input_text", "text": "rules"}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<env/>"}]},
            {"role": "user", "content": "say hi"},  # EasyInputMessage: no type
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "<think>x</think>hello"}]},
        ],
        store=False,
        include=["reasoning.encrypted_content"],
        prompt_cache_key="abc",
        client_metadata={"session_id": "s"},
        reasoning={"summary": "auto"},
    )
    assert [m.role for m in request.messages] == ["system", "user", "user", "assistant"]
    assert request.messages[0].text == "rules" and request.messages[3].text == "hello"
    assert not options.store and not options.show_reasoning  # no thinking: nothing to show


def test_images_by_url_and_data_url() -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    request, _ = parse(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
                    {"type": "input_image", "image_url": data_url},
                ],
            }
        ]
    )
    parts = request.messages[0].parts
    assert parts[1] == ImagePart(url="https://example.com/a.png")
    assert parts[2] == ImagePart(media_type="image/png", data=PNG)


def test_function_call_history_becomes_neutral_calls_and_results() -> None:
    request, _ = parse(
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "spawn_agent", "namespace": "agents", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "spawned"}, {"type": "input_image", "image_url": "https://x.test/a.png"}],
            },
        ]
    )
    assert request.messages[1] == Message(
        "assistant",
        [
            TextPart("Checking."),
            ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
            ToolCall("toolu_2", "agents__spawn_agent", "{}"),
        ],
    )
    assert request.messages[2] == Message("tool", [ToolResult("toolu_1", [TextPart("sunny")])])
    assert request.messages[3] == Message(
        "tool", [ToolResult("toolu_2", [TextPart("spawned"), ImagePart(url="https://x.test/a.png")])]
    )


def test_reasoning_effort_and_summary() -> None:
    request, options = parse(reasoning={"effort": "low", "summary": "detailed"})
    assert request.thinking is not None and request.thinking.effort == "low" and options.show_reasoning
    assert options.echo["reasoning"] == {"effort": "low", "summary": "detailed"}
    request, options = parse(model=MODEL + "-think", reasoning={"effort": "none", "summary": "auto"})
    assert request.thinking is None and not options.show_reasoning
    request, options = parse(model=MODEL + "-think")
    assert request.thinking is not None and not options.show_reasoning  # thinks, summary not asked for


def test_text_format_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request, options = parse(
        text={"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}}
    )
    assert request.response_format == ResponseFormat("json_schema", schema)
    assert json.dumps(schema) in request.instructions[0]
    request, _ = parse(text={"format": {"type": "json_object"}})
    assert request.response_format == ResponseFormat("json_object")
    request, options = parse(text={"format": {"type": "text"}, "verbosity": "low"})
    assert request.response_format is None and options.echo["text"]["verbosity"] == "low"


def test_tools_with_tool_choice_none_are_accepted() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {}}, {"type": "file_search", "vector_store_ids": []}]
    request, options = parse(tools=tools, tool_choice="none", parallel_tool_calls=False)
    assert options.echo["tools"] == [
        {"type": "function", "name": "f", "description": None, "parameters": {}, "strict": False},
        tools[1],
    ]
    assert options.echo["tool_choice"] == "none"
    assert options.echo["parallel_tool_calls"] is False
    assert [t.name for t in request.tools] == ["f"] and request.tool_choice == ToolChoice("none")
    assert not request.parallel_tool_calls


def test_function_namespace_and_web_search_tools_as_codex_sends_them() -> None:
    schema = {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}
    request, options = parse(
        tools=[
            {"type": "function", "name": "exec_command", "description": "Run", "strict": False, "parameters": schema},
            {
                "type": "namespace",
                "name": "multi_agent_v1",
                "description": "Sub-agents.",
                "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn", "parameters": {"type": "object"}}],
            },
            {"type": "web_search", "external_web_access": False, "filters": {"allowed_domains": ["a.test"]}},
        ],
        tool_choice="auto",
    )
    assert [(t.name, t.input_schema) for t in request.tools] == [
        ("exec_command", schema),
        ("multi_agent_v1__spawn_agent", {"type": "object"}),
    ]
    assert request.tools[1].description == "[multi_agent_v1: Sub-agents.] Spawn"
    assert options.namespaced == {"multi_agent_v1__spawn_agent": ("multi_agent_v1", "spawn_agent")}
    assert request.web_search == WebSearch(allowed_domains=["a.test"])
    assert request.tool_choice == ToolChoice("auto") and request.parallel_tool_calls


def test_web_search_tool_location_and_search_suffix_beside_function_tools() -> None:
    location = {"type": "approximate", "city": "Paris", "country": "FR", "timezone": "Europe/Paris"}
    function = {"type": "function", "name": "f"}
    request, _ = parse(tools=[function, {"type": "web_search_preview", "user_location": location}])
    assert request.web_search == WebSearch(user_location="Paris, FR (time zone Europe/Paris)")
    assert [t.name for t in request.tools] == ["f"]
    suffixed, _ = parse(model=MODEL + "-search", tools=[function])
    assert suffixed.web_search == WebSearch(native=False) and [t.name for t in suffixed.tools] == ["f"]
    both, _ = parse(model=MODEL + "-search", tools=[{"type": "web_search", "filters": {"allowed_domains": ["a.test"]}}])
    assert both.web_search == WebSearch(allowed_domains=["a.test"])  # the tool's options win over the bare suffix
    assert parse()[0].web_search is None
    error = parse_error(tools=[{"type": "web_search", "filters": {"allowed_domains": "a.test"}}])
    assert error.param == "tools[0].filters.allowed_domains"


@pytest.mark.parametrize(
    ("choice", "expected", "offered"),
    [
        ("required", ToolChoice("required"), ["f", "g"]),
        ({"type": "function", "name": "g"}, ToolChoice("named", "g"), ["f", "g"]),
        ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "g"}]}, ToolChoice("required"), ["g"]),
    ],
)
def test_tool_choices(choice: Any, expected: ToolChoice, offered: list[str]) -> None:
    tools = [{"type": "function", "name": name} for name in ("f", "g")]
    request, _ = parse(tools=tools, tool_choice=choice)
    assert request.tool_choice == expected and [t.name for t in request.tools] == offered
    assert "must call" in request.instructions[-1]


def test_input_file_data_url_text_and_url() -> None:
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 x").decode()
    text = "data:text/plain;base64," + base64.b64encode(b"hello notes").decode()
    request, _ = parse(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "file_data": pdf, "filename": "report.pdf"},
                    {"type": "input_file", "file_data": text, "filename": "notes.txt"},
                    {"type": "input_file", "file_url": "https://files.test/dir/spec.md"},
                ],
            }
        ]
    )
    first, second, third = request.messages[0].parts
    assert first == DocumentPart(media_type="application/pdf", data=b"%PDF-1.4 x", filename="report.pdf")
    assert isinstance(second, DocumentPart) and second.text == "hello notes" and second.filename == "notes.txt"
    assert third == DocumentPart(url="https://files.test/dir/spec.md", filename="spec.md")


BAD: list[tuple[dict[str, Any], str | None]] = [
    ({"input": None}, "input"),
    ({"input": 5}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0]"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "x"}]}]},
        "input[0].content[0]",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "input[0].content[0]",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]},
        "input[0].content[0]",
    ),
    ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"model": 3}, "model"),
    ({"stream": "yes"}, "stream"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": 7}, "temperature"),
    ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"reasoning": {"summary": "all"}}, "reasoning.summary"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "name": "A"}}}, "text.format.schema"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "a b"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "array"}}]}, "tools[0]"),
    ({"tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "f"}]}, "tools"),
    ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools[0].type"),
    ({"tools": [{"type": "namespace", "name": "n", "tools": [{"type": "custom", "name": "c"}]}]}, "tools[0].tools[0].type"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}, "tool_choice"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "mcp"}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "data:application/zip;base64,UEsDBA=="}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "ftp://x/y.pdf"}]}]}, "input[0].content[0].file_url"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"previous_response_id": ""}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
]


@pytest.mark.parametrize(("body", "param"), BAD)
def test_bad_requests_are_400_naming_the_param(body: dict[str, Any], param: str | None) -> None:
    error = parse_error(**body)
    assert error.status == 400 and error.param == param


def test_hosted_tools_are_refused_naming_the_type() -> None:
    error = parse_error(tools=[{"type": "function", "name": "exec_command"}, {"type": "code_interpreter"}])
    assert error.code == "unsupported_tool_type" and "'code_interpreter'" in error.message


def test_file_ids_are_refused_clearly() -> None:
    error = parse_error(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}])
    assert error.param == "input[0].content[0].file_id" and "no Files API" in error.message


def test_unknown_model_is_404() -> None:
    error = parse_error(model="gpt-9")
    assert error.status == 404 and error.code == "model_not_found"


def test_continue_conversation_puts_history_after_instructions() -> None:
    request, options = parse(instructions="new rules", input="and then?")
    history = stored_history([Message("user", [TextPart("first")])], Message("assistant", [TextPart("answer")]))
    continued = continue_conversation(request, options, history)
    assert [m.text for m in continued.messages] == ["new rules", "first", "answer", "and then?"]
    assert [m.role for m in continued.messages] == ["system", "user", "assistant", "user"]


# ---------------------------------------------------------------------------------------------
# Rendering


def options(**changes: Any) -> ResponsesOptions:
    _, parsed = parse(**changes)
    return parsed


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Frames as the SDK's decoder reads them; each frame's ``event:`` must equal its ``type``."""
    decoder = SSEDecoder()
    events = []
    for sse in decoder.iter_bytes(iter([raw])):
        data = sse.json()
        assert sse.event == data["type"]
        events.append(data)
    return events


def run_stream(
    events: list[Event], opts: ResponsesOptions, max_tokens: int | None = None
) -> tuple[ResponsesStream, list[dict[str, Any]]]:
    stream = ResponsesStream(MODEL, opts, prompt_tokens=5, max_tokens=max_tokens)
    raw = b"".join(stream.feed(e) for e in events) + stream.finish()
    return stream, sse_events(raw)


def through_sdk(frames: list[dict[str, Any]], text_format: Any = omit) -> ResponseStreamState[Any]:
    """Feeds the frames to the SDK's ``responses.stream()`` accumulator (it raises on a bad stream)."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=text_format)
    for frame in frames:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=frame))  # type: ignore[arg-type]
    return state


def test_stream_text_event_order_and_sequence_numbers() -> None:
    stream, frames = run_stream([TextDelta("Hel"), TextDelta("lo"), Stop("end_turn")], options())
    assert [f["type"] for f in frames] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    assert frames[0]["response"]["status"] == "in_progress" and frames[0]["response"]["output"] == []
    final = Response.model_validate(frames[-1]["response"])
    assert final.output_text == "Hello" and final.status == "completed" and final.model == MODEL
    assert final.usage is not None and final.usage.input_tokens == 5 and final.usage.output_tokens > 0
    assert stream.final == frames[-1]["response"] and stream.reply_text == "Hello"
    ids = {f["item_id"] for f in frames if "item_id" in f}
    assert ids == {final.output[0].id}
    state = through_sdk(frames)
    assert state._completed_response is not None and state._completed_response.output_text == "Hello"


def test_stream_with_reasoning_summary() -> None:
    opts = options(reasoning={"effort": "high", "summary": "auto"})
    _, frames = run_stream([ThinkingDelta("Let me "), ThinkingDelta("think."), TextDelta("42"), Stop()], opts)
    types = [f["type"] for f in frames]
    assert types[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    final = Response.model_validate(frames[-1]["response"])
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Let me think."  # type: ignore[union-attr]
    assert (
        final.output_text == "42"
        and final.usage is not None
        and final.usage.output_tokens_details.reasoning_tokens > 0
    )
    assert frames[9]["output_index"] == 1  # the message is the second item
    through_sdk(frames)


def test_hidden_thinking_is_counted_not_shown() -> None:
    _, frames = run_stream(
        [ThinkingDelta("secret"), TextDelta("ok"), Stop()], options(reasoning={"effort": "low"})
    )
    final = Response.model_validate(frames[-1]["response"])
    assert [item.type for item in final.output] == ["message"]
    assert "secret" not in json.dumps(frames)
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens > 0


def test_stream_cut_by_max_output_tokens_is_incomplete() -> None:
    stream, frames = run_stream([TextDelta("word " * 50), Stop()], options(), max_tokens=5)
    assert frames[-1]["type"] == "response.incomplete"
    final = Response.model_validate(frames[-1]["response"])
    assert final.status == "incomplete" and final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens" and final.output[0].status == "incomplete"
    assert stream.done and len(final.output_text) < 250


def test_empty_reply_still_has_a_message() -> None:
    _, frames = run_stream([Stop()], options())
    final = Response.model_validate(frames[-1]["response"])
    assert final.output_text == "" and [item.type for item in final.output] == ["message"]
    through_sdk(frames)


def test_failure_after_commit_is_response_failed() -> None:
    stream = ResponsesStream(MODEL, options(), prompt_tokens=5, max_tokens=None)
    raw = stream.feed(TextDelta("partial")) + stream.error_frame("upstream broke", code="rate_limit_exceeded")
    frames = sse_events(raw)
    assert frames[-1]["type"] == "response.failed" and stream.final is None
    failed = Response.model_validate(frames[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and failed.error.message == "upstream broke"
    assert failed.output[0].status == "incomplete" and failed.output_text == "partial"
    assert stream.feed(TextDelta("more")) == b"" and stream.finish() == b""
    through_sdk(frames)


def test_keepalive_is_a_comment_after_the_start() -> None:
    stream = ResponsesStream(MODEL, options(), prompt_tokens=5, max_tokens=None)
    first = stream.keepalive()
    assert first.startswith(b"event: response.created")
    assert stream.keepalive() == b": keep-alive\n\n"


def test_collector_matches_the_stream() -> None:
    opts = options(
        reasoning={"effort": "high", "summary": "concise"}, metadata={"k": "v"}, instructions="sys"
    )
    collector = ResponsesCollector(MODEL, opts, prompt_tokens=5, max_tokens=None)
    for event in [ThinkingDelta("hmm"), TextDelta("Hi"), TextDelta("!"), Stop()]:
        collector.feed(event)
    body = collector.result()
    response = Response.model_validate(body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert response.output_text == "Hi!" and response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.metadata == {"k": "v"} and response.instructions == "sys"
    assert collector.reply_text == "Hi!"


def test_collector_incomplete() -> None:
    collector = ResponsesCollector(MODEL, options(), prompt_tokens=5, max_tokens=3)
    collector.feed(TextDelta("one two three four five six seven"))
    body = collector.result()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}


TOOL_EVENTS: list[Event] = [
    TextDelta("Checking."),
    ToolCallStart(0, "toolu_1", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"Paris"}'),
    ToolCallEnd(0),
    ToolCallStart(1, "toolu_2", "multi_agent_v1__spawn_agent"),
    ToolCallEnd(1),
    Stop("tool_use"),
]


NAMESPACED_TOOLS = [
    {"type": "function", "name": "get_weather"},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Agents", "tools": [{"type": "function", "name": "spawn_agent"}]},
]


def test_stream_renders_tool_call_events_as_function_call_items() -> None:
    stream, frames = run_stream(TOOL_EVENTS, options(tools=NAMESPACED_TOOLS))
    types = [f["type"] for f in frames]
    assert types[-9:] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = Response.model_validate(frames[-1]["response"])
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    call = final.output[1]
    assert call.type == "function_call" and call.call_id == "call_1" and call.name == "get_weather"
    assert call.arguments == '{"city":"Paris"}' and call.namespace is None
    spawn = final.output[2]
    assert spawn.type == "function_call" and spawn.arguments == "" and spawn.call_id == "call_2"
    assert (spawn.namespace, spawn.name) == ("multi_agent_v1", "spawn_agent")
    assert final.status == "completed"
    assert stream.reply_message == Message(
        "assistant",
        [
            TextPart("Checking."),
            ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
            ToolCall("toolu_2", "multi_agent_v1__spawn_agent", "{}"),
        ],
    )
    state = through_sdk(frames)
    assert state._completed_response is not None and len(state._completed_response.output) == 3


def test_collector_renders_tool_calls_without_an_empty_message() -> None:
    collector = ResponsesCollector(MODEL, options(tools=NAMESPACED_TOOLS), prompt_tokens=5, max_tokens=None)
    for event in TOOL_EVENTS[1:]:
        collector.feed(event)
    response = Response.model_validate(collector.result())
    assert [item.type for item in response.output] == ["function_call", "function_call"]
    assert response.output[0].arguments == '{"city":"Paris"}'  # type: ignore[union-attr]
    assert response.output[1].namespace == "multi_agent_v1"  # type: ignore[union-attr]
    assert [type(p) for p in collector.reply_message.parts] == [ToolCall, ToolCall]


# ---------------------------------------------------------------------------------------------
# The store


def record(response_id: str, owner: str, size: int = 10) -> StoredResponse:
    return StoredResponse(id=response_id, owner=owner, response={"id": response_id}, history=[], size=size)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_store_is_per_owner() -> None:
    store = MemoryResponseStore(max_items=10, max_bytes=1000, ttl=60)
    alice, bob = owner_of("key-a"), owner_of("key-b")
    assert alice != bob and "key-a" not in alice
    await store.put(record("resp_1", alice))
    assert (await store.get(alice, "resp_1")) is not None
    assert await store.get(bob, "resp_1") is None
    assert not await store.delete(bob, "resp_1")
    assert await store.delete(alice, "resp_1") and await store.get(alice, "resp_1") is None


async def test_store_bounds_count_bytes_and_ttl() -> None:
    clock = Clock()
    store = MemoryResponseStore(max_items=3, max_bytes=100, ttl=60, clock=clock)
    for i in range(5):
        await store.put(record(f"resp_{i}", "o"))
    assert len(store) == 3 and await store.get("o", "resp_0") is None and await store.get("o", "resp_4")
    await store.put(record("resp_big", "o", size=95))
    assert len(store) == 1 and store.bytes == 95
    await store.put(record("resp_huge", "o", size=101))  # larger than the whole store: not kept
    assert await store.get("o", "resp_huge") is None and store.bytes == 95
    clock.now += 61
    assert await store.get("o", "resp_big") is None and len(store) == 0 and store.bytes == 0


async def test_store_with_no_room_keeps_nothing() -> None:
    store = MemoryResponseStore(max_items=0, max_bytes=100, ttl=60)
    await store.put(record("resp_1", "o"))
    assert await store.get("o", "resp_1") is None


def test_history_size_counts_text_and_images() -> None:
    messages = [Message("user", [TextPart("abcd"), ImagePart(media_type="image/png", data=PNG)])]
    assert history_size(messages) == 4 + len(PNG)
