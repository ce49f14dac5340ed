"""OpenAI Chat Completions dialect: request parsing, stream and non-stream rendering, model list.

The wire contract is ``docs/client-contract.md`` §2, §3, §4 and §7: what stock SDKs and chat
front-ends require. In short: streams are ``data:`` frames only (never ``event:`` lines), one id
and ``created`` per stream, a role chunk first, a ``delta: {}`` chunk with the finish reason, the
usage chunk only when ``stream_options.include_usage`` asked for it, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from claude2api.core.catalog import (
    REASONING_EFFORTS,
    ModelCatalog,
    ModelInfo,
    ResolvedModel,
    intent_from_reasoning_effort,
    intent_from_suffix,
)
from claude2api.core.dataurl import decode_data_url
from claude2api.core.documents import DocumentError, document_from_data_url
from claude2api.core.failures import APIError, bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.reply import ReplyCutter
from claude2api.core.search import location_text
from claude2api.core.stops import MAX_STOP_LENGTH
from claude2api.core.tools import (
    OPENAI_TOOL_NAME,
    check_tool_choice,
    check_tools,
    openai_call_id,
    tool_choice_instructions,
    upstream_call_id,
)
from claude2api.core.types import (
    SEARCH_EVENTS,
    ChatRequest,
    Citation,
    Event,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    Role,
    SearchCall,
    TextPart,
    Thinking,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolChoice,
    ToolDefinition,
    ToolResult,
    WebSearch,
)
from claude2api.dialects.base import Dialect, ReplySpec, parses_json_body, resolve_model
from claude2api.upstream.image_http import is_image_media_type

# ---------------------------------------------------------------------------------------------
# Request parsing

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}

#: ``stop`` takes at most this many strings, as in OpenAI's API.
MAX_STOPS = 4

#: Reasoning echoed back by front-ends inside assistant content (``<think>`` / ``<thinking>``).
_THINK_OPEN = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_THINK_CLOSE = {name: re.compile(rf"</{name}>\s*", re.IGNORECASE) for name in ("think", "thinking")}

_JSON_OBJECT_INSTRUCTION = (
    "Answer with exactly one valid JSON object and nothing else: no prose before or after it, "
    "no Markdown code fences."
)
_JSON_SCHEMA_INSTRUCTION = (
    "Answer with exactly one valid JSON value that conforms to this JSON Schema, and nothing else: "
    "no prose before or after it, no Markdown code fences.\nJSON Schema: {schema}"
)


@dataclass(slots=True)
class OpenAIOptions:
    """What the renderer needs from the request beyond the :class:`ChatRequest`."""

    include_usage: bool = False
    #: ``"json_object"``, ``"json_schema"`` or ``None`` (plain text).
    response_format: str | None = None
    #: Per-request override of the daemon's thinking output mode (see :data:`THINKING_OUTPUTS`).
    thinking_output: str | None = None


@parses_json_body
def parse_chat_request(body: object, catalog: ModelCatalog) -> tuple[ChatRequest, OpenAIOptions]:
    """Validate a decoded ``/v1/chat/completions`` body and convert it to the neutral request.

    Unknown fields are ignored (stock clients send many we have no use for); malformed known ones
    raise a 400 :class:`APIError` naming the offending ``param``; an unknown model raises a 404.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    resolved = resolve_model(catalog, _parse_model(body.get("model"), catalog))
    messages = _parse_messages(body.get("messages"))
    _check_n(body.get("n"))
    response_format, instructions = _parse_response_format(body.get("response_format"))
    tools, tool_choice, parallel = _parse_tools(body)
    request = ChatRequest(
        model=resolved.requested,
        upstream_model=resolved.upstream,
        messages=messages,
        stream=_parse_stream(body.get("stream")),
        thinking=_parse_thinking(body.get("reasoning_effort"), resolved),
        stop=_parse_stop(body.get("stop")),
        max_tokens=_parse_max_tokens(body),
        instructions=instructions,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        response_format=_neutral_format(response_format, body.get("response_format")),
        web_search=_parse_web_search_options(body.get("web_search_options"), resolved.search),
    )
    request.instructions += tool_choice_instructions(request)
    options = OpenAIOptions(
        include_usage=_parse_include_usage(body.get("stream_options")),
        response_format=response_format,
    )
    return request, options


