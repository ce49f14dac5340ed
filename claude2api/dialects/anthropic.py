"""Anthropic Messages dialect: request parsing, stream and non-stream rendering.

The wire contract is ``docs/client-contract.md`` §5. In short: every SSE frame is
``event: <type>`` plus ``data: {"type":"<type>",...}`` (anthropic-python drops frames without the
event line); ``message_start`` and ``message_delta`` always carry integer ``usage``; content blocks
are indexed 0, 1, 2... in order; a late failure is an ``error`` event and the stream ends there,
without ``message_stop``.

claude.ai's own frames look like these but are never passed through: the renderers only see the
neutral events of :mod:`claude2api.core.types`, so web-only frames and fields cannot leak.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from claude2api.core.catalog import (
    EFFORT_LADDER,
    ModelCatalog,
    ResolvedModel,
    ThinkingIntent,
    intent_from_anthropic,
    intent_from_suffix,
)
from claude2api.core.documents import DocumentError, document_from_base64, document_from_text
from claude2api.core.failures import APIError, bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.reply import ReplyCutter
from claude2api.core.search import location_text
from claude2api.core.stops import MAX_STOP_LENGTH
from claude2api.core.tools import (
    ANTHROPIC_TOOL_NAME,
    check_tool_choice,
    check_tools,
    tool_choice_instructions,
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
from claude2api.dialects.base import Dialect, ReplySpec, parses_json_body, resolve_model
from claude2api.logs import get_logger
from claude2api.upstream.image_http import decode_data_url, is_image_media_type

log = get_logger(__name__)

# ---------------------------------------------------------------------------------------------
# Request parsing
#
# Error messages follow the real API's ``<field path>: <problem>`` style (``messages.0.content.1``).

#: Stand-in ``signature`` of our thinking blocks. claude.ai signs nothing, but SDK types and clients
#: that send thinking back expect a string; what comes back is dropped from the prompt anyway.
THINKING_SIGNATURE = "claude2api-unsigned"

#: ``stop_sequences`` takes at most this many strings. The Messages API documents no limit; this
#: one is far above what clients send (a handful) and keeps a request's matching work small.
MAX_STOP_SEQUENCES = 16


#: Deepest nesting of ``content`` inside ``content`` (``tool_result`` or ``content`` documents in
#: each other). The real API allows one or two levels; the bound keeps the recursive parser far
#: from Python's recursion limit (each level is three frames).
MAX_CONTENT_DEPTH = 16


@dataclass(slots=True)
class AnthropicOptions:
    """What the renderer needs from the request beyond the :class:`ChatRequest`."""

    #: Render thinking blocks: the client asked for thinking and not with ``display: "omitted"``.
    show_thinking: bool = False


@parses_json_body
def parse_messages_request(body: object, catalog: ModelCatalog) -> tuple[ChatRequest, AnthropicOptions]:
    """Validate a decoded ``/v1/messages`` body and convert it to the neutral request.

    Unknown fields (``temperature``, ``metadata``, ``service_tier``...) are ignored;
    ``context_management`` too (claude.ai manages its own context: said in a debug line);
    malformed known ones raise a 400 :class:`APIError`; an unknown model raises a 404.
    ``max_tokens`` is optional here (the real API requires it) and is a soft cap on answer text.
    """
    body = _object(body)
    resolved = _resolve_model(body.get("model"), catalog)
    thinking, shown = _parse_thinking(body.get("thinking"), body.get("output_config"), resolved)
    if body.get("context_management") is not None:
        log.debug("context_management_ignored", reason="claude.ai manages the conversation's context itself")
    tools, web_search = _parse_tools(body.get("tools"))
    if web_search is None and resolved.search:
        web_search = WebSearch(native=False)
    choice, parallel = _parse_tool_choice(body.get("tool_choice"), tools)
    response_format, instructions = _parse_output_format(body)
    request = ChatRequest(
        model=resolved.requested,
        upstream_model=resolved.upstream,
        messages=_parse_conversation(body),
        stream=_parse_stream(body.get("stream")),
        thinking=thinking,
        stop=_parse_stop_sequences(body.get("stop_sequences")),
        max_tokens=_parse_max_tokens(body.get("max_tokens")),
        instructions=instructions,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        web_search=web_search,
        response_format=response_format,
    )
    request.instructions += tool_choice_instructions(request)
    return request, AnthropicOptions(show_thinking=shown)


#: The prompt paragraph that asks for JSON (claude.ai has no structured-output switch).
JSON_SCHEMA_INSTRUCTION = (
    "Answer with exactly one valid JSON value that conforms to this JSON Schema, and nothing else: "
    "no prose before or after it, no Markdown code fences.\nJSON Schema: {schema}"
)


def _parse_tools(raw: object) -> tuple[list[ToolDefinition], WebSearch | None]:
    """Client tools, and claude.ai's own web search for a ``web_search_*`` server tool (the web
    search feature reads ``ChatRequest.web_search``); other server tools are refused."""
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        raise bad_request("tools: Input should be a valid list", param="tools")
    tools: list[ToolDefinition] = []
    web_search: WebSearch | None = None
    for n, tool in enumerate(raw):
        path = f"tools.{n}"
        if not isinstance(tool, dict):
            raise bad_request(f"{path}: Input should be a valid dictionary", param=path)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            if isinstance(kind, str) and kind.startswith("web_search_"):
                web_search = _web_search(tool, path)
                continue
            raise bad_request(
                f"{path}.type: server tool {clip(repr(kind))} is not supported yet; only client tools "
                "(name, description, input_schema) and web_search are",
                param=f"{path}.type",
            )
        name, description = tool.get("name"), tool.get("description")
        schema = tool.get("input_schema", (tool.get("custom") or {}).get("input_schema"))
        if not isinstance(name, str):
            raise bad_request(f"{path}.name: Field required", param=f"{path}.name")
        if description is not None and not isinstance(description, str):
            raise bad_request(f"{path}.description: Input should be a valid string", param=f"{path}.description")
        if not isinstance(schema, dict):
            raise bad_request(f"{path}.input_schema: Input should be a valid dictionary", param=f"{path}.input_schema")
        tools.append(ToolDefinition(name, description or "", schema))
    check_tools(tools, ANTHROPIC_TOOL_NAME, "tools", lambda n: f"tools.{n}")
    return tools, web_search


def _web_search(tool: dict[str, Any], path: str) -> WebSearch:
    max_uses = tool.get("max_uses")
    if max_uses is not None and (type(max_uses) is not int or max_uses < 1):
        raise bad_request(f"{path}.max_uses: Input should be a positive integer", param=f"{path}.max_uses")
    domains = {}
    for key in ("allowed_domains", "blocked_domains"):
        value = tool.get(key) or []
        if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
            raise bad_request(f"{path}.{key}: Input should be a list of strings", param=f"{path}.{key}")
        domains[key] = value
    return WebSearch(
        max_uses, domains["allowed_domains"], domains["blocked_domains"], location_text(tool.get("user_location"))
    )


def _parse_tool_choice(raw: object, tools: list[ToolDefinition]) -> tuple[ToolChoice | None, bool]:
    """``tool_choice`` (auto / any / tool / none) and whether parallel calls are allowed."""
    if raw is None:
        return None, True
    kind = raw.get("type") if isinstance(raw, dict) else None
    modes = {"auto": "auto", "any": "required", "tool": "named", "none": "none"}
    if not isinstance(raw, dict) or kind not in modes:
        raise bad_request("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", param="tool_choice")
    name = raw.get("name")
    if kind == "tool" and not isinstance(name, str):
        raise bad_request("tool_choice.name: Field required", param="tool_choice.name")
    choice = ToolChoice(modes[kind], name if kind == "tool" else None)  # type: ignore[arg-type]
    check_tool_choice(choice, tools, "tool_choice")
    return choice, raw.get("disable_parallel_tool_use") is not True


def _parse_output_format(body: dict[str, Any]) -> tuple[ResponseFormat | None, list[str]]:
    """``output_config.format`` (or the beta's top-level ``output_format``): a JSON schema the reply
    must follow, emulated with a prompt instruction and checked by the output guard."""
    config = body.get("output_config")
    raw = config.get("format") if isinstance(config, dict) else None
    if raw is None:
        raw = body.get("output_format")
    if raw is None:
        return None, []
    if not isinstance(raw, dict) or raw.get("type") != "json_schema" or not isinstance(raw.get("schema"), dict):
        raise bad_request(
            "output_config.format: expected {\"type\": \"json_schema\", \"schema\": {...}}",
            param="output_config.format",
        )
    schema = raw["schema"]
    return ResponseFormat("json_schema", schema), [
        JSON_SCHEMA_INSTRUCTION.format(schema=compact_json(schema))
    ]


@parses_json_body
def parse_count_tokens(body: object, catalog: ModelCatalog) -> ChatRequest:
    """A ``/v1/messages/count_tokens`` body (``/v1/messages`` without ``max_tokens``/``stream``)."""
    body = _object(body)
    resolved = _resolve_model(body.get("model"), catalog)
    thinking, _ = _parse_thinking(body.get("thinking"), body.get("output_config"), resolved)
    return ChatRequest(
        model=resolved.requested, upstream_model=resolved.upstream, messages=_parse_conversation(body), thinking=thinking
    )


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _resolve_model(raw: object, catalog: ModelCatalog) -> ResolvedModel:
    """What the ``model`` field names (a missing model is the default); a 404 names the closest ids."""
    if raw is None or raw == "":
        raw = catalog.default
    if not isinstance(raw, str):
        raise bad_request("model: Input should be a valid string", param="model")
    return resolve_model(catalog, raw)


def _parse_stream(raw: object) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise bad_request("stream: Input should be a valid boolean", param="stream")
    return raw


def _parse_max_tokens(raw: object) -> int | None:
    if raw is not None and (type(raw) is not int or raw < 1):
        raise bad_request("max_tokens: Input should be a positive integer", param="max_tokens")
    return raw


def _parse_stop_sequences(raw: object) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise bad_request("stop_sequences: Input should be an array of strings", param="stop_sequences")
    if len(raw) > MAX_STOP_SEQUENCES:
        raise bad_request(
            f"stop_sequences: at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(raw)}",
            param="stop_sequences",
        )
    if any(len(s) > MAX_STOP_LENGTH for s in raw):
        raise bad_request(
            f"stop_sequences: each stop sequence may be at most {MAX_STOP_LENGTH} characters long",
            param="stop_sequences",
        )
    return [s for s in raw if s]


def _parse_thinking(raw: object, output_config: object, resolved: ResolvedModel) -> tuple[Thinking | None, bool]:
    """(thinking, whether to show it) from ``thinking``, ``output_config.effort`` and the ``-think`` suffix.

    An explicit ``thinking`` decides, ``disabled`` included (it turns a ``-think`` model off);
    ``budget_tokens`` maps to an effort (:func:`~claude2api.core.catalog.effort_for_budget`),
    ``adaptive`` takes the model's default effort, ``output_config.effort`` wins over both. The
    model's own options decide what is finally sent (:func:`~claude2api.core.catalog.plan_thinking`).
    ``display: "omitted"`` thinks without showing the thinking.
    """
    effort = _parse_output_effort(output_config)
    if raw is not None:
        if not isinstance(raw, dict) or raw.get("type") not in ("enabled", "adaptive", "disabled"):
            raise bad_request(
                "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'", param="thinking.type"
            )
        budget = raw.get("budget_tokens") if raw["type"] == "enabled" else None
        if budget is not None and (type(budget) is not int or budget < 1):
            raise bad_request(
                "thinking.budget_tokens: Input should be a positive integer", param="thinking.budget_tokens"
            )
        intent = intent_from_anthropic(raw, effort)
    else:
        suffix = intent_from_suffix(resolved)
        intent = ThinkingIntent(True, effort or suffix.effort) if suffix else intent_from_anthropic(None, effort)
        budget = None
    if intent is None or (not intent.enabled and intent.effort is None):
        return None, False
    shown = intent.enabled and not (isinstance(raw, dict) and raw.get("display") == "omitted")
    return Thinking(intent.effort, budget, enabled=intent.enabled), shown


def _parse_output_effort(raw: object) -> str | None:
    """``output_config.effort`` (Claude Code sends it with adaptive thinking); other keys are ignored."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("output_config: Input should be an object", param="output_config")
    effort = raw.get("effort")
    if effort is None:
        return None
    if effort not in EFFORT_LADDER:
        allowed = ", ".join(repr(e) for e in EFFORT_LADDER)
        raise bad_request(f"output_config.effort: Input should be {allowed}", param="output_config.effort")
    return str(effort)


def _parse_conversation(body: dict[str, Any]) -> list[Message]:
    """``system`` then ``messages``. Messages left without content (e.g. only round-tripped
    thinking) are left out; a final assistant message stays last, as the prefill it is."""
    raw = body.get("messages")
    if raw is None:
        raise bad_request("messages: Field required", param="messages")
    if not isinstance(raw, list):
        raise bad_request("messages: Input should be a valid array", param="messages")
    if not raw:
        raise bad_request("messages: at least one message is required", param="messages")
    messages = _parse_system(body.get("system"))
    for i, item in enumerate(raw):
        message = _parse_message(item, f"messages.{i}")
        if message.parts:
            messages.append(message)
    return messages


#: Claude Code's first system block (``x-anthropic-billing-header: cc_version=…``) is metadata.
BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"


def _parse_system(raw: object, path: str = "system") -> list[Message]:
    """The top-level ``system`` (or a system message's ``content``): a string or text blocks."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [Message("system", [TextPart(raw)])]
    if not isinstance(raw, list):
        raise bad_request(f"{path}: Input should be a string or an array of text blocks", param=path)
    parts: list[Part] = []
    for i, block in enumerate(raw):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad_request(f"{path}.{i}: only text blocks are allowed in system", param=f"{path}.{i}")
        if str(block.get("text")).startswith(BILLING_HEADER_PREFIX):
            continue  # Claude Code's accounting line for Anthropic's API, not an instruction
        parts.extend(_text_block(block, f"{path}.{i}"))
    return [Message("system", parts)] if parts else []


def _parse_message(raw: object, path: str) -> Message:
    if not isinstance(raw, dict):
        raise bad_request(f"{path}: Input should be an object", param=path)
    role = raw.get("role")
    if role not in ("user", "assistant", "system"):  # Claude Code sends "system" turns mid-conversation
        raise bad_request(f"{path}.role: Input should be 'user', 'assistant' or 'system'", param=f"{path}.role")
    return Message(role, _parse_content(raw.get("content"), f"{path}.content"))


def _parse_content(content: object, path: str) -> list[Part]:
    """A message's ``content``, or one nested in a ``tool_result`` or a ``content`` document.

    The path records the nesting (each level adds a ``.content``): at most
    :data:`MAX_CONTENT_DEPTH` levels, whoever calls the parser, so the recursion stays far from
    Python's limit whatever the caller's own JSON depth cap.
    """
    if path.count(".content") > MAX_CONTENT_DEPTH:
        raise bad_request(f"{path}: content blocks nested too deeply: at most {MAX_CONTENT_DEPTH} levels", param=path)
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{path}: Input should be a string or an array of content blocks", param=path)
    parts: list[Part] = []
    for j, block in enumerate(content):
        parts.extend(_parse_block(block, f"{path}.{j}"))
    return parts


def _parse_block(block: object, path: str) -> list[Part]:
    kind = block.get("type") if isinstance(block, dict) else None
    if isinstance(block, dict) and isinstance(kind, str) and kind in _BLOCK_PARSERS:
        return _BLOCK_PARSERS[kind](block, path)
    raise bad_request(
        f"{path}.type: unsupported content block type {clip(repr(kind))}; expected one of {', '.join(_BLOCK_PARSERS)}",
        param=path,
    )


def _text_block(block: dict[str, Any], path: str) -> list[Part]:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{path}.text: Input should be a valid string", param=f"{path}.text")
    return [TextPart(text)] if text else []


def _image_block(block: dict[str, Any], path: str) -> list[Part]:
    """Base64 images become bytes; URL images are kept for the image-fetch middleware to download."""
    path += ".source"
    kind, source = _source(block)
    if kind == "base64":
        return [_decode_base64_image(source.get("media_type"), source.get("data"), path)]
    if kind == "url":
        return [ImagePart(url=_http_url(source.get("url"), f"{path}.url"))]
    if kind == "file":
        raise bad_request(f"{path}: file sources (Files API) are not supported", param=path)
    raise bad_request(f"{path}.type: Input should be 'base64' or 'url'", param=f"{path}.type")


def _source(block: dict[str, Any]) -> tuple[object, dict[str, Any]]:
    """(type, object) of a block's ``source``; ``(None, {})`` if it is not an object."""
    source = block.get("source")
    return (source.get("type"), source) if isinstance(source, dict) else (None, {})


def _http_url(url: object, path: str) -> str:
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.scheme.lower() in ("http", "https") and parts.netloc:
            return url
    raise bad_request(f"{path}: expected an http(s) URL", param=path)


def _decode_base64_image(media_type: object, data: object, path: str) -> ImagePart:
    if media_type is not None and not (isinstance(media_type, str) and is_image_media_type(media_type)):
        raise bad_request(
            f"{path}.media_type: expected an image type such as image/png", param=f"{path}.media_type"
        )
    if not isinstance(data, str):
        raise bad_request(f"{path}.data: Input should be a valid string", param=f"{path}.data")
    try:
        media, decoded = decode_data_url(f"data:{media_type or ''};base64,{data}")
    except ValueError:
        raise bad_request(f"{path}.data: not valid base64 image data", param=f"{path}.data") from None
    return ImagePart(media_type=media, data=decoded)


def _document_block(block: dict[str, Any], path: str) -> list[Part]:
    """A document: base64 (PDF, office, text), plain text, URL (downloaded later) or inline content
    blocks. ``title`` names the file; ``context`` follows it as text."""
    kind, source = _source(block)
    title = block.get("title")
    filename = title if isinstance(title, str) and title else None
    media_type, data = source.get("media_type"), source.get("data")
    if media_type is not None and not isinstance(media_type, str):
        raise bad_request(f"{path}.source.media_type: Input should be a valid string", param=f"{path}.source.media_type")
    parts: list[Part]
    try:
        if kind == "base64" and isinstance(data, str):
            parts = [document_from_base64(data, media_type, filename)]
        elif kind == "text" and isinstance(data, str):
            parts = [document_from_text(data, media_type, filename)]
        elif kind == "url":
            parts = [DocumentPart(url=_http_url(source.get("url"), f"{path}.source.url"), filename=filename)]
        elif kind == "content":
            parts = _parse_content(source.get("content"), f"{path}.source.content")
            parts = _headed(f"[document: {title}]", parts) if filename else parts
        elif kind == "file":
            raise bad_request(
                f"{path}.source: file sources (Files API file ids) are not supported: claude2api has no Files API;"
                " send the document inline (base64 or text) or by URL",
                param=f"{path}.source",
            )
        else:
            raise bad_request(
                f"{path}.source: expected a source of type 'base64', 'text', 'url' or 'content' with its data",
                param=f"{path}.source",
            )
    except DocumentError as exc:
        raise bad_request(f"{path}.source: {exc}", param=f"{path}.source") from None
    context = block.get("context")
    if isinstance(context, str) and context:
        parts.append(TextPart(f"[document context: {context}]"))
    return parts


def _tool_use_block(block: dict[str, Any], path: str) -> list[Part]:
    """A past tool call (``server_tool_use`` too: the history keeps what happened)."""
    call_id, name = block.get("id"), block.get("name")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise bad_request(f"{path}: a tool_use block needs a string 'id' and 'name'", param=path)
    return [ToolCall(call_id, name, compact_json(block.get("input", {})))]


def _tool_result_block(block: dict[str, Any], path: str) -> list[Part]:
    """A tool's result: text and images (documents become text), and the error flag."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise bad_request(f"{path}.tool_use_id: Field required", param=f"{path}.tool_use_id")
    content = block.get("content")
    parts = [] if content is None else _parse_content(content, f"{path}.content")
    kept: list[TextPart | ImagePart] = []
    for part in parts:  # a (rare) nested result or call is flattened into this one's content
        if isinstance(part, TextPart | ImagePart):
            kept.append(part)
        elif isinstance(part, ToolResult):
            kept.extend(part.content)
        elif isinstance(part, ToolCall):
            kept.append(TextPart(f"{part.name} {part.arguments}"))
    return [ToolResult(call_id, kept, is_error=block.get("is_error") is True)]


def _dropped_block(block: dict[str, Any], path: str) -> list[Part]:
    """Round-tripped (redacted) thinking: claude.ai cannot take it back, signed or not."""
    return []


def _headed(header: str, parts: list[Part]) -> list[Part]:
    """``parts`` under a one-line header, put into the first part when that is text."""
    if parts and isinstance(parts[0], TextPart):
        return [TextPart(f"{header}\n{parts[0].text}"), *parts[1:]]
    return [TextPart(header), *parts]


_BLOCK_PARSERS: dict[str, Callable[[dict[str, Any], str], list[Part]]] = {
    "text": _text_block,
    "image": _image_block,
    "document": _document_block,
    "tool_use": _tool_use_block,
    "server_tool_use": _tool_use_block,
    "tool_result": _tool_result_block,
    "thinking": _dropped_block,
    "redacted_thinking": _dropped_block,
}


# ---------------------------------------------------------------------------------------------
# Rendering


class _Renderer:
    """Common state of :class:`AnthropicStream` and :class:`AnthropicCollector`."""

    def __init__(
        self,
        model: str,
        options: AnthropicOptions,
        prompt_tokens: int,
        stops: list[str],
        max_tokens: int | None,
    ) -> None:
        self.model = model
        self.id = f"msg_{uuid.uuid4().hex}"
        self._show_thinking = options.show_thinking
        self._input_tokens = max(prompt_tokens, 1)
        self._reply = ReplyCutter(stops, max_tokens)
        self.web_searches = 0
        self._setup()

    def _setup(self) -> None:
        """Subclass state, set up once the common state above exists."""

    @property
    def output_tokens(self) -> int:
        """Tokens of the reply so far, thinking included (an estimate, as in ``usage``)."""
        return self._reply.answer.tokens + self._reply.thinking.tokens

    @property
    def done(self) -> bool:
        """True once the reply is over (Stop, a stop sequence or the cap): stop reading upstream."""
        return self._reply.stop_reason is not None

    def _piece(self, event: Event) -> tuple[str, str]:
        """(block kind, text) for ``event``: thinking the client did not ask to see is dropped."""
        thinking, text = self._reply.feed(event)
        if thinking and self._show_thinking:
            return "thinking", thinking
        return "text", text

    def _usage(self) -> dict[str, Any]:
        output = self._reply.answer.tokens + self._reply.thinking.tokens
        usage: dict[str, Any] = {"input_tokens": self._input_tokens, "output_tokens": output}
        if self.web_searches:
            usage["server_tool_use"] = {"web_search_requests": self.web_searches}
        return usage


def search_use_block(event: SearchCall) -> dict[str, Any]:
    """claude.ai's search as the Messages API's ``server_tool_use`` block."""
    return {"type": "server_tool_use", "id": event.id, "name": "web_search", "input": {"query": event.query}}


def search_result_block(event: SearchResults) -> dict[str, Any]:
    """claude.ai's ``knowledge`` list as a ``web_search_tool_result`` block. claude.ai sends no page
    content to encrypt, so ``encrypted_content`` is empty (a client sending it back loses nothing:
    history goes to claude.ai as text)."""
    content = [
        {"type": "web_search_result", "url": r.url, "title": r.title, "encrypted_content": "", "page_age": r.page_age}
        for r in event.results
    ]
    return {"type": "web_search_tool_result", "tool_use_id": event.id, "content": content}


def citation_object(event: Citation) -> dict[str, Any]:
    """A ``web_search_result_location`` citation: the cited span of the reply, claude.ai's citation
    uuid as ``encrypted_index``."""
    return {
        "type": "web_search_result_location",
        "cited_text": event.cited_text,
        "url": event.url,
        "title": event.title,
        "encrypted_index": event.id or event.url,
    }


def _frame(type_: str, data_json: str) -> str:
    return f"event: {type_}\ndata: {data_json}\n\n"


_PING = _frame("ping", '{"type":"ping"}')
_MESSAGE_STOP = _frame("message_stop", '{"type":"message_stop"}')
_EMPTY_BLOCKS = {
    "thinking": '{"type":"thinking","thinking":"","signature":""}',
    "text": '{"type":"text","text":""}',
}
_TOOL_EVENTS = frozenset({ToolCallStart, ToolCallDelta, ToolCallEnd})
#: Events that are no text: tool calls and web search (one set test per event on the text path).
_SIDE_EVENTS = _TOOL_EVENTS | {SearchCall, SearchResults, Citation}
_SIGNATURE_DELTA = f'{{"type":"signature_delta","signature":{compact_json(THINKING_SIGNATURE)}}}'


class AnthropicStream(_Renderer):
    """Renders events as Messages SSE frames (bytes ready to write).

    Call :meth:`feed` per event, :meth:`keepalive` on idle, :meth:`finish` at the end of the
    upstream stream, or :meth:`error_frame` if it broke. Stop reading the upstream once
    :attr:`done` is true: the closing frames have then been sent already.

    ``message_start`` and one ``ping`` open the stream. A content block opens whenever the kind of
    text (thinking or answer) changes; a thinking block gets the placeholder signature just before
    its ``content_block_stop``. The message always ends with a text block, empty if need be
    (clients read ``content[-1].text``; the SDK's ``get_final_text()`` raises without one).
    """

    def _setup(self) -> None:
        self._started = False
        self._closed = False
        self._block: str | None = None  # kind of the open content block
        self._index = -1  # index of the last block opened
        self._has_text = False

    def feed(self, event: Event) -> bytes:
        if self._closed:
            return b""
        if event.__class__ in _SIDE_EVENTS:
            side = self._tool(event) if event.__class__ in _TOOL_EVENTS else self._search(event)
            return (self._start() + side).encode()
        out = self._start() + self._delta(*self._piece(event))
        if self.done:
            out += self._close()
        return out.encode()

    def keepalive(self) -> bytes:
        """A ``ping`` event, the Messages API's own keep-alive (the opening frames end with one)."""
        if self._closed:
            return b""
        return (self._start() or _PING).encode()

    def finish(self) -> bytes:
        """Closing frames, unless already sent (the reply ended by itself or was cut)."""
        if self._closed:
            return b""
        return (self._start() + self._delta("text", self._reply.end()) + self._close()).encode()

    def error_frame(self, message: str, type: str = "api_error") -> bytes:
        """An ``error`` event after the 200 went out (the SDK raises ``APIStatusError``); the end."""
        self._closed = True
        error = {"type": "error", "error": {"type": type, "message": message}}
        return _frame("error", compact_json(error)).encode()

    def _start(self) -> str:
        if self._started:
            return ""
        self._started = True
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 1},
        }
        return _frame("message_start", compact_json({"type": "message_start", "message": message})) + _PING

    def _delta(self, kind: str, text: str) -> str:
        if not text:
            return ""
        out = "" if kind == self._block else self._stop_block() + self._start_block(kind)
        # kind is "text" or "thinking": the delta is {"type":"<kind>_delta","<kind>":"..."}
        delta = f'{{"type":"{kind}_delta","{kind}":{compact_json(text)}}}'
        return out + self._block_delta(delta)

    def _tool(self, event: Event) -> str:
        """A ``tool_use`` block: start with ``input: {}``, ``input_json_delta`` pieces, stop."""
        if isinstance(event, ToolCallStart):
            out = self._stop_block()
            self._index += 1
            self._block = "tool_use"
            self._has_text = True  # a tool call ends the message; no empty text block after it
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            start = {"type": "content_block_start", "index": self._index, "content_block": block}
            return out + _frame("content_block_start", compact_json(start))
        if self._block != "tool_use":
            return ""
        if isinstance(event, ToolCallDelta):
            delta = {"type": "input_json_delta", "partial_json": event.partial_json}
            return self._block_delta(compact_json(delta)) if event.partial_json else ""
        return self._stop_block()

    def _search(self, event: Event) -> str:
        """Web search: ``server_tool_use`` (its query as one ``input_json_delta``) and
        ``web_search_tool_result`` blocks, and a ``citations_delta`` on the open text block."""
        if isinstance(event, Citation):
            out = "" if self._block == "text" else self._stop_block() + self._start_block("text")
            delta = {"type": "citations_delta", "citation": citation_object(event)}
            return out + self._block_delta(compact_json(delta))
        out = self._stop_block()
        self._index += 1
        if isinstance(event, SearchCall):
            self.web_searches += 1
            block = {**search_use_block(event), "input": {}}
            start = {"type": "content_block_start", "index": self._index, "content_block": block}
            query = {"type": "input_json_delta", "partial_json": compact_json({"query": event.query})}
            out += _frame("content_block_start", compact_json(start)) + self._block_delta(compact_json(query))
        else:
            assert isinstance(event, SearchResults)
            start = {"type": "content_block_start", "index": self._index, "content_block": search_result_block(event)}
            out += _frame("content_block_start", compact_json(start))
        return out + _frame("content_block_stop", f'{{"type":"content_block_stop","index":{self._index}}}')

    def _block_delta(self, delta_json: str) -> str:
        return _frame(
            "content_block_delta",
            f'{{"type":"content_block_delta","index":{self._index},"delta":{delta_json}}}',
        )

    def _start_block(self, kind: str) -> str:
        self._index += 1
        self._block = kind
        self._has_text = self._has_text or kind == "text"
        block = (
            f'{{"type":"content_block_start","index":{self._index},"content_block":{_EMPTY_BLOCKS[kind]}}}'
        )
        return _frame("content_block_start", block)

    def _stop_block(self) -> str:
        if self._block is None:
            return ""
        out = self._block_delta(_SIGNATURE_DELTA) if self._block == "thinking" else ""
        self._block = None
        return out + _frame("content_block_stop", f'{{"type":"content_block_stop","index":{self._index}}}')

    def _close(self) -> str:
        self._closed = True
        out = self._stop_block()
        if not self._has_text:
            out += self._start_block("text") + self._stop_block()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._reply.stop_reason, "stop_sequence": self._reply.stop_sequence},
            "usage": self._usage(),
        }
        return out + _frame("message_delta", compact_json(delta)) + _MESSAGE_STOP


