"""OpenAI Responses API dialect: request parsing, stream and non-stream rendering.

The wire contract is openai-python's ``types/responses`` and its ``responses.stream()`` helper
(``lib/streaming/responses``), which every Responses client (the SDK, LangChain, litellm, Codex CLI)
agrees with. In short:

* Non-stream: one ``response`` object (``id`` ``resp_…``, ``status``, ``output`` items, ``usage``).
* Stream: ``event: <type>`` + ``data: {"type":"<type>",…,"sequence_number":n}`` frames, numbered
  from 0: ``response.created``, ``response.in_progress``, then per output item
  ``response.output_item.added`` … ``response.output_item.done`` (a ``reasoning`` item with its
  summary events when thinking is shown, a ``message`` item with ``content_part`` and
  ``output_text`` events), and last ``response.completed`` / ``response.incomplete`` (cut by
  ``max_output_tokens``) / ``response.failed`` (a failure after the commit point). No ``[DONE]``.
  Every item added is done before the end: the SDK's helper refuses to complete otherwise.

Function tools are refused for now (a 400 that says so): nothing in the pipeline produces tool
calls yet. The renderers already turn the neutral tool-call events (``ToolCallStart`` /
``ToolCallDelta`` / ``ToolCallEnd``) into ``function_call`` output items, so accepting tools is a
parsing change once tool calling lands. Past ``function_call`` / ``function_call_output`` items in
the input are kept in the history as text, worded as the other dialects word tool history.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from claude2api.core.catalog import (
    REASONING_EFFORTS,
    ModelCatalog,
    ResolvedModel,
    intent_from_reasoning_effort,
    intent_from_suffix,
)
from claude2api.core.failures import APIError, bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.reply import ReplyCutter
from claude2api.core.search import location_text
from claude2api.core.tools import clean_json
from claude2api.core.types import (
    ChatRequest,
    Citation,
    Event,
    Message,
    Part,
    Role,
    SearchCall,
    SearchResults,
    TextPart,
    Thinking,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    WebSearch,
)
from claude2api.dialects.base import Dialect, ReplySpec, resolve_model
from claude2api.dialects.openai import (
    error_body as openai_error_body,
)
from claude2api.dialects.openai import (
    json_format_instruction,
    parse_image_url,
    strip_think_blocks,
)

# ---------------------------------------------------------------------------------------------
# Request parsing

_MESSAGE_ROLES: dict[str, Role] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}
#: ``reasoning.summary`` values that ask to see the reasoning (``null`` / absent: hidden).
SUMMARY_MODES = ("auto", "concise", "detailed")
#: ``tool_choice`` strings the API defines.
TOOL_CHOICES = ("none", "auto", "required")
#: ``metadata``: at most 16 string pairs, keys up to 64 and values up to 512 characters (OpenAI's bounds).
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
#: Longest ``previous_response_id`` looked up (ours are ``resp_`` + 32 hex digits).
MAX_RESPONSE_ID = 128
#: Request fields that need OpenAI's own platform (stored prompts, conversations, background jobs).
_UNSUPPORTED_FIELDS = {
    "conversation": "the Conversations API is not supported; continue with 'previous_response_id'",
    "prompt": "stored prompt templates are not supported; send 'instructions' and 'input'",
}


@dataclass(slots=True)
class ResponsesOptions:
    """What the handler and renderer need from the request beyond the :class:`ChatRequest`."""

    #: Render reasoning items: thinking is on and ``reasoning.summary`` asked to see it.
    show_reasoning: bool = False
    #: ``"json_object"``, ``"json_schema"`` or ``None`` (plain text).
    text_format: str | None = None
    #: Keep the finished exchange for ``previous_response_id`` and ``GET /v1/responses/{id}``.
    store: bool = True
    previous_response_id: str | None = None
    #: How many leading messages of the request come from ``instructions`` (not carried over).
    instruction_messages: int = 0
    #: Request settings the ``response`` object repeats (``instructions``, ``tools``, ``metadata``…).
    echo: dict[str, Any] = field(default_factory=dict)


def parse_responses_request(body: object, catalog: ModelCatalog) -> tuple[ChatRequest, ResponsesOptions]:
    """Validate a decoded ``POST /v1/responses`` body and convert it to the neutral request.

    The request's messages are its ``instructions`` then its ``input``; the history of a
    ``previous_response_id`` is inserted between them by :func:`continue_conversation`. Unknown
    fields are ignored (clients send many: ``include``, ``prompt_cache_key``, ``client_metadata``…);
    malformed known ones raise a 400 naming the ``param``; an unknown model raises a 404.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for name, reason in _UNSUPPORTED_FIELDS.items():
        if body.get(name) is not None:
            raise bad_request(f"'{name}' is not supported: {reason}.", param=name)
    if body.get("background") is True:
        raise bad_request(
            "Background responses are not supported; send 'background': false.", param="background"
        )
    resolved = resolve_model(catalog, _parse_model(body.get("model"), catalog))
    instructions = _parse_instructions(body.get("instructions"))
    conversation = _parse_input(body.get("input"))
    tools, tool_choice, parallel = _parse_tools(body)
    thinking, effort, summary = _parse_reasoning(body.get("reasoning"), resolved)
    text_format, text_config, format_instructions = _parse_text(body.get("text"))
    request = ChatRequest(
        model=resolved.requested,
        upstream_model=resolved.upstream,
        messages=instructions + conversation,
        stream=_boolean(body, "stream", False),
        thinking=thinking,
        max_tokens=_parse_max_output_tokens(body.get("max_output_tokens")),
        instructions=format_instructions,
        web_search=_parse_web_search(tools, resolved.search),
    )
    user = body.get("user")
    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": request.max_tokens,
        "metadata": _parse_metadata(body.get("metadata")),
        "parallel_tool_calls": parallel,
        "reasoning": {"effort": effort, "summary": summary},
        "temperature": _number(body, "temperature", 0, 2),
        "text": text_config,
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": _number(body, "top_p", 0, 1),
        "truncation": "disabled",
        "user": user if isinstance(user, str) else None,  # some front-ends send an object here
    }
    previous = _parse_previous_response_id(body.get("previous_response_id"))
    store = _boolean(body, "store", True)
    options = ResponsesOptions(
        show_reasoning=thinking is not None and summary is not None,
        text_format=text_format,
        store=store,
        previous_response_id=previous,
        instruction_messages=len(instructions),
        echo={**echo, "previous_response_id": previous, "store": store},
    )
    return request, options