def _parse_web_search_options(raw: object, suffix: bool) -> WebSearch | None:
    """``web_search_options`` (``user_location``; ``search_context_size`` has no claude.ai knob),
    or the ``-search`` model suffix."""
    if raw is None:
        return WebSearch(native=False) if suffix else None
    if not isinstance(raw, dict):
        raise bad_request("Invalid type for 'web_search_options': expected an object.", param="web_search_options")
    return WebSearch(user_location=location_text(raw.get("user_location")))


def _neutral_format(kind: str | None, raw: Any) -> ResponseFormat | None:
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        schema = raw["json_schema"].get("schema")
        return ResponseFormat("json_schema", schema if isinstance(schema, dict) else None)
    return None


def _parse_tools(body: dict[str, Any]) -> tuple[list[ToolDefinition], ToolChoice | None, bool]:
    """``tools`` / ``tool_choice`` / ``parallel_tool_calls``, or the legacy ``functions`` /
    ``function_call`` (used only when ``tools`` is absent)."""
    raw_tools, raw_choice = body.get("tools"), body.get("tool_choice")
    legacy = raw_tools is None and body.get("functions") is not None
    if legacy:
        raw_tools, raw_choice, param = body.get("functions"), body.get("function_call"), "functions"
    else:
        param = "tools"
    if raw_tools is None:
        raw_tools = []
    if not isinstance(raw_tools, list):
        raise bad_request(f"Invalid type for '{param}': expected an array.", param=param)
    tools = [_parse_tool(t, f"{param}[{n}]", legacy) for n, t in enumerate(raw_tools)]
    check_tools(tools, OPENAI_TOOL_NAME, param, lambda n: f"{param}[{n}]" if legacy else f"{param}[{n}].function")
    choice_param = "function_call" if legacy else "tool_choice"
    choice = _parse_tool_choice(raw_choice, choice_param)
    check_tool_choice(choice, tools, choice_param)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("Invalid type for 'parallel_tool_calls': expected a boolean.", param="parallel_tool_calls")
    return tools, choice, parallel is not False


def _parse_tool(raw: object, param: str, legacy: bool) -> ToolDefinition:
    if not legacy:
        if not isinstance(raw, dict) or raw.get("type") != "function":
            raise bad_request(f"Invalid value for '{param}.type': only 'function' tools are supported.", param=param)
        raw = raw.get("function")
        param += ".function"
    if not isinstance(raw, dict):
        raise bad_request(f"Invalid type for '{param}': expected an object.", param=param)
    name, description, schema = raw.get("name"), raw.get("description"), raw.get("parameters")
    if not isinstance(name, str):
        raise bad_request(f"Missing required parameter: '{param}.name'.", param=f"{param}.name")
    if description is not None and not isinstance(description, str):
        raise bad_request(f"Invalid type for '{param}.description': expected a string.", param=f"{param}.description")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise bad_request(f"Invalid type for '{param}.parameters': expected an object.", param=f"{param}.parameters")
    return ToolDefinition(name, description or "", schema)


def _parse_tool_choice(raw: object, param: str) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("none", "auto", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict):
        function = raw.get("function") if raw.get("type") == "function" else raw  # legacy: {"name": ...}
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            return ToolChoice("named", name)
    raise bad_request(
        f"Invalid value for '{param}': expected 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}.',
        param=param,
    )


def _parse_model(raw: object, catalog: ModelCatalog) -> str:
    if raw is None or raw == "":
        return catalog.default
    if not isinstance(raw, str):
        raise bad_request("Invalid type for 'model': expected a string.", param="model")
    return raw


