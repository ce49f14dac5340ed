"""HTTP handlers of the OpenAI dialect: chat completions and models."""

from __future__ import annotations

from aiohttp import web

from . import relay
from .dialects.openai import OpenAICollector, OpenAIStream, model_object, models_list, parse_chat_request
from .errors import APIError, clip
from .services import SERVICES
from .tokens import estimate_request_tokens


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