def continue_conversation(
    request: ChatRequest, options: ResponsesOptions, history: list[Message]
) -> ChatRequest:
    """``request`` continuing a kept conversation: its instructions, then ``history``, then its input."""
    cut = options.instruction_messages
    return ChatRequest(
        model=request.model,
        upstream_model=request.upstream_model,
        messages=[*request.messages[:cut], *history, *request.messages[cut:]],
        stream=request.stream,
        thinking=request.thinking,
        stop=request.stop,
        max_tokens=request.max_tokens,
        instructions=request.instructions,
        web_search=request.web_search,
    )


def conversation_of(request: ChatRequest, options: ResponsesOptions) -> list[Message]:
    """The request's messages without those from ``instructions``: what a follow-up carries over."""
    return request.messages[options.instruction_messages :]


def unknown_previous_response(response_id: str) -> APIError:
    """A ``previous_response_id`` not (or no longer) kept, or another caller's."""
    return bad_request(
        f"Previous response with id '{clip(response_id)}' not found: it is unknown, expired or was "
        "not stored ('store': false).",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def response_not_found(response_id: str) -> APIError:
    return APIError(
        404,
        f"Response with id '{clip(response_id)}' not found.",
        type="invalid_request_error",
        param="response_id",
        code="response_not_found",
    )


def _parse_model(raw: object, catalog: ModelCatalog) -> str:
    if raw is None or raw == "":
        return catalog.default
    if not isinstance(raw, str):
        raise bad_request("Invalid type for 'model': expected a string.", param="model")
    return raw


def _boolean(body: dict[str, Any], name: str, default: bool) -> bool:
    raw = body.get(name)
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise bad_request(f"Invalid type for '{name}': expected a boolean.", param=name)
    return raw


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """A sampling setting: accepted and echoed, not applied (claude.ai has no such knobs)."""
    raw = body.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not low <= raw <= high:
        raise bad_request(
            f"Invalid value for '{name}': expected a number from {low:g} to {high:g}.", param=name
        )
    return raw


def _parse_max_output_tokens(raw: object) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or raw < 1:
        raise bad_request(
            "Invalid value for 'max_output_tokens': expected a positive integer.", param="max_output_tokens"
        )
    return raw


def _parse_previous_response_id(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > MAX_RESPONSE_ID:
        raise bad_request(
            "Invalid value for 'previous_response_id': expected a response id such as 'resp_…'.",
            param="previous_response_id",
        )
    return raw


def _parse_metadata(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_METADATA_PAIRS:
        raise bad_request(
            f"Invalid value for 'metadata': expected an object of at most {MAX_METADATA_PAIRS} pairs.",
            param="metadata",
        )
    for key, value in raw.items():
        if len(key) > MAX_METADATA_KEY or not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise bad_request(
                f"Invalid value for 'metadata': keys are at most {MAX_METADATA_KEY} characters and values "
                f"strings of at most {MAX_METADATA_VALUE}.",
                param="metadata",
            )
    return raw


def _parse_reasoning(raw: object, resolved: ResolvedModel) -> tuple[Thinking | None, str | None, str | None]:
    """(thinking, effort, summary) from ``reasoning``, mapped as chat completions' ``reasoning_effort``.

    An explicit ``effort`` decides (``"none"`` turns thinking off even on a ``-think`` model);
    without one a ``-think`` model thinks at the suffix's effort (bare ``-think``: the model's
    strongest); the model's own options decide what is sent. ``summary`` (or the deprecated
    ``generate_summary``) asks to see the thinking as the reasoning item's summary.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("Invalid type for 'reasoning': expected an object.", param="reasoning")
    effort = raw.get("effort")
    if effort is None:
        intent = intent_from_suffix(resolved)
        thinking = Thinking(intent.effort) if intent else None
    elif effort == "none":
        thinking = None
    elif isinstance(effort, str) and effort in REASONING_EFFORTS:
        thinking = Thinking(intent_from_reasoning_effort(effort).effort)
    else:
        allowed = ", ".join(sorted(REASONING_EFFORTS | {"none"}))
        raise bad_request(
            f"Invalid value for 'reasoning.effort': {clip(repr(effort))}; expected one of {allowed}.",
            param="reasoning.effort",
        )
    summary = raw.get("summary", raw.get("generate_summary"))
    if summary is not None and summary not in SUMMARY_MODES:
        raise bad_request(
            f"Invalid value for 'reasoning.summary': expected one of {', '.join(SUMMARY_MODES)}.",
            param="reasoning.summary",
        )
    return thinking, (thinking.effort if thinking else effort), summary


def _parse_text(raw: object) -> tuple[str | None, dict[str, Any], list[str]]:
    """(JSON mode, the ``text`` config to echo, prompt instructions emulating the mode)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise bad_request("Invalid type for 'text': expected an object.", param="text")
    spec = raw.get("format")
    if spec is None:
        spec = {"type": "text"}
    kind = spec.get("type") if isinstance(spec, dict) else None
    echo = {"format": spec, "verbosity": raw.get("verbosity", "medium")}
    if kind == "text":
        return None, echo, []
    if kind == "json_object":
        return kind, echo, [json_format_instruction(None)]
    if kind == "json_schema":
        assert isinstance(spec, dict)
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise bad_request(
                "Invalid type for 'text.format.schema': expected a JSON Schema object.",
                param="text.format.schema",
            )
        if not isinstance(spec.get("name"), str):
            raise bad_request("Missing required parameter: 'text.format.name'.", param="text.format.name")
        return kind, echo, [json_format_instruction(schema)]
    raise bad_request(
        "Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
        param="text.format.type",
    )


#: Responses tool types that ask for web search (claude.ai's own).
WEB_SEARCH_TOOL_TYPES = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26"})


def _parse_web_search(tools: list[Any], suffix: bool) -> WebSearch | None:
    """The ``web_search`` tool (``filters.allowed_domains``, ``user_location``), or the ``-search`` suffix."""
    for tool in tools:
        if tool["type"] in WEB_SEARCH_TOOL_TYPES:
            filters = tool.get("filters")
            domains = filters.get("allowed_domains") if isinstance(filters, dict) else None
            if domains is not None and not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)):
                raise bad_request(
                    "Invalid type for 'tools[].filters.allowed_domains': expected an array of strings.",
                    param="tools",
                )
            return WebSearch(allowed_domains=domains or [], user_location=location_text(tool.get("user_location")))
    return WebSearch(native=False) if suffix else None


def _parse_tools(body: dict[str, Any]) -> tuple[list[Any], Any, bool]:
    """(tools, tool_choice, parallel_tool_calls), validated and echoed.

    Tools are refused unless ``tool_choice`` is ``"none"`` (then the model may not call any, and
    ignoring them is exactly right): tool calling is not wired into this dialect yet, and silently
    dropping tools would leave a client waiting for calls that never come.
    """
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("type"), str) for t in tools
    ):
        raise bad_request(
            "Invalid type for 'tools': expected an array of tool objects with a 'type'.", param="tools"
        )
    choice = body.get("tool_choice")
    if choice is None:
        choice = "auto"
    if not (choice in TOOL_CHOICES or (isinstance(choice, dict) and isinstance(choice.get("type"), str))):
        raise bad_request(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a tool choice object.",
            param="tool_choice",
        )
    parallel = _boolean(body, "parallel_tool_calls", True)
    functions = [t for t in tools if t["type"] not in WEB_SEARCH_TOOL_TYPES]
    if functions and choice != "none":
        kinds = ", ".join(dict.fromkeys(clip(t["type"], 40) for t in functions))
        raise bad_request(
            f"Tools are not supported yet by this server (got tools of type {kinds}); "
            "send no 'tools', or 'tool_choice': 'none'.",
            param="tools",
            code="tools_not_supported",
        )
    if choice == "required" or isinstance(choice, dict):
        raise bad_request(
            "'tool_choice' asks for a tool call, but no tools are available.", param="tool_choice"
        )
    return tools, choice, parallel


