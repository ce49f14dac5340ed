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

Function tools go to the shared tool-calling machinery (:mod:`claude2api.core.tools`; forced
``tool_choice`` and ``text.format`` JSON honesty are checked by the output guard,
:mod:`claude2api.pipeline.output_guard`, as for the other dialects). ``namespace`` tools (groups of
function tools, as Codex CLI sends) are flattened for the model as ``<namespace>__<name>``; a call of
one is rendered back as ``name`` plus ``namespace``, the way the Responses API reports namespaced
calls. ``web_search`` (or the model's ``-search`` suffix) turns on claude.ai's own web search: its
searches become ``web_search_call`` items (``response.web_search_call.*`` events) and its citations
``url_citation`` annotations on the answer. Other hosted tools (file search, code
interpreter, computer use, image generation, MCP, custom grammar tools) are a 400 naming the type,
unless ``tool_choice`` is ``"none"`` (then no tool may be called and ignoring them is exact).
Past ``function_call`` / ``function_call_output`` items become neutral tool calls and results, with
OpenAI ``call_…`` ids mapped back to claude.ai's ``toolu_…`` ones.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from claude2api.core.catalog import (
    REASONING_EFFORTS,
    ModelCatalog,
    ResolvedModel,
    intent_from_reasoning_effort,
    intent_from_suffix,
)
from claude2api.core.documents import DocumentError, document_from_data_url, safe_filename
from claude2api.core.failures import APIError, bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.reply import ReplyCutter
from claude2api.core.search import location_text
from claude2api.core.tools import (
    ANTHROPIC_TOOL_NAME,
    OPENAI_TOOL_NAME,
    check_tool_choice,
    check_tools,
    openai_call_id,
    tool_choice_instructions,
    upstream_call_id,
)
from claude2api.core.types import (
    ChatRequest,
    Citation,
    DocumentPart,
    Event,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    Role,
    SearchCall,
    SearchResults,
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
#: Hosted tool types that mean claude.ai's own web search (current and preview spellings).
WEB_SEARCH_TOOLS = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
#: Between a namespace and a function's name in the flattened name the model sees.
NAMESPACE_SEPARATOR = "__"
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
    #: Flattened tool name the model calls -> (namespace, function name) the client declared.
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)
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
    offered = _parse_tools(body, resolved.search)
    thinking, effort, summary = _parse_reasoning(body.get("reasoning"), resolved)
    text_config, format_instructions, response_format = _parse_text(body.get("text"))
    request = ChatRequest(
        model=resolved.requested,
        upstream_model=resolved.upstream,
        messages=instructions + conversation,
        stream=_boolean(body, "stream", False),
        thinking=thinking,
        max_tokens=_parse_max_output_tokens(body.get("max_output_tokens")),
        instructions=format_instructions,
        tools=offered.tools,
        tool_choice=offered.choice,
        parallel_tool_calls=offered.parallel,
        web_search=offered.web_search,
        response_format=response_format,
    )
    request.instructions += tool_choice_instructions(request)
    user = body.get("user")
    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": request.max_tokens,
        "metadata": _parse_metadata(body.get("metadata")),
        "parallel_tool_calls": offered.parallel,
        "reasoning": {"effort": effort, "summary": summary},
        "temperature": _number(body, "temperature", 0, 2),
        "text": text_config,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": [_echo_tool(t) for t in body.get("tools") or []],
        "top_p": _number(body, "top_p", 0, 1),
        "truncation": "disabled",
        "user": user if isinstance(user, str) else None,  # some front-ends send an object here
    }
    previous = _parse_previous_response_id(body.get("previous_response_id"))
    store = _boolean(body, "store", True)
    options = ResponsesOptions(
        show_reasoning=thinking is not None and summary is not None,
        namespaced=offered.namespaced,
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
    return dataclasses.replace(request, messages=[*request.messages[:cut], *history, *request.messages[cut:]])


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


def _parse_text(raw: object) -> tuple[dict[str, Any], list[str], ResponseFormat | None]:
    """(the ``text`` config to echo, prompt instructions emulating a JSON mode, the neutral format
    the output guard holds the reply to)."""
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
        return echo, [], None
    if kind == "json_object":
        return echo, [json_format_instruction(None)], ResponseFormat("json_object")
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
        return echo, [json_format_instruction(schema)], ResponseFormat("json_schema", schema)
    raise bad_request(
        "Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
        param="text.format.type",
    )


@dataclass(slots=True)
class _Offered:
    """What ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` ask for, in neutral terms."""

    tools: list[ToolDefinition]
    choice: ToolChoice | None
    parallel: bool
    web_search: WebSearch | None
    namespaced: dict[str, tuple[str, str]]


def _parse_tools(body: dict[str, Any], search_suffix: bool) -> _Offered:
    """Function tools (and those inside ``namespace`` groups, flattened), web search (the
    ``web_search`` tool, or the model's ``-search`` suffix: ``search_suffix``), the choice."""
    raw_tools = body.get("tools")
    if raw_tools is None:
        raw_tools = []
    if not isinstance(raw_tools, list):
        raise bad_request("Invalid type for 'tools': expected an array of tool objects.", param="tools")
    raw_choice = body.get("tool_choice")
    ignore_hosted = raw_choice == "none"
    tools: list[ToolDefinition] = []
    params: list[str] = []  # where each definition came from, for errors
    namespaced: dict[str, tuple[str, str]] = {}
    web_search: WebSearch | None = None
    for n, raw in enumerate(raw_tools):
        param = f"tools[{n}]"
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or not isinstance(kind, str):
            raise bad_request(f"Invalid value for '{param}': expected a tool object with a 'type'.", param=param)
        if kind == "function":
            tools.append(_function_tool(raw, param))
            params.append(param)
        elif kind == "namespace":
            for tool, inner_param, inner_name in _namespace_tools(raw, param):
                namespaced[tool.name] = (raw["name"], inner_name)
                tools.append(tool)
                params.append(inner_param)
        elif kind in WEB_SEARCH_TOOLS:
            web_search = _web_search(raw, param)
        elif not ignore_hosted:
            raise bad_request(
                f"Unsupported tool type {clip(repr(kind), 60)} in '{param}': this server supports 'function' "
                "and 'namespace' tools (called by your code) and 'web_search'.",
                param=f"{param}.type",
                code="unsupported_tool_type",
            )
    # Flattened names may be longer than OpenAI's 64 characters; each part was held to it already.
    check_tools(tools, ANTHROPIC_TOOL_NAME, "tools", lambda n: params[n])
    choice, tools = _parse_tool_choice(raw_choice, tools, web_search is not None)
    check_tool_choice(choice, tools, "tool_choice")
    if web_search is None and search_suffix:
        web_search = WebSearch(native=False)
    return _Offered(tools, choice, _boolean(body, "parallel_tool_calls", True), web_search, namespaced)


def _echo_tool(raw: dict[str, Any]) -> dict[str, Any]:
    """A tool as the ``response`` object repeats it: function tools with every field the SDKs'
    ``FunctionTool`` requires (older SDKs fail to parse the whole response otherwise)."""
    if raw.get("type") != "function":
        return raw
    schema = raw.get("parameters")
    return {
        **raw,
        "description": raw.get("description"),
        "parameters": schema if schema is not None else {"type": "object", "properties": {}},
        "strict": raw.get("strict") is True,
    }


def _function_tool(raw: dict[str, Any], param: str) -> ToolDefinition:
    """A ``function`` tool (``strict`` is accepted: the reply is held to no schema beyond the prompt)."""
    name, description, schema = raw.get("name"), raw.get("description"), raw.get("parameters")
    if not isinstance(name, str):
        raise bad_request(f"Missing required parameter: '{param}.name'.", param=f"{param}.name")
    if not OPENAI_TOOL_NAME.fullmatch(name):
        raise bad_request(
            f"Invalid '{param}.name': {clip(repr(name))} does not match '^{OPENAI_TOOL_NAME.pattern}$'.",
            param=f"{param}.name",
        )
    if description is not None and not isinstance(description, str):
        raise bad_request(f"Invalid type for '{param}.description': expected a string.", param=f"{param}.description")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    if not isinstance(schema, dict):
        raise bad_request(f"Invalid type for '{param}.parameters': expected an object.", param=f"{param}.parameters")
    return ToolDefinition(name, description or "", schema)


def _namespace_tools(raw: dict[str, Any], param: str) -> list[tuple[ToolDefinition, str, str]]:
    """A ``namespace`` group's function tools as (flattened definition, its param, its own name)."""
    namespace, inner = raw.get("name"), raw.get("tools")
    if not isinstance(namespace, str) or not OPENAI_TOOL_NAME.fullmatch(namespace):
        raise bad_request(
            f"Invalid '{param}.name': a namespace needs a name matching '^{OPENAI_TOOL_NAME.pattern}$'.",
            param=f"{param}.name",
        )
    if not isinstance(inner, list):
        raise bad_request(f"Invalid type for '{param}.tools': expected an array.", param=f"{param}.tools")
    about = raw.get("description")
    group: list[tuple[ToolDefinition, str, str]] = []
    for j, tool in enumerate(inner):
        inner_param = f"{param}.tools[{j}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise bad_request(
                f"Unsupported tool type {clip(repr(kind), 60)} in '{inner_param}': a namespace may hold"
                " 'function' tools here.",
                param=f"{inner_param}.type",
                code="unsupported_tool_type",
            )
        definition = _function_tool(tool, inner_param)
        own_name = definition.name
        definition.name = f"{namespace}{NAMESPACE_SEPARATOR}{own_name}"
        if isinstance(about, str) and about:
            definition.description = f"[{namespace}: {about}] {definition.description}".rstrip()
        group.append((definition, inner_param, own_name))
    return group


