"""The output guard: a reply that must be a tool call or JSON is one, or the client gets an error.

claude.ai has no ``tool_choice`` and no JSON mode; the dialects ask for them in the prompt, and this
middleware checks the answer, the same way for every dialect:

* Forced tool choice (``required`` / ``any`` / a named tool): text is held back until a tool call
  starts (then it goes out before the call). A reply that ends without a call is converted when it
  is a JSON answer fitting the tool (:func:`claude2api.core.tools.coerce_tool_call`), else it is a
  502 with ``x-should-retry: false`` (:func:`~claude2api.core.tools.model_output_error`).
* ``parallel_tool_calls: false`` / ``disable_parallel_tool_use``: the turn ends after the first call.
* JSON mode (OpenAI ``response_format``, Anthropic ``output_config.format``): a non-stream reply is
  held and cleaned (a fenced block or the JSON inside prose is kept); a stream whose first
  character opens JSON is relayed as it comes and checked at the end; any other stream is held and
  cleaned like a non-stream reply. No JSON: the same non-retryable error (after the commit point,
  the dialect's error frame).

Requests that ask for none of this get ``call_next(ctx)`` itself: no extra generator per event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from claude2api.core.failures import APIError
from claude2api.core.tools import coerce_tool_call, find_json, model_output_error, offered_tools
from claude2api.core.types import (
    ChatContext,
    ChatHandler,
    ChatMiddleware,
    ChatRequest,
    Event,
    Stop,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)

#: Upstream stop reasons after which a reply is not checked: it was cut, not finished.
_CUT = frozenset({"max_tokens", "model_context_window_exceeded", "refusal"})


def output_guard_factory(settings: Any) -> ChatMiddleware:
    def output_guard(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        request = ctx.request
        tools = offered_tools(request)
        forced = bool(tools) and request.tool_choice is not None and request.tool_choice.mode in ("required", "named")
        single = bool(tools) and not request.parallel_tool_calls
        if not (forced or single or request.response_format is not None):
            return call_next(ctx)
        return _guarded(call_next(ctx), request, forced=forced, single=single)  # type: ignore[arg-type]

    return output_guard


async def _guarded(
    events: AsyncGenerator[Event, None], request: ChatRequest, *, forced: bool, single: bool
) -> AsyncIterator[Event]:
    """``events`` with the checks of the module docstring; ``mode`` is ``hold`` (text held back),
    ``relay`` (a JSON stream relayed as it comes, kept for the final check) or ``pass``."""
    try:
        async for out in _checked(events, request, forced=forced, single=single):
            yield out
    finally:
        await events.aclose()  # now, not at garbage collection: the attempt's clean-up stops the generation


async def _checked(
    events: AsyncGenerator[Event, None], request: ChatRequest, *, forced: bool, single: bool
) -> AsyncIterator[Event]:
    json_mode = request.response_format is not None
    mode = "hold" if forced or json_mode else "pass"
    decide_lead = json_mode and not forced and request.stream  # relay once the first character opens JSON
    text: list[str] = []
    async for event in events:
        if isinstance(event, TextDelta):
            if mode == "pass":
                yield event
                continue
            text.append(event.text)
            if mode == "relay":
                yield event
            elif decide_lead and (lead := "".join(text).lstrip()):
                decide_lead = False
                if lead[0] in "{[":
                    mode = "relay"
                    yield TextDelta("".join(text))
        elif isinstance(event, ToolCallStart):
            if mode == "hold" and text:
                yield TextDelta("".join(text))
            mode = "pass"
            yield event
        elif isinstance(event, ToolCallEnd):
            yield event
            if single:
                yield Stop("tool_use")
                return
        elif isinstance(event, Stop):
            for out in _finish("".join(text), event, request, mode, forced):
                yield out
            return
        else:
            yield event


def _finish(text: str, stop: Stop, request: ChatRequest, mode: str, forced: bool) -> list[Event]:
    """The events that end the reply: held text (cleaned), a converted call; or the error raised."""
    if mode == "pass" or stop.reason in _CUT:
        return [TextDelta(text), stop] if mode == "hold" and text else [stop]
    if mode == "relay":  # already sent as it came: it must be JSON as it stands
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            raise _not_json() from None
        return [stop]
    if forced:
        call = coerce_tool_call(text, request)
        if call is None:
            choice = request.tool_choice
            wanted = f"the tool `{choice.name}`" if choice is not None and choice.mode == "named" else "a tool"
            raise model_output_error(
                f"The model answered without calling {wanted}, which tool_choice requires, and its answer "
                "is not JSON arguments for it. Retrying the same request will likely fail the same way.",
                "tool_choice_unmet",
            )
        return [ToolCallStart(0, call.id, call.name), ToolCallDelta(0, call.arguments), ToolCallEnd(0), Stop("tool_use")]
    found = find_json(text)
    if found is None:
        raise _not_json()
    return [TextDelta(found[0]), stop]


def _not_json() -> APIError:
    return model_output_error(
        "The model's reply is not valid JSON, which the requested response format requires. "
        "Retrying the same request will likely fail the same way.",
        "invalid_json_output",
    )