def _parse_instructions(raw: object) -> list[Message]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [Message("system", [TextPart(raw)])]
    if isinstance(raw, list):  # a list of input items, as the API also allows
        return [
            Message("system", m.parts) if m.role != "system" else m for m in _parse_items(raw, "instructions")
        ]
    raise bad_request("Invalid type for 'instructions': expected a string.", param="instructions")


def _parse_input(raw: object) -> list[Message]:
    if raw is None:
        raise bad_request("Missing required parameter: 'input'.", param="input")
    if isinstance(raw, str):
        return [Message("user", [TextPart(raw)])]
    if not isinstance(raw, list):
        raise bad_request(
            "Invalid type for 'input': expected a string or an array of input items.", param="input"
        )
    messages = _parse_items(raw, "input")
    if not messages:
        raise bad_request("'input' must contain at least one message.", param="input")
    return messages


def _parse_items(items: list[Any], path: str) -> list[Message]:
    """Input items to messages; items that carry nothing for claude.ai (reasoning) are left out."""
    messages: list[Message] = []
    for i, item in enumerate(items):
        param = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"Invalid type for '{param}': expected an object.", param=param)
        kind = item.get("type", "message")  # EasyInputMessage has no type
        parser = _ITEM_PARSERS.get(kind) if isinstance(kind, str) else None
        if parser is None:
            raise bad_request(
                f"Unsupported input item type {clip(repr(kind))} in '{param}': supported are "
                f"{', '.join(_ITEM_PARSERS)}.",
                param=param,
            )
        message = parser(item, param)
        if message is not None:
            messages.append(message)
    return messages