class AnthropicCollector(_Renderer):
    """Collects events into one ``message`` object (non-stream responses), with the same blocks
    a stream would have had."""

    def _setup(self) -> None:
        #: (kind, pieces) per block; a tool_use block's pieces are its id, name, then JSON pieces;
        #: a search block's only piece is its finished block.
        self._blocks: list[tuple[str, list[Any]]] = []
        #: Citations of text blocks, by block position.
        self._citations: dict[int, list[dict[str, Any]]] = {}

    def feed(self, event: Event) -> None:
        if self.done:
            return
        if isinstance(event, ToolCallStart):
            self._blocks.append(("tool_use", [event.id, event.name]))
        elif isinstance(event, ToolCallDelta):
            if self._blocks and self._blocks[-1][0] == "tool_use":
                self._blocks[-1][1].append(event.partial_json)
        elif event.__class__ in _SEARCH_BLOCKS:
            self.web_searches += isinstance(event, SearchCall)
            self._blocks.append(("search", [_SEARCH_BLOCKS[event.__class__](event)]))  # type: ignore[operator]
        elif isinstance(event, Citation):
            if not self._blocks or self._blocks[-1][0] != "text":
                self._blocks.append(("text", []))
            self._citations.setdefault(len(self._blocks) - 1, []).append(citation_object(event))
        elif not isinstance(event, ToolCallEnd):
            self._add(*self._piece(event))

    def result(self) -> dict[str, Any]:
        if not self.done:
            self._add("text", self._reply.end())
        content: list[dict[str, Any]] = []
        for position, (kind, pieces) in enumerate(self._blocks):
            if kind == "search":
                content.append(pieces[0])
            elif kind == "thinking":
                content.append(
                    {"type": "thinking", "thinking": "".join(pieces), "signature": THINKING_SIGNATURE}
                )
            elif kind == "tool_use":
                call_id, name, *arguments = pieces
                content.append({"type": "tool_use", "id": call_id, "name": name, "input": _input("".join(arguments))})
            elif position in self._citations:
                content.append({"type": "text", "text": "".join(pieces), "citations": self._citations[position]})
            else:
                content.append({"type": "text", "text": "".join(pieces)})
        if not any(block["type"] in ("text", "tool_use") for block in content):
            content.append({"type": "text", "text": ""})
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self._reply.stop_reason,
            "stop_sequence": self._reply.stop_sequence,
            "usage": self._usage(),
        }

    def _add(self, kind: str, text: str) -> None:
        if not text:
            return
        if self._blocks and self._blocks[-1][0] == kind:
            self._blocks[-1][1].append(text)
        else:
            self._blocks.append((kind, [text]))