def _parse_stream(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise bad_request("Invalid type for 'stream': expected a boolean.", param="stream")
    return raw


def _check_n(raw: object) -> None:
    if raw is not None and (type(raw) is not int or raw != 1):
        raise bad_request("Only n=1 is supported.", param="n")


def _parse_stop(raw: object) -> list[str]:
    if raw is None:
        return []
    stops = [raw] if isinstance(raw, str) else raw
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad_request("Invalid type for 'stop': expected a string or an array of strings.", param="stop")
    if len(stops) > MAX_STOPS:
        raise bad_request(f"'stop' accepts at most {MAX_STOPS} sequences.", param="stop")
    if any(len(s) > MAX_STOP_LENGTH for s in stops):
        raise bad_request(f"Each 'stop' sequence may be at most {MAX_STOP_LENGTH} characters long.", param="stop")
    return [s for s in stops if s]


def _parse_max_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` wins over the deprecated ``max_tokens``; both must be valid."""
    values = {}
    for name in ("max_tokens", "max_completion_tokens"):
        raw = body.get(name)
        if raw is not None and (type(raw) is not int or raw < 1):
            raise bad_request(f"Invalid value for '{name}': expected a positive integer.", param=name)
        values[name] = raw
    if values["max_completion_tokens"] is not None:
        return values["max_completion_tokens"]
    return values["max_tokens"]


def _parse_include_usage(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise bad_request("Invalid type for 'stream_options': expected an object.", param="stream_options")
    return bool(raw.get("include_usage"))


def _parse_thinking(raw: object, resolved: ResolvedModel) -> Thinking | None:
    """Thinking from ``reasoning_effort`` and the ``-think`` / ``-think-<effort>`` suffix.

    An explicit ``reasoning_effort`` decides, ``"none"`` included (it turns thinking off even on a
    ``-think`` model; ``minimal`` is the model's lowest effort); without one, a ``-think`` model
    thinks at the suffix's effort, else the model's strongest. The model's own options decide what
    is finally sent (:func:`~claude2api.core.catalog.plan_thinking`).
    """
    if raw is None:
        intent = intent_from_suffix(resolved)
        return Thinking(intent.effort) if intent else None
    if not isinstance(raw, str):
        raise bad_request("Invalid type for 'reasoning_effort': expected a string.", param="reasoning_effort")
    try:
        intent = intent_from_reasoning_effort(raw)
    except ValueError:
        allowed = ", ".join(sorted(REASONING_EFFORTS | {"none"}))
        raise bad_request(
            f"Invalid value for 'reasoning_effort': {clip(repr(raw))}; expected one of {allowed}.",
            param="reasoning_effort",
        ) from None
    return Thinking(intent.effort) if intent.enabled else None


def _parse_response_format(raw: object) -> tuple[str | None, list[str]]:
    """The JSON mode asked for and the prompt instructions that emulate it (claude.ai has no such knob)."""
    if raw is None:
        return None, []
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}  # not an object: no type, refused below
    kind = fields.get("type")
    if kind == "text":
        return None, []
    if kind == "json_object":
        return kind, [json_format_instruction(None)]
    if kind == "json_schema":
        spec = fields.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request(
                "Invalid type for 'response_format.json_schema': expected an object.",
                param="response_format.json_schema",
            )
        return kind, [json_format_instruction(spec.get("schema", {}))]
    raise bad_request(
        "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
        param="response_format",
    )


def json_format_instruction(schema: object) -> str:
    """The prompt instruction emulating a JSON mode: any JSON object (``schema`` ``None``) or a
    value conforming to ``schema``. Shared with the Responses dialect's ``text.format``."""
    if schema is None:
        return _JSON_OBJECT_INSTRUCTION
    return _JSON_SCHEMA_INSTRUCTION.format(schema=json.dumps(schema, ensure_ascii=False))


def _parse_messages(raw: object) -> list[Message]:
    if raw is None:
        raise bad_request("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(raw, list):
        raise bad_request("Invalid type for 'messages': expected an array.", param="messages")
    if not raw:
        raise bad_request("'messages' must contain at least one message.", param="messages")
    return [_parse_message(m, i) for i, m in enumerate(raw)]


def _parse_message(raw: object, i: int) -> Message:
    if not isinstance(raw, dict):
        raise bad_request(f"Invalid type for 'messages[{i}]': expected an object.", param=f"messages[{i}]")
    name = raw.get("role")
    if not isinstance(name, str) or (role := _ROLES.get(name)) is None:
        raise bad_request(
            f"Invalid value for 'messages[{i}].role': expected one of {', '.join(_ROLES)}.",
            param=f"messages[{i}].role",
        )
    parts = _parse_content(raw.get("content"), i, null_ok=role == "assistant")
    if role == "assistant":
        # Reasoning echoed back (reasoning_content / reasoning fields are simply not read).
        parts = [TextPart(strip_think_blocks(p.text)) if isinstance(p, TextPart) else p for p in parts]
        parts += _parse_tool_calls(raw, i)
    elif role == "tool":
        parts = [ToolResult(_tool_result_id(raw, name, i), [p for p in parts if isinstance(p, TextPart | ImagePart)])]
    return Message(role, parts or [TextPart("")])


def _tool_result_id(raw: dict[str, Any], role_name: str, i: int) -> str:
    """The call a ``tool`` message answers; a legacy ``function`` message answers by name."""
    if role_name == "function":
        return f"function:{raw.get('name')}"
    call_id = raw.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"Missing required parameter: 'messages[{i}].tool_call_id'.", param=f"messages[{i}].tool_call_id")
    return upstream_call_id(call_id)


def strip_think_blocks(text: str) -> str:
    """``text`` without its ``<think>…</think>`` / ``<thinking>…</thinking>`` blocks (any case) and
    the whitespace after each: ``re.sub(r"<(think|thinking)>.*?</\\1>\\s*", "", text, flags=DOTALL|I)``.

    That regex is quadratic on unclosed tags (each one scans to the end of the text); this is linear:
    the closing tag found for one opening tag is remembered, so the text after an opening tag is
    searched at most once per tag name.
    """
    pieces: list[str] = []
    kept_from = 0  # start of the text not yet copied to pieces
    next_close: dict[str, re.Match[str] | None] = {}  # per tag name: first closing tag at or after a position
    pos = 0
    while (opening := _THINK_OPEN.search(text, pos)) is not None:
        name = opening.group(1).lower()
        close = next_close.get(name)
        if name not in next_close or (close is not None and close.start() < opening.end()):
            close = next_close[name] = _THINK_CLOSE[name].search(text, opening.end())
        if close is None:  # no closing tag anywhere after: this opening tag stays, look further
            pos = opening.start() + 1
            continue
        pieces.append(text[kept_from : opening.start()])
        kept_from = pos = close.end()
    return text if not pieces else "".join(pieces) + text[kept_from:]


def _parse_content(content: object, i: int, *, null_ok: bool) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if content is None and null_ok:
        return []
    if not isinstance(content, list):
        raise bad_request(
            f"Invalid type for 'messages[{i}].content': expected a string or an array of content parts.",
            param=f"messages[{i}].content",
        )
    return [_parse_part(part, f"messages[{i}].content[{j}]") for j, part in enumerate(content)]


def _parse_part(part: object, param: str) -> Part:
    """A content part; ``refusal`` parts (assistant history) count as text."""
    fields: dict[str, Any] = part if isinstance(part, dict) else {}  # not an object: no type, refused below
    kind = fields.get("type")
    if kind in ("text", "refusal"):
        text = fields.get(kind)
        if isinstance(text, str):
            return TextPart(text)
    elif kind == "file":
        return _parse_file(fields.get("file"), param)
    elif kind == "image_url":
        image = fields.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image  # a bare string from some clients
        if isinstance(url, str):
            return parse_image_url(url, param)
    else:
        raise bad_request(
            f"Unsupported content part type {clip(repr(kind))} in '{param}': only text, image_url and file are supported.",
            param=param,
        )
    raise bad_request(f"Invalid content part '{param}': malformed '{kind}' part.", param=param)


def parse_image_url(url: str, param: str) -> ImagePart:
    """A ``data:`` URL becomes inline bytes; an http(s) URL is kept for the daemon to download."""
    if url[:5].lower() == "data:":
        return _decode_data_url(url, param)
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return ImagePart(url=url)
    raise bad_request(f"Invalid image URL in '{param}': expected a data: or http(s) URL.", param=param)


def _decode_data_url(url: str, param: str) -> ImagePart:
    declared = url[5:].split(",", 1)[0].split(";")
    if len(declared) < 2 or not is_image_media_type(declared[0].strip().lower()):
        raise bad_request(
            f"Invalid image data URL in '{param}': expected data:image/<type>;base64,<data>.", param=param
        )
    try:
        media_type, decoded = decode_data_url(url)
    except ValueError:
        raise bad_request(f"Invalid base64 image data in '{param}'.", param=param) from None
    return ImagePart(media_type=media_type, data=decoded)


def _parse_tool_calls(message: dict[str, Any], i: int) -> list[Part]:
    """An assistant message's past tool calls (and the legacy single ``function_call``)."""
    raw = message.get("tool_calls")
    if raw is not None and not isinstance(raw, list):
        raise bad_request(f"Invalid type for 'messages[{i}].tool_calls': expected an array.", param=f"messages[{i}].tool_calls")
    calls: list[Part] = []
    for j, call in enumerate(raw or []):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request(f"Invalid value for '{param}': expected a function call with a name.", param=param)
        call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{i}_{j}"
        calls.append(ToolCall(upstream_call_id(call_id), function["name"], _arguments(function.get("arguments"))))
    legacy = message.get("function_call")
    if isinstance(legacy, dict) and isinstance(legacy.get("name"), str):
        calls.append(ToolCall(f"function:{legacy['name']}", legacy["name"], _arguments(legacy.get("arguments"))))
    return calls
def _parse_file(file: object, param: str) -> Part:
    """A ``file`` part: ``file_data`` (a data: URL or bare base64) with its ``filename``. File ids
    need OpenAI's Files API, which claude2api does not have."""
    if not isinstance(file, dict):
        raise bad_request(f"Invalid content part '{param}': malformed 'file' part.", param=param)
    if file.get("file_id") is not None and file.get("file_data") is None:
        raise bad_request(
            f"Unsupported 'file_id' in '{param}.file': file ids are not supported, as claude2api has no Files API;"
            " send the file inline as 'file_data' (a data: URL) with its 'filename'.",
            param=f"{param}.file.file_id",
        )
    data, filename = file.get("file_data"), file.get("filename")
    if not isinstance(data, str) or not data or (filename is not None and not isinstance(filename, str)):
        raise bad_request(
            f"Invalid file part '{param}.file': expected 'file_data' (a data: URL) and an optional 'filename' string.",
            param=f"{param}.file",
        )
    try:
        return document_from_data_url(data, filename)
    except DocumentError as exc:
        raise bad_request(f"Invalid file in '{param}': {exc}.", param=f"{param}.file") from None


def _describe_tool_calls(message: dict[str, Any]) -> str:
    """Past tool calls of an assistant message as text, so the history keeps them."""
    calls = message.get("tool_calls")
    functions = [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    functions.append(message.get("function_call"))  # the legacy single-call field
    return "\n".join(
        f"[called tool {f.get('name')} with {_arguments(f.get('arguments'))}]"
        for f in functions
        if isinstance(f, dict)
    )


def _arguments(raw: object) -> str:
    """Tool-call arguments are a JSON string on the wire; some clients send the object itself."""
    if raw is None:
        return "{}"
    return raw if isinstance(raw, str) else compact_json(raw)


# ---------------------------------------------------------------------------------------------
# Rendering

#: Where thinking goes in the output; the daemon setting, overridable by ``OpenAIOptions``.
THINKING_OUTPUTS = ("reasoning_content", "reasoning", "both", "think_tags", "hidden")
_REASONING_KEYS = {
    "reasoning_content": ("reasoning_content",),
    "reasoning": ("reasoning",),
    "both": ("reasoning_content", "reasoning"),
}
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"

#: Claude stop reason → OpenAI finish reason (docs/client-contract.md §7); unknown → "stop".
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_TOOL_EVENTS = frozenset({ToolCallStart, ToolCallDelta, ToolCallEnd})
_SEARCH_EVENT_TYPES = frozenset(SEARCH_EVENTS)


class _Renderer:
    """Common state of :class:`OpenAIStream` and :class:`OpenAICollector`.

    ``_shape`` turns the reply's (thinking, answer) pieces into (reasoning, content) per the thinking
    output mode; in ``think_tags`` mode thinking is wrapped in ``<think>`` tags inside ``content``.
    """

    def __init__(
        self,
        model: str,
        options: OpenAIOptions,
        thinking_output: str,
        prompt_tokens: int,
        stops: list[str],
        max_tokens: int | None,
        created: int | None = None,
        completion_id: str | None = None,
    ) -> None:
        mode = options.thinking_output or thinking_output
        if mode not in THINKING_OUTPUTS:
            raise ValueError(f"unknown thinking output mode {mode!r}; expected one of {THINKING_OUTPUTS}")
        if mode == "think_tags" and options.response_format:
            mode = "hidden"  # tags in content would break the JSON the client asked for
        self.model = model
        self.options = options
        self.id = completion_id or f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time()) if created is None else created
        self._prompt_tokens = max(prompt_tokens, 1)
        self._reply = ReplyCutter(stops, max_tokens)
        self._reasoning_keys = _REASONING_KEYS.get(mode, ())
        self._tags = mode == "think_tags"
        self._in_think = False
        #: claude.ai's searches in this reply (for the metrics; chat usage has no field for them).
        self.web_searches = 0
        self._setup()

    def _setup(self) -> None:
        """Subclass state, set up once the common state above exists."""

    @property
    def done(self) -> bool:
        """True once the reply is over (Stop, a stop string or the length cap): stop reading upstream."""
        return self._reply.stop_reason is not None

    @property
    def finish_reason(self) -> str | None:
        reason = self._reply.stop_reason
        return None if reason is None else FINISH_REASONS.get(reason, "stop")

    def _shape(self, thinking: str, text: str) -> tuple[str, str]:
        if not self._tags:
            return (thinking if self._reasoning_keys else ""), text
        content = ""
        if thinking:
            content = thinking if self._in_think else THINK_OPEN + thinking
            self._in_think = True
        if self._in_think and (text or self.done):
            content += THINK_CLOSE
            self._in_think = False
        return "", content + text

    def _usage(self) -> dict[str, Any]:
        reasoning = self._reply.thinking.tokens
        completion = self._reply.answer.tokens + reasoning
        usage: dict[str, Any] = {
            "prompt_tokens": self._prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self._prompt_tokens + completion,
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    @property
    def output_tokens(self) -> int:
        """Tokens of the reply so far, reasoning included (an estimate, as in ``usage``)."""
        return self._reply.answer.tokens + self._reply.thinking.tokens


class OpenAIStream(_Renderer):
    """Renders events as ``chat.completion.chunk`` SSE frames (bytes ready to write).

    Call :meth:`feed` per event, :meth:`keepalive` on idle, :meth:`finish` at the end of the
    upstream stream, or :meth:`error_frame` if it broke. Stop reading the upstream once
    :attr:`done` is true.
    """

    #: A str as a JSON string, as ``_dumps`` writes string values (``ensure_ascii=False``).
    _json_string = staticmethod(json.encoder.encode_basestring)

    def _setup(self) -> None:
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        # Every choice chunk is _prefix + <delta JSON> + finish-reason tail + _suffix.
        self._prefix = f'data: {compact_json(head)[:-1]},"system_fingerprint":null,"choices":[{{"index":0,"delta":'
        self._suffix = ',"usage":null}\n\n' if self.options.include_usage else "}\n\n"
        self._head = head
        self._started = False
        self._closed = False

    def role_chunk(self) -> bytes:
        """The first frame (``role: assistant``); empty if already sent. Sent automatically."""
        return self._start().encode()

    def feed(self, event: Event) -> bytes:
        if self._closed or self.done:
            return b""
        if event.__class__ in _TOOL_EVENTS:
            return (self._start() + self._tool_chunk(event)).encode()
        reasoning, content = self._shape(*self._reply.feed(event))
        out = self._start() + self._pieces(reasoning, content)
        if self.done:
            out += self._finish_chunk()
        return out.encode()

    def keepalive(self) -> bytes:
        """An empty-content chunk: unlike an SSE comment, every client parser accepts it."""
        if self._closed or self.done:
            return b""
        return (self._start() + self._chunk('{"content":""}')).encode()

    def finish(self) -> bytes:
        """Finish chunk (unless already sent), usage chunk when asked for, ``[DONE]``."""
        if self._closed:
            return b""
        self._closed = True
        out = self._start()
        if not self.done:
            out += self._pieces(*self._shape("", self._reply.end())) + self._finish_chunk()
        if self.options.include_usage:
            out += self._usage_chunk()
        return (out + "data: [DONE]\n\n").encode()

    def error_frame(self, message: str, type: str = "server_error", code: str | None = None) -> bytes:
        """An in-band error after the 200 went out (the SDK raises ``openai.APIError``), then ``[DONE]``."""
        self._closed = True
        error = {"error": {"message": message, "type": type, "param": None, "code": code}}
        return f"data: {compact_json(error)}\n\ndata: [DONE]\n\n".encode()

    def _start(self) -> str:
        if self._started:
            return ""
        self._started = True
        return self._chunk('{"role":"assistant","content":""}')

    def _pieces(self, reasoning: str, content: str) -> str:
        """Reasoning and content go in separate chunks: some front-ends drop one if both share a delta.

        The delta objects are assembled around the JSON string encoder, which is exactly what
        ``_dumps`` does for a string value, at a twentieth of the cost of a ``json.dumps`` call.
        """
        out = ""
        if reasoning:
            value = self._json_string(reasoning)
            out = self._chunk("{" + ",".join(f'"{key}":{value}' for key in self._reasoning_keys) + "}")
        if content:
            out += self._chunk('{"content":' + self._json_string(content) + "}")
        return out

    def _chunk(self, delta_json: str) -> str:
        return f'{self._prefix}{delta_json},"logprobs":null,"finish_reason":null}}]{self._suffix}'

    def _tool_chunk(self, event: Event) -> str:
        """``delta.tool_calls[i]``: id, type and name first, then ``function.arguments`` pieces."""
        if isinstance(event, ToolCallStart):
            call = {
                "index": event.index,
                "id": openai_call_id(event.id),
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
        elif isinstance(event, ToolCallDelta) and event.partial_json:
            call = {"index": event.index, "function": {"arguments": event.partial_json}}
        else:
            return ""
        return self._chunk(compact_json({"tool_calls": [call]}))

    def _usage_chunk(self) -> str:
        chunk = {**self._head, "system_fingerprint": None, "choices": [], "usage": self._usage()}
        return f"data: {compact_json(chunk)}\n\n"

    def _finish_chunk(self) -> str:
        return f'{self._prefix}{{}},"logprobs":null,"finish_reason":"{self.finish_reason}"}}]{self._suffix}'


def url_citation(event: Citation, end: int) -> dict[str, Any]:
    """A ``url_citation`` annotation for the cited span that ends at ``end`` in ``content``."""
    start = max(0, end - len(event.cited_text))
    return {"type": "url_citation", "url_citation": {"start_index": start, "end_index": end, "url": event.url, "title": event.title}}


class OpenAISearchStream(OpenAIStream):
    """:class:`OpenAIStream` for a request with web search: counts the content it sends, and
    sends each citation as ``delta.annotations`` (a ``url_citation``, indexes into ``content``)
    right after the span it cites. Searches themselves have no chat-completions shape; they count."""

    def _setup(self) -> None:
        super()._setup()
        self._length = 0

    def feed(self, event: Event) -> bytes:
        if event.__class__ in _SEARCH_EVENT_TYPES:
            if self._closed or self.done:
                return b""
            if isinstance(event, SearchCall):
                self.web_searches += 1
            elif isinstance(event, Citation):
                delta = {"annotations": [url_citation(event, self._length)]}
                return (self._start() + self._chunk(compact_json(delta))).encode()
            return b""
        return super().feed(event)

    def _pieces(self, reasoning: str, content: str) -> str:
        self._length += len(content)
        return super()._pieces(reasoning, content)


class OpenAICollector(_Renderer):
    """Collects events into one ``chat.completion`` object (non-stream responses); citations
    become ``message.annotations``."""

    def _setup(self) -> None:
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._calls: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []

    def feed(self, event: Event) -> None:
        if self.done:
            return
        if event.__class__ in _SEARCH_EVENT_TYPES:
            if isinstance(event, SearchCall):
                self.web_searches += 1
            elif isinstance(event, Citation):
                self._annotations.append(url_citation(event, sum(map(len, self._content))))
        elif isinstance(event, ToolCallStart):
            function = {"name": event.name, "arguments": ""}
            self._calls.append({"id": openai_call_id(event.id), "type": "function", "function": function})
        elif isinstance(event, ToolCallDelta) and self._calls:
            self._calls[-1]["function"]["arguments"] += event.partial_json
        else:
            self._add(*self._shape(*self._reply.feed(event)))

    def result(self) -> dict[str, Any]:
        """The response body (JSON mode was checked upstream of here, by the output guard)."""
        if not self.done:
            self._add(*self._shape("", self._reply.end()))
        content = "".join(self._content)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if self._calls and not content else content,
            "refusal": None,
        }
        if self._calls:
            message["tool_calls"] = self._calls
        if self._annotations:
            message["annotations"] = self._annotations
        if self._reasoning:
            message.update(dict.fromkeys(self._reasoning_keys, "".join(self._reasoning)))
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
            ],
            "usage": self._usage(),
        }

    def _add(self, reasoning: str, content: str) -> None:
        if reasoning:
            self._reasoning.append(reasoning)
        if content:
            self._content.append(content)


# ---------------------------------------------------------------------------------------------
# Models


def model_object(info: ModelInfo) -> dict[str, Any]:
    """One model, with the fields of both OpenAI's ``Model`` and Anthropic's ``ModelInfo``."""
    return {
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": "anthropic",
        "type": "model",
        "display_name": info.display_name,
        "created_at": info.created_at,
    }


def models_list(catalog: ModelCatalog) -> dict[str, Any]:
    """The ``/v1/models`` body both SDKs read; ``has_more: false`` stops Anthropic's paginator."""
    data = [model_object(info) for info in catalog.models]
    return {
        "object": "list",
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


# ---------------------------------------------------------------------------------------------
# Errors and the dialect object

#: HTTP status -> OpenAI error type, for errors that name no type themselves.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type(error: APIError) -> str:
    if error.type:
        return error.type
    return _ERROR_TYPES.get(error.status, "server_error" if error.status >= 500 else "invalid_request_error")


def error_body(error: APIError, request_id: str | None = None) -> dict[str, Any]:
    """``{"error": {message, type, param, code}}``, as OpenAI's API answers."""
    return {"error": {"message": error.message, "type": error_type(error), "param": error.param, "code": error.code}}


def _error_frame(renderer: OpenAIStream, error: APIError) -> bytes:
    return renderer.error_frame(error.message, error_type(error), error.code)


def _stream(spec: ReplySpec) -> OpenAIStream:
    r = spec.request
    renderer = OpenAIStream if r.web_search is None else OpenAISearchStream
    return renderer(r.model, spec.options, spec.thinking_output, spec.prompt_tokens, r.stop, r.max_tokens)


def _collect(spec: ReplySpec) -> OpenAICollector:
    r = spec.request
    return OpenAICollector(r.model, spec.options, spec.thinking_output, spec.prompt_tokens, r.stop, r.max_tokens)


#: Sampling fields claude.ai has no knob for, with the value that means "not asked".
_SAMPLING_DEFAULTS = {
    "temperature": 1,
    "top_p": 1,
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "seed": None,
    "logit_bias": None,
    "logprobs": False,
    "top_logprobs": None,
}


def unhonoured(body: dict[str, Any], request: ChatRequest) -> list[str]:
    """What this valid request asks for that claude.ai cannot do (notes for the warning line)."""
    notes = [
        f"{name} ignored"
        for name, default in _SAMPLING_DEFAULTS.items()
        if body.get(name) not in (default, None, {})
    ]
    if (body.get("tools") or body.get("functions")) and not request.tools:
        notes.append("tools ignored")
    options = body.get("web_search_options")
    if isinstance(options, dict) and options.get("search_context_size") not in (None, "medium"):
        notes.append("web_search_options.search_context_size ignored")
    return notes


OPENAI = Dialect(
    name="openai",
    parse=parse_chat_request,
    stream=_stream,
    collect=_collect,
    error_body=error_body,
    error_frame=_error_frame,
    unhonoured=unhonoured,
)