def _message_item(item: dict[str, Any], param: str) -> Message | None:
    name = item.get("role")
    role = _MESSAGE_ROLES.get(name) if isinstance(name, str) else None
    if role is None:
        raise bad_request(
            f"Invalid value for '{param}.role': expected one of {', '.join(_MESSAGE_ROLES)}.",
            param=f"{param}.role",
        )
    parts = _parse_content(item.get("content"), f"{param}.content")
    if role == "assistant":
        # Reasoning echoed back inside the text by some front-ends; reasoning items are dropped anyway.
        parts = [TextPart(strip_think_blocks(p.text)) if isinstance(p, TextPart) else p for p in parts]
    return Message(role, parts) if parts else None


def _parse_content(content: object, param: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise bad_request(
            f"Invalid type for '{param}': expected a string or an array of content parts.", param=param
        )
    parts: list[Part] = []
    for j, part in enumerate(content):
        parsed = _parse_part(part, f"{param}[{j}]")
        if parsed is not None:
            parts.append(parsed)
    return parts


def _parse_part(part: object, param: str) -> Part | None:
    """A content part: text of any kind (``input_text``, and ``output_text`` / ``refusal`` in
    assistant history), or an image by URL or data URL; files are refused for now."""
    kind = part.get("type") if isinstance(part, dict) else None
    if not isinstance(part, dict):
        raise bad_request(f"Invalid type for '{param}': expected a content part object.", param=param)
    if kind in ("input_text", "output_text", "text", "refusal"):
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise bad_request(f"Invalid content part '{param}': '{kind}' needs a string.", param=param)
        return TextPart(text) if text else None
    if kind == "input_image":
        url = part.get("image_url")
        if part.get("file_id") is not None and url is None:
            raise bad_request(
                f"Images by 'file_id' are not supported in '{param}': send 'image_url' (an http(s) or data: URL).",
                param=param,
            )
        if not isinstance(url, str):
            raise bad_request(
                f"Invalid content part '{param}': 'input_image' needs an 'image_url'.", param=param
            )
        return parse_image_url(url, param)
    if kind == "input_file":
        raise bad_request(
            f"File inputs ('input_file' in '{param}') are not supported yet; send the text as 'input_text'.",
            param=param,
            code="unsupported_content",
        )
    raise bad_request(
        f"Unsupported content part type {clip(repr(kind))} in '{param}': supported are input_text and input_image.",
        param=param,
    )


def _function_call_item(item: dict[str, Any], param: str) -> Message:
    """A past function call, as text in the assistant's turn (the other dialects' wording)."""
    name, arguments = item.get("name"), item.get("arguments")
    if not isinstance(name, str) or not isinstance(arguments, str):
        raise bad_request(
            f"Invalid item '{param}': a function_call needs string 'name' and 'arguments'.", param=param
        )
    return Message("assistant", [TextPart(f"[called tool {name} with {arguments or '{}'}]")])


def _function_call_output_item(item: dict[str, Any], param: str) -> Message:
    """A function's result, as a tool message (text, or content parts)."""
    output = item.get("output")
    if isinstance(output, str):
        parts: list[Part] = [TextPart(output)]
    elif isinstance(output, list):
        parts = _parse_content(output, f"{param}.output")
    else:
        raise bad_request(
            f"Invalid item '{param}': a function_call_output needs an 'output' string or content array.",
            param=f"{param}.output",
        )
    return Message("tool", parts or [TextPart("")])


def _reasoning_item(item: dict[str, Any], param: str) -> None:
    """Reasoning sent back (summaries, encrypted content): claude.ai cannot take it back."""
    return None


_ITEM_PARSERS: dict[str, Callable[[dict[str, Any], str], Message | None]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _reasoning_item,
}


# ---------------------------------------------------------------------------------------------
# Rendering

#: Why a reply ended early (neutral stop reason) → the response's ``incomplete_details.reason``.
INCOMPLETE_REASONS = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class _Renderer:
    """Common state of :class:`ResponsesStream` and :class:`ResponsesCollector`: the reply cut to
    ``max_output_tokens``, the output items, the ``response`` object around them."""

    def __init__(
        self,
        model: str,
        options: ResponsesOptions,
        prompt_tokens: int,
        max_tokens: int | None,
        *,
        response_id: str | None = None,
        created: int | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.id = response_id or new_response_id()
        self.created = int(time.time()) if created is None else created
        self._prompt_tokens = max(prompt_tokens, 1)
        self._reply = ReplyCutter([], max_tokens)
        #: Finished output items, in order.
        self._output: list[dict[str, Any]] = []
        #: The answer text so far (all message items), for the kept history.
        self._answer: list[str] = []
        self.web_searches = 0
        self._setup()

    def _setup(self) -> None:
        """Subclass state, set up once the common state above exists."""

    @property
    def done(self) -> bool:
        """True once the reply is over (Stop or the length cap): stop reading upstream."""
        return self._reply.stop_reason is not None

    @property
    def output_tokens(self) -> int:
        """Tokens of the reply so far, reasoning included (an estimate, as in ``usage``)."""
        return self._reply.answer.tokens + self._reply.thinking.tokens

    @property
    def reply_text(self) -> str:
        """The answer as the client got it: what a follow-up's history carries."""
        return "".join(self._answer)

    def _piece(self, event: Event) -> tuple[str, str]:
        """(kind, text) for ``event``: ``"reasoning"`` when thinking is shown, else ``"text"``."""
        thinking, text = self._reply.feed(event)
        if thinking and self.options.show_reasoning:
            return "reasoning", thinking
        return "text", text

    @property
    def _status(self) -> str:
        return "incomplete" if self._reply.stop_reason in INCOMPLETE_REASONS else "completed"

    def _usage(self) -> dict[str, Any]:
        reasoning = self._reply.thinking.tokens
        output = self._reply.answer.tokens + reasoning
        return {
            "input_tokens": self._prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": self._prompt_tokens + output,
        }

    def response(
        self, status: str, output: list[dict[str, Any]], *, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``response`` object: in progress (no usage yet), or finished."""
        finished = status != "in_progress"
        reason = INCOMPLETE_REASONS.get(self._reply.stop_reason or "") if status == "incomplete" else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": {"reason": reason} if reason else None,
            "model": self.model,
            "output": output,
            **self.options.echo,
            "usage": self._usage() if finished else None,
        }

    @staticmethod
    def _message(item_id: str, text: str, status: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "id": item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [_output_text(text, annotations)],
        }

    @staticmethod
    def _search_call(item_id: str, query: str, status: str) -> dict[str, Any]:
        """claude.ai's search as a ``web_search_call`` item."""
        return {"id": item_id, "type": "web_search_call", "status": status, "action": {"type": "search", "query": query}}

    @staticmethod
    def _function_call(item_id: str, call: ToolCallStart, arguments: str, status: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "call_id": call.id,
            "name": call.name,
            "arguments": arguments,
        }

    @staticmethod
    def _reasoning(item_id: str, summary: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": summary}],
            "encrypted_content": None,
            "status": "completed",
        }


def _output_text(text: str, annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}


def _url_citation(event: Citation, end: int) -> dict[str, Any]:
    """A ``url_citation`` annotation for the cited span ending at ``end`` in the item's text."""
    return {"type": "url_citation", "start_index": max(0, end - len(event.cited_text)), "end_index": end, "url": event.url, "title": event.title}


#: Events that are no text: function calls and web search.
_SIDE_EVENTS = frozenset({ToolCallStart, ToolCallDelta, ToolCallEnd, SearchCall, SearchResults, Citation})


class ResponsesStream(_Renderer):
    """Renders events as Responses SSE frames (bytes ready to write).

    Call :meth:`feed` per event, :meth:`keepalive` on idle, :meth:`finish` at the end of the
    upstream stream, or :meth:`error_frame` if it broke. Stop reading the upstream once
    :attr:`done` is true. :attr:`final` is the finished ``response`` object (``None`` until then,
    and after a failure).

    An output item opens whenever the kind of text (shown reasoning or answer) changes; the reply
    always ends with a message item, empty if need be. With a JSON ``text.format`` the answer is
    held back and sent whole at the end, after the JSON check a non-stream response gets too.
    """

    #: A str as a JSON string, as ``_dumps`` writes string values (``ensure_ascii=False``).
    _json_string = staticmethod(json.encoder.encode_basestring)

    def _setup(self) -> None:
        self._sequence = 0
        self._started = False
        self._closed = False
        self.final: dict[str, Any] | None = None
        self._kind: str | None = None  # kind of the open output item
        self._item_id = ""
        self._pieces: list[str] = []  # text of the open item
        self._has_message = False
        self._call: ToolCallStart | None = None  # the open function_call item's call
        self._has_calls = False
        self._held: list[str] = []  # JSON mode: the answer, sent at the end
        self._annotations: list[dict[str, Any]] = []  # of the open message item

    def feed(self, event: Event) -> bytes:
        if self._closed:
            return b""
        if event.__class__ in _SIDE_EVENTS:
            if isinstance(event, (ToolCallStart, ToolCallDelta, ToolCallEnd)):
                return (self._start() + self._tool_event(event)).encode()
            return (self._start() + self._search_event(event)).encode()
        kind, text = self._piece(event)
        out = self._start() + self._add(kind, text)
        if self.done:
            out += self._close()
        return out.encode()

    def keepalive(self) -> bytes:
        """An SSE comment: every Responses client (SDKs, Codex's parser) skips comments."""
        if self._closed:
            return b""
        return (self._start() or ": keep-alive\n\n").encode()

    def finish(self) -> bytes:
        """Closing frames, unless already sent (the reply ended by itself or was cut)."""
        if self._closed:
            return b""
        return (self._start() + self._add("text", self._reply.end()) + self._close()).encode()

    def error_frame(self, message: str, type: str = "server_error", code: str | None = None) -> bytes:
        """``response.failed`` after the 200 went out, with what was produced so far; the end."""
        if self._closed:
            return b""
        self._closed = True
        out = self._start() + self._close_item("incomplete")
        error = {"code": code or "server_error", "message": message}
        failed = self.response("failed", self._output, error=error)
        return (out + self._event("response.failed", {"response": failed})).encode()

    # -- frames ------------------------------------------------------------------------------

    def _event(self, type_: str, fields: dict[str, Any]) -> str:
        data = compact_json({"type": type_, **fields, "sequence_number": self._sequence})
        self._sequence += 1
        return f"event: {type_}\ndata: {data}\n\n"

    def _start(self) -> str:
        if self._started:
            return ""
        self._started = True
        response = self.response("in_progress", [])
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _add(self, kind: str, text: str) -> str:
        if kind == "text" and self.options.text_format:
            self._held.append(text)
            return ""
        return self._emit(kind, text)

    def _emit(self, kind: str, text: str) -> str:
        """Delta frames for ``text``, opening an item of ``kind`` first if need be."""
        if not text:
            return ""
        out = "" if kind == self._kind else self._close_item("completed") + self._open_item(kind)
        self._pieces.append(text)
        if kind == "text":
            self._answer.append(text)
            # The hot path: assembled around the JSON string encoder, as _dumps would write it.
            data = (
                f'{{"type":"response.output_text.delta","item_id":"{self._item_id}",'
                f'"output_index":{len(self._output)},"content_index":0,'
                f'"delta":{self._json_string(text)},"logprobs":[],"sequence_number":{self._sequence}}}'
            )
            self._sequence += 1
            return f"{out}event: response.output_text.delta\ndata: {data}\n\n"
        return out + self._event(
            "response.reasoning_summary_text.delta",
            {**self._where(), "summary_index": 0, "delta": text},
        )

    def _tool_event(self, event: ToolCallStart | ToolCallDelta | ToolCallEnd) -> str:
        """A function_call item: opened by the start, argument deltas, closed by the end."""
        if self.done:
            return ""
        if isinstance(event, ToolCallStart):
            out = self._close_item("completed")
            self._kind, self._call, self._pieces, self._has_calls = "function_call", event, [], True
            self._item_id = _item_id("fc")
            item = self._function_call(self._item_id, event, "", "in_progress")
            return out + self._event(
                "response.output_item.added", {"output_index": len(self._output), "item": item}
            )
        if self._kind != "function_call":
            return ""  # a delta or end without its start: nothing to attach it to
        if isinstance(event, ToolCallDelta):
            self._pieces.append(event.partial_json)
            self._reply.answer.add(event.partial_json)
            return self._event(
                "response.function_call_arguments.delta", {**self._where(), "delta": event.partial_json}
            )
        return self._close_item("completed")

    def _search_event(self, event: Event) -> str:
        """A ``web_search_call`` item with its in_progress/searching/completed events; a citation
        as an annotation on the open message item (JSON mode holds its text: no annotations)."""
        if self.done:
            return ""
        if isinstance(event, Citation):
            if self._kind != "text":
                return ""
            annotation = _url_citation(event, sum(map(len, self._pieces)))
            self._annotations.append(annotation)
            fields = {"content_index": 0, "annotation_index": len(self._annotations) - 1, "annotation": annotation}
            return self._event("response.output_text.annotation.added", {**self._where(), **fields})
        if not isinstance(event, SearchCall):
            return ""
        self.web_searches += 1
        out = self._close_item("completed")
        item_id, index = _item_id("ws"), len(self._output)
        where = {"item_id": item_id, "output_index": index}
        out += self._event("response.output_item.added", {"output_index": index, "item": self._search_call(item_id, event.query, "in_progress")})
        for phase in ("in_progress", "searching", "completed"):
            out += self._event(f"response.web_search_call.{phase}", where)
        item = self._search_call(item_id, event.query, "completed")
        self._output.append(item)
        return out + self._event("response.output_item.done", {"output_index": index, "item": item})

    def _where(self) -> dict[str, Any]:
        return {"item_id": self._item_id, "output_index": len(self._output)}

    def _open_item(self, kind: str) -> str:
        self._kind = kind
        self._pieces = []
        if kind == "text":
            self._has_message = True
            self._item_id = _item_id("msg")
            item = {**self._message(self._item_id, "", "in_progress"), "content": []}
            part = {"content_index": 0, "part": _output_text("")}
            return self._event(
                "response.output_item.added", {"output_index": len(self._output), "item": item}
            ) + (self._event("response.content_part.added", {**self._where(), **part}))
        self._item_id = _item_id("rs")
        item = {**self._reasoning(self._item_id, ""), "summary": [], "status": "in_progress"}
        part = {"summary_index": 0, "part": {"type": "summary_text", "text": ""}}
        return self._event(
            "response.output_item.added", {"output_index": len(self._output), "item": item}
        ) + (self._event("response.reasoning_summary_part.added", {**self._where(), **part}))

    def _close_item(self, status: str) -> str:
        """The open item's closing events (``status`` is the message's), and it joins the output."""
        if self._kind is None:
            return ""
        text, where = "".join(self._pieces), self._where()
        if self._kind == "function_call":
            assert self._call is not None
            item = self._function_call(self._item_id, self._call, text, status)
            out = self._event("response.function_call_arguments.done", {**where, "arguments": text})
        elif self._kind == "text":
            annotations, self._annotations = self._annotations, []
            item = self._message(self._item_id, text, status, annotations)
            out = self._event(
                "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}
            )
            out += self._event(
                "response.content_part.done",
                {**where, "content_index": 0, "part": _output_text(text, annotations)},
            )
        else:
            item = self._reasoning(self._item_id, text)
            summary = {"type": "summary_text", "text": text}
            out = self._event(
                "response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}
            )
            out += self._event(
                "response.reasoning_summary_part.done", {**where, "summary_index": 0, "part": summary}
            )
        out += self._event("response.output_item.done", {"output_index": len(self._output), "item": item})
        self._output.append(item)
        self._kind = None
        return out

    def _close(self) -> str:
        """The held-back JSON answer (checked), the last items and the final lifecycle event."""
        self._closed = True
        status = self._status
        out = ""
        if self.options.text_format:
            text = "".join(self._held)
            # A length-truncated reply is not checked: the client capped it (as in non-stream).
            if status == "completed":
                try:
                    text = clean_json(text, self.options.text_format)
                except APIError as exc:
                    out += self._close_item("completed")
                    error = {"code": "server_error", "message": exc.message}
                    failed = self.response("failed", self._output, error=error)
                    return out + self._event("response.failed", {"response": failed})
            out += self._emit("text", text)
        if not self._has_message and not self._has_calls:
            out += self._close_item("completed") + self._open_item("text")
        out += self._close_item(status)
        self.final = self.response(status, self._output)
        return out + self._event(f"response.{status}", {"response": self.final})


class ResponsesCollector(_Renderer):
    """Collects events into one ``response`` object (non-stream), with the items a stream would have had."""

    def _setup(self) -> None:
        #: (kind, text pieces, the call of a function_call item); a web_search_call's piece is its query.
        self._items: list[tuple[str, list[str], ToolCallStart | None]] = []
        #: url_citation annotations of message items, by item position.
        self._annotations: dict[int, list[dict[str, Any]]] = {}

    def feed(self, event: Event) -> None:
        if self.done:
            return
        if isinstance(event, SearchCall):
            self.web_searches += 1
            self._items.append(("web_search_call", [event.query], None))
        elif isinstance(event, Citation):
            if self._items and self._items[-1][0] == "text" and not self.options.text_format:
                end = sum(map(len, self._items[-1][1]))
                self._annotations.setdefault(len(self._items) - 1, []).append(_url_citation(event, end))
        elif isinstance(event, ToolCallStart):
            self._items.append(("function_call", [], event))
        elif isinstance(event, ToolCallDelta):
            if self._items and self._items[-1][0] == "function_call":
                self._items[-1][1].append(event.partial_json)
                self._reply.answer.add(event.partial_json)
        elif not isinstance(event, (ToolCallEnd, SearchResults)):
            self._collect(*self._piece(event))

    def result(self) -> dict[str, Any]:
        """The response body. Raises a 502 :class:`APIError` if JSON mode got no valid JSON."""
        if not self.done:
            self._collect("text", self._reply.end())
        status = self._status
        if not any(kind in ("text", "function_call") for kind, _, _ in self._items):
            self._items.append(("text", [], None))
        output: list[dict[str, Any]] = []
        last_message = max((i for i, (kind, _, _) in enumerate(self._items) if kind == "text"), default=-1)
        for i, (kind, pieces, call) in enumerate(self._items):
            text = "".join(pieces)
            if call is not None:
                output.append(self._function_call(_item_id("fc"), call, text, "completed"))
                continue
            if kind == "reasoning":
                output.append(self._reasoning(_item_id("rs"), text))
                continue
            if kind == "web_search_call":
                output.append(self._search_call(_item_id("ws"), text, "completed"))
                continue
            # A length-truncated reply is not checked: the client capped it (OpenAI returns it as is too).
            if self.options.text_format and status == "completed":
                text = clean_json(text, self.options.text_format)
            self._answer.append(text)
            status_i = status if i == last_message else "completed"
            output.append(self._message(_item_id("msg"), text, status_i, self._annotations.get(i)))
        return self.response(status, output)

    def _collect(self, kind: str, text: str) -> None:
        if not text:
            return
        if self._items and self._items[-1][0] == kind:
            self._items[-1][1].append(text)
        else:
            self._items.append((kind, [text], None))


def stored_history(conversation: list[Message], reply: str) -> list[Message]:
    """What a follow-up continues: the conversation so far plus the reply as an assistant turn."""
    return [*conversation, Message("assistant", [TextPart(reply)])]


def deleted_body(response_id: str) -> dict[str, Any]:
    """``DELETE /v1/responses/{id}``'s answer (the SDK discards it; other clients read ``deleted``)."""
    return {"id": response_id, "object": "response", "deleted": True}


# ---------------------------------------------------------------------------------------------
# Errors and the dialect object


def error_body(error: APIError, request_id: str | None = None) -> dict[str, Any]:
    """Errors before the first byte: OpenAI's ``{"error": {message, type, param, code}}``."""
    return openai_error_body(error, request_id)


def _error_frame(renderer: ResponsesStream, error: APIError) -> bytes:
    """A late failure as ``response.failed``, coded as the Responses API codes it."""
    return renderer.error_frame(
        error.message, code="rate_limit_exceeded" if error.status == 429 else "server_error"
    )


def _stream(spec: ReplySpec) -> ResponsesStream:
    return ResponsesStream(spec.request.model, spec.options, spec.prompt_tokens, spec.request.max_tokens)


def _collect(spec: ReplySpec) -> ResponsesCollector:
    return ResponsesCollector(spec.request.model, spec.options, spec.prompt_tokens, spec.request.max_tokens)


RESPONSES = Dialect(
    name="responses",
    parse=parse_responses_request,
    stream=_stream,
    collect=_collect,
    error_body=error_body,
    error_frame=_error_frame,
)
