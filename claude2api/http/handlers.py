"""HTTP handlers: chat completions, messages, token counting and the model list."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from claude2api.core.failures import APIError, UpstreamError, clip
from claude2api.core.tokens import estimate_request_tokens
from claude2api.dialects.anthropic import (
    AnthropicCollector,
    AnthropicStream,
    parse_count_tokens,
    parse_messages_request,
)
from claude2api.dialects.openai import (
    OpenAICollector,
    OpenAIStream,
    model_object,
    models_list,
    parse_chat_request,
)
from claude2api.http import relay
from claude2api.http.services import SERVICES


async def chat_completions(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    body = await relay.read_json(request)
    chat_request, options = parse_chat_request(body, services.catalog)
    ctx = relay.chat_context(request, chat_request, "openai")
    render_args = {
        "model": chat_request.model,
        "options": options,
        "thinking_output": services.settings.thinking_output,
        "prompt_tokens": estimate_request_tokens(chat_request),
        "stops": chat_request.stop,
        "max_tokens": chat_request.max_tokens,
    }
    events, head = await relay.start(ctx)
    if chat_request.stream:
        return await relay.stream(
            request,
            events,
            head,
            OpenAIStream(**render_args),
            keepalive_interval=services.settings.keepalive_interval,
        )
    result = await relay.collect(events, head, OpenAICollector(**render_args))
    return web.json_response(result, dumps=relay.compact_json)


async def list_models(request: web.Request) -> web.Response:
    return web.json_response(models_list(request.app[SERVICES].catalog))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    info = request.app[SERVICES].catalog.get(model_id)
    if info is None:
        raise APIError(
            404,
            f"The model `{clip(model_id)}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return web.json_response(model_object(info))


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