_SEARCH_BLOCKS = {SearchCall: search_use_block, SearchResults: search_result_block}


def _input(arguments: str) -> dict[str, Any]:
    """A tool call's streamed JSON as the ``input`` object (``{}`` if the model wrote no object)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
# Errors and the dialect object

#: HTTP status -> Anthropic error type (the Messages API's own table); other 4xx are
#: ``invalid_request_error``, other 5xx ``api_error``.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(error: APIError) -> str:
    return _ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else "invalid_request_error")


def error_body(error: APIError, request_id: str | None = None) -> dict[str, Any]:
    """``{"type": "error", "error": {type, message}, "request_id": ...}``, as the Messages API answers."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(error), "message": error.message}}
    if request_id:
        body["request_id"] = request_id
    return body


def _error_frame(renderer: AnthropicStream, error: APIError) -> bytes:
    return renderer.error_frame(error.message, error_type(error))


def _stream(spec: ReplySpec) -> AnthropicStream:
    r = spec.request
    return AnthropicStream(r.model, spec.options, spec.prompt_tokens, r.stop, r.max_tokens)


def _collect(spec: ReplySpec) -> AnthropicCollector:
    r = spec.request
    return AnthropicCollector(r.model, spec.options, spec.prompt_tokens, r.stop, r.max_tokens)


#: Sampling fields claude.ai has no knob for, with the value that means "not asked".
_SAMPLING_DEFAULTS = {"temperature": 1, "top_p": 1, "top_k": None}


def unhonoured(body: dict[str, Any], request: ChatRequest) -> list[str]:
    """What this valid request asks for that claude.ai cannot do (notes for the warning line)."""
    notes = [
        f"{name} ignored"
        for name, default in _SAMPLING_DEFAULTS.items()
        if body.get(name) is not None and body.get(name) != default
    ]
    if body.get("tools") and not request.tools and request.web_search is None:
        notes.append("tools ignored")
    thinking = body.get("thinking")
    if request.thinking and request.thinking.budget_tokens is not None and isinstance(thinking, dict):
        notes.append(f"thinking.budget_tokens {request.thinking.budget_tokens} sent as effort {request.thinking.effort}")
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(effort, str) and effort != (request.thinking.effort if request.thinking else None):
        notes.append(f"output_config.effort {clip(effort, 20)} ignored")
    return notes


ANTHROPIC = Dialect(
    name="anthropic",
    parse=parse_messages_request,
    stream=_stream,
    collect=_collect,
    error_body=error_body,
    error_frame=_error_frame,
    unhonoured=unhonoured,
)