def _web_search(raw: dict[str, Any], param: str) -> WebSearch:
    """claude.ai's web search, held to ``filters.allowed_domains`` and told the ``user_location``
    (both as prompt instructions, :mod:`claude2api.core.search`)."""
    filters = raw.get("filters")
    allowed = filters.get("allowed_domains") if isinstance(filters, dict) else None
    if allowed is None:
        allowed = []
    if not isinstance(allowed, list) or not all(isinstance(d, str) for d in allowed):
        raise bad_request(
            f"Invalid type for '{param}.filters.allowed_domains': expected an array of strings.",
            param=f"{param}.filters.allowed_domains",
        )
    return WebSearch(allowed_domains=allowed, user_location=location_text(raw.get("user_location")))


def _parse_tool_choice(
    raw: object, tools: list[ToolDefinition], web_search: bool
) -> tuple[ToolChoice | None, list[ToolDefinition]]:
    """The neutral choice, and the tools left to offer (``allowed_tools`` narrows them).

    ``{"type": "function", "name"}`` names a tool (with ``namespace``: one of a namespace's);
    ``{"type": "allowed_tools", "mode", "tools"}`` offers only the listed function tools;
    a hosted ``web_search`` choice is ``auto`` with web search on (claude.ai cannot be forced to search).
    """
    if raw is None:
        return None, tools
    if raw in TOOL_CHOICES:
        return ToolChoice(raw), tools  # type: ignore[arg-type]
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and kind == "function" and isinstance(raw.get("name"), str):
        namespace = raw.get("namespace")
        name = f"{namespace}{NAMESPACE_SEPARATOR}{raw['name']}" if isinstance(namespace, str) else raw["name"]
        return ToolChoice("named", name), tools
    if isinstance(raw, dict) and kind == "allowed_tools" and raw.get("mode") in ("auto", "required"):
        listed = raw.get("tools")
        if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
            raise bad_request(
                "Invalid type for 'tool_choice.tools': expected an array of tool objects.", param="tool_choice.tools"
            )
        names = {t.get("name") for t in listed if t.get("type") == "function"}
        allowed = [t for t in tools if t.name in names]
        return ToolChoice(raw["mode"]), allowed
    if isinstance(raw, dict) and kind in WEB_SEARCH_TOOLS and web_search:
        return ToolChoice("auto"), tools
    raise bad_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required', "
        '{"type": "function", "name": ...} or {"type": "allowed_tools", ...}.',
        param="tool_choice",
    )


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
        if message is None:
            continue
        if kind == "function_call" and messages and messages[-1].role == "assistant":
            messages[-1].parts.extend(message.parts)  # parallel calls, or calls after the text: one turn
        else:
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
    assistant history), an image by URL or data URL, or a file (:func:`_parse_file`)."""
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
        return _parse_file(part, param)
    raise bad_request(
        f"Unsupported content part type {clip(repr(kind))} in '{param}': supported are input_text, input_image"
        " and input_file.",
        param=param,
    )


def _parse_file(part: dict[str, Any], param: str) -> DocumentPart | ImagePart:
    """An ``input_file``: ``file_data`` (a data: URL, or bare base64) with its ``filename``, or a
    ``file_url`` the document middleware downloads. File ids need OpenAI's Files API, which
    claude2api does not have."""
    data, url, filename = part.get("file_data"), part.get("file_url"), part.get("filename")
    if filename is not None and not isinstance(filename, str):
        raise bad_request(f"Invalid type for '{param}.filename': expected a string.", param=f"{param}.filename")
    if isinstance(data, str) and data:
        try:
            return document_from_data_url(data, filename)
        except DocumentError as exc:
            raise bad_request(f"Invalid file in '{param}': {exc}.", param=param) from None
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise bad_request(f"Invalid 'file_url' in '{param}': expected an http(s) URL.", param=f"{param}.file_url")
        name = filename or parts.path.rsplit("/", 1)[-1] or None
        return DocumentPart(url=url, filename=safe_filename(name, "application/octet-stream") if name else None)
    if part.get("file_id") is not None:
        raise bad_request(
            f"Unsupported 'file_id' in '{param}': file ids are not supported, as claude2api has no Files API;"
            " send the file inline as 'file_data' (a data: URL) with its 'filename', or as a 'file_url'.",
            param=f"{param}.file_id",
        )
    raise bad_request(
        f"Invalid content part '{param}': 'input_file' needs 'file_data' (a data: URL) or 'file_url'.", param=param
    )


def _function_call_item(item: dict[str, Any], param: str) -> Message:
    """A past function call, as the neutral call in the assistant's turn (a namespaced one under
    its flattened name, as the model was offered it)."""
    name, arguments, call_id = item.get("name"), item.get("arguments"), item.get("call_id")
    if not isinstance(name, str) or not isinstance(arguments, str) or not isinstance(call_id, str):
        raise bad_request(
            f"Invalid item '{param}': a function_call needs string 'call_id', 'name' and 'arguments'.", param=param
        )
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
    return Message("assistant", [ToolCall(upstream_call_id(call_id), name, arguments or "{}")])


def _function_call_output_item(item: dict[str, Any], param: str) -> Message:
    """A function's result (text, or text and image parts) for the call ``call_id``."""
    output, call_id = item.get("output"), item.get("call_id")
    if not isinstance(call_id, str):
        raise bad_request(f"Missing required parameter: '{param}.call_id'.", param=f"{param}.call_id")
    if isinstance(output, str):
        content: list[TextPart | ImagePart] = [TextPart(output)] if output else []
    elif isinstance(output, list):
        content = []
        for part in _parse_content(output, f"{param}.output"):
            if isinstance(part, DocumentPart) and part.text is not None:
                content.append(TextPart(part.text))  # a text file's content is text to the model
            elif isinstance(part, TextPart | ImagePart):
                content.append(part)
            else:
                raise bad_request(
                    f"Unsupported file in '{param}.output': a function's output may hold text, images and text files.",
                    param=f"{param}.output",
                )
    else:
        raise bad_request(
            f"Invalid item '{param}': a function_call_output needs an 'output' string or content array.",
            param=f"{param}.output",
        )
    return Message("tool", [ToolResult(upstream_call_id(call_id), content)])


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
        #: The calls made (upstream ids, names as the model called them), for the kept history.
        self._calls: list[ToolCall] = []
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

    @property
    def reply_message(self) -> Message:
        """The reply as the assistant's turn of a kept history: its text, then its function calls."""
        parts: list[Part] = [TextPart(self.reply_text)] if self.reply_text or not self._calls else []
        return Message("assistant", [*parts, *self._calls])

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

    def _function_call(self, item_id: str, call: ToolCallStart, arguments: str, status: str) -> dict[str, Any]:
        """A ``function_call`` item: OpenAI's ``call_…`` id; a namespaced tool's own name and its namespace."""
        namespace, name = self.options.namespaced.get(call.name, (None, call.name))
        item = {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "call_id": openai_call_id(call.id),
            "name": name,
            "arguments": arguments,
        }
        if namespace is not None:
            item["namespace"] = namespace
        if status == "completed":
            self._calls.append(ToolCall(call.id, call.name, arguments or "{}"))
        return item

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
    always ends with a message item, empty if need be (or with function calls). A JSON
    ``text.format`` is checked upstream of the renderer, by the output guard.
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
        self._annotations: list[dict[str, Any]] = []  # of the open message item

    def feed(self, event: Event) -> bytes:
        if self._closed:
            return b""
        if event.__class__ in _SIDE_EVENTS:
            if isinstance(event, (ToolCallStart, ToolCallDelta, ToolCallEnd)):
                return (self._start() + self._tool_event(event)).encode()
            return (self._start() + self._search_event(event)).encode()
        kind, text = self._piece(event)
        out = self._start() + self._emit(kind, text)
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
        return (self._start() + self._emit("text", self._reply.end()) + self._close()).encode()

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
        as an annotation on the open message item (none is open while the output guard holds the
        answer back, as in JSON mode: such text gets no annotations)."""
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
        """The last items and the final lifecycle event."""
        self._closed = True
        status = self._status
        out = ""
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
            if self._items and self._items[-1][0] == "text":
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
        """The response body (a JSON ``text.format`` was checked upstream, by the output guard)."""
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


def stored_history(conversation: list[Message], reply: Message) -> list[Message]:
    """What a follow-up continues: the conversation so far plus the reply (text and function calls)."""
    return [*conversation, reply]


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
