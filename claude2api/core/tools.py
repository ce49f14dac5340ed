"""Client tools and structured output, dialect-neutral: validation, call ids, JSON extraction.

Every dialect (OpenAI Chat Completions, Anthropic Messages, and the Responses API) parses its own
wire shapes, then hands the pieces to the helpers here, so the rules are the same everywhere:

* :func:`check_tools` validates tool definitions (name pattern, object schema, no duplicates) and
  :func:`check_tool_choice` a forced choice against them; both raise a 400 :class:`APIError` whose
  ``param`` the dialect chose.
* Call ids: claude.ai's ``toolu_…`` ids are kept for Anthropic clients; OpenAI clients see
  ``call_`` + the same suffix (:func:`openai_call_id`), which :func:`upstream_call_id` maps back,
  so a replayed history names the calls the model made.
* :func:`find_json` pulls a JSON value out of a reply (bare, fenced, or inside prose) and
  :func:`coerce_tool_call` turns a JSON answer into the tool call a forced ``tool_choice`` asked for.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable, Sequence
from typing import Any

from claude2api.core.failures import APIError, bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.types import ChatRequest, ToolCall, ToolChoice, ToolDefinition

#: OpenAI's function-name rule (``^[a-zA-Z0-9_-]{1,64}$``).
OPENAI_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Anthropic's tool-name rule (the Messages API and claude.ai take up to 128 characters).
ANTHROPIC_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
#: At most this many tools per request (OpenAI documents 128; Claude Code sends ~25 plus MCP tools).
MAX_TOOLS = 512

_BASE62 = string.ascii_letters + string.digits
_FENCE = "```"
_FENCE_LANGUAGE = re.compile(r"[a-zA-Z0-9_-]*")


def check_tools(
    tools: Sequence[ToolDefinition], name_rule: re.Pattern[str], param: str, item: Callable[[int], str]
) -> None:
    """Raise a 400 unless every tool has a valid, unique name and an object schema; ``param`` names
    the list, ``item(n)`` the n-th definition (``tools[0].function``, ``tools.0``)."""
    if len(tools) > MAX_TOOLS:
        raise bad_request(f"{param}: at most {MAX_TOOLS} tools are allowed, got {len(tools)}", param=param)
    seen: set[str] = set()
    for n, tool in enumerate(tools):
        if not name_rule.fullmatch(tool.name):
            raise bad_request(
                f"{item(n)}.name: {clip(repr(tool.name))} does not match '^{name_rule.pattern}$'",
                param=f"{item(n)}.name",
            )
        if tool.name in seen:
            raise bad_request(f"{param}: tool names must be unique ({clip(tool.name)} appears twice)", param=param)
        seen.add(tool.name)
        schema_type = tool.input_schema.get("type", "object")
        if schema_type != "object":
            raise bad_request(
                f"{item(n)}: the input schema must describe an object (type 'object'), not {clip(repr(schema_type))}",
                param=item(n),
            )


def check_tool_choice(choice: ToolChoice | None, tools: Sequence[ToolDefinition], param: str) -> None:
    """A forced choice needs tools, and a named one a tool of that name."""
    if choice is None or choice.mode in ("auto", "none"):
        return
    if not tools:
        raise bad_request(f"{param}: a tool choice of '{choice.mode}' needs 'tools'", param=param)
    if choice.mode == "named" and choice.name not in {t.name for t in tools}:
        raise bad_request(f"{param}: no tool named {clip(repr(choice.name))} in 'tools'", param=param)


def offered_tools(request: ChatRequest) -> list[ToolDefinition]:
    """The tools the model may call this turn: none when ``tool_choice`` is ``none``."""
    if request.tool_choice is not None and request.tool_choice.mode == "none":
        return []
    return request.tools


def tool_choice_instructions(request: ChatRequest) -> list[str]:
    """Prompt paragraphs for what claude.ai cannot be told in its body: a forced or single call."""
    if not offered_tools(request):
        return []
    choice = request.tool_choice
    lines = []
    if choice is not None and choice.mode == "named":
        lines.append(f"In this reply you must call the tool `{choice.name}`.")
    elif choice is not None and choice.mode == "required":
        lines.append("In this reply you must call at least one of the tools you have.")
    if not request.parallel_tool_calls:
        lines.append("Call at most one tool in this reply.")
    return [" ".join(lines)] if lines else []


def tool_wire(tool: ToolDefinition) -> dict[str, Any]:
    """A client tool as claude.ai's completion takes it (``docs/protocol.md`` §6.1: no ``type`` key).

    A schema without a ``type`` (OpenAI clients send ``parameters: {}`` for a tool without
    arguments) gets ``"type": "object"``: claude.ai refuses an input schema of another type."""
    schema = tool.input_schema if "type" in tool.input_schema else {"type": "object", **tool.input_schema}
    return {"name": tool.name, "description": tool.description, "input_schema": schema}


# ---------------------------------------------------------------------------------------------
# Call ids


def new_call_id() -> str:
    """A fresh Anthropic-style tool-use id (for calls the daemon makes from a JSON answer)."""
    return "toolu_01" + "".join(secrets.choice(_BASE62) for _ in range(22))


def openai_call_id(upstream_id: str) -> str:
    """claude.ai's ``toolu_X`` as OpenAI's ``call_X``; other ids are kept."""
    return "call_" + upstream_id.removeprefix("toolu_") if upstream_id.startswith("toolu_") else upstream_id


def upstream_call_id(client_id: str) -> str:
    """An OpenAI ``call_X`` id back as ``toolu_X``; any other id as it is."""
    return "toolu_" + client_id.removeprefix("call_") if client_id.startswith("call_") else client_id


# ---------------------------------------------------------------------------------------------
# JSON answers

_DECODER = json.JSONDecoder()


def find_json(text: str) -> tuple[str, Any] | None:
    """The JSON value the reply holds, as ``(text, value)``: the whole reply, a fenced block in it,
    or the first object/array inside prose; ``None`` if there is none. Linear-ish: each candidate
    start is decoded once, and only the first 64 starts are tried."""
    stripped = text.strip()
    try:
        return stripped, json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    for inner in _fenced_blocks(text):
        try:
            return inner, json.loads(inner)
        except (ValueError, RecursionError):
            continue
    tries = 0
    for match in re.finditer(r"[\[{]", text):
        tries += 1
        if tries > 64:
            break
        try:
            value, end = _DECODER.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        return text[match.start() : end], value
    return None


def _fenced_blocks(text: str) -> list[str]:
    """The insides of Markdown code fences (language tag dropped), stripped. A plain scan pairing
    fence marks in order: a lazy regex here is quadratic on many unclosed fences."""
    marks, pos = [], text.find(_FENCE)
    while pos >= 0:
        marks.append(pos)
        pos = text.find(_FENCE, pos + len(_FENCE))
    blocks = []
    for start, end in zip(marks[::2], marks[1::2], strict=False):
        language = _FENCE_LANGUAGE.match(text, start + len(_FENCE))
        assert language is not None  # the pattern matches everywhere
        blocks.append(text[language.end() : end].strip())
    return blocks


def matches_schema(value: Any, schema: dict[str, Any]) -> bool:
    """A shallow check that an object fits a tool's schema: required keys present, and no unknown
    key when ``additionalProperties`` is false. (A full validator is not worth a dependency here.)"""
    if not isinstance(value, dict):
        return False
    required = schema.get("required")
    if isinstance(required, list) and any(key not in value for key in required):
        return False
    properties = schema.get("properties")
    if schema.get("additionalProperties") is False and isinstance(properties, dict):
        return all(key in properties for key in value)
    return True


def coerce_tool_call(text: str, request: ChatRequest) -> ToolCall | None:
    """The tool call a forced ``tool_choice`` asked for, made from a JSON answer, or ``None``.

    Accepted: the arguments object itself, for the named tool (or the only tool, or the one tool
    whose schema it fits), or ``{"name": …, "arguments"|"input"|"parameters": {…}}`` naming a tool.
    """
    found = find_json(text)
    if found is None or not isinstance(found[1], dict):
        return None
    value: dict[str, Any] = found[1]
    tools = {t.name: t for t in offered_tools(request)}
    choice = request.tool_choice
    wanted = choice.name if choice is not None and choice.mode == "named" else None
    name = value.get("name")
    inner = next((value[k] for k in ("arguments", "input", "parameters") if isinstance(value.get(k), dict)), None)
    if isinstance(name, str) and name in tools and inner is not None and wanted in (None, name):
        return ToolCall(new_call_id(), name, compact_json(inner))
    if wanted is not None:
        candidates = [tools[wanted]]
    elif len(tools) == 1:
        candidates = list(tools.values())
    else:
        candidates = [t for t in tools.values() if matches_schema(value, t.input_schema)]
    if len(candidates) == 1 and matches_schema(value, candidates[0].input_schema):
        return ToolCall(new_call_id(), candidates[0].name, compact_json(value))
    return None


def model_output_error(message: str, code: str) -> APIError:
    """The model's reply broke the request's contract (no JSON, no tool call).

    502 because the failure is upstream's, with ``x-should-retry: false``: the SDKs' automatic
    retries would spend the account's quota on the same prompt for a likely identical answer.
    """
    return APIError(502, message, type="server_error", code=code, headers={"x-should-retry": "false"})


def clean_json(content: str, mode: str) -> str:
    """The reply's JSON (whole, fenced or inside prose, as :func:`find_json` finds it), as text;
    no JSON at all is the non-retryable error of :func:`model_output_error`."""
    found = find_json(content)
    if found is None:
        raise model_output_error(f"the model's reply was not valid JSON for the requested format {mode}", "invalid_json_output")
    return found[0]
