"""HTTP handlers of the Anthropic dialect: messages and token counting.

Errors raised here leave in Anthropic's shape: the error middleware picks it for any path
containing ``/v1/messages``. The model list is shared with the OpenAI dialect (one body serves
both SDKs).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from . import relay
from .dialects.anthropic import (
    AnthropicCollector,
    AnthropicStream,
    parse_count_tokens,
    parse_messages_request,
)
from .errors import UpstreamError
from .services import SERVICES
from .tokens import estimate_request_tokens


async def messages(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    body = await relay.read_json(request)
    chat_request, options = parse_messages_request(body, services.catalog)
    ctx = relay.chat_context(request, chat_request, "anthropic")
    render_args = {
        "model": chat_request.model,
        "options": options,
        "prompt_tokens": estimate_request_tokens(chat_request),
        "stops": chat_request.stop,
        "max_tokens": chat_request.max_tokens,
    }
    events, head = await relay.start(ctx)
    if chat_request.stream:
        renderer = AnthropicStream(**render_args)
        return await relay.stream(
            request,
            events,
            head,
            renderer,
            error_frame=_error_event(renderer),
            keepalive_interval=services.settings.keepalive_interval,
        )
    result = await relay.collect(events, head, AnthropicCollector(**render_args))
    return web.json_response(result, dumps=relay.compact_json)


async def count_tokens(request: web.Request) -> web.Response:
    """A local estimate (claude.ai counts nothing); needs no claude.ai session."""
    body = await relay.read_json(request)
    chat_request = parse_count_tokens(body, request.app[SERVICES].catalog)
    return web.json_response({"input_tokens": estimate_request_tokens(chat_request)})


def _error_event(renderer: AnthropicStream) -> Callable[[UpstreamError], bytes]:
    """A late failure as the ``error`` event, typed as its HTTP error would have been
    (``overloaded_error``, ``rate_limit_error``, else ``api_error``)."""

    def frame(exc: UpstreamError) -> bytes:
        error = relay.upstream_api_error(exc).anthropic_body()["error"]
        return renderer.error_frame(error["message"], error["type"])

    return frame
