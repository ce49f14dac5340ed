"""HTTP handlers of the OpenAI dialect: chat completions and models."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import relay
from .chat import ChatContext, ChatRequest
from .dialects.openai import OpenAICollector, OpenAIStream, model_object, models_list, parse_chat_request
from .errors import APIError, bad_request
from .services import MIRROR_CREDENTIALS, REQUEST_ID, SERVICES
from .tokens import estimate_request_tokens


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 that says what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None


def chat_context(request: web.Request, chat_request: ChatRequest, dialect: str) -> ChatContext:
    services = request.app[SERVICES]
    ctx = ChatContext(
        request=chat_request, services=services, request_id=request[REQUEST_ID], dialect=dialect
    )
    mirror = request.get(MIRROR_CREDENTIALS)
    if mirror is not None:
        ctx.mirror_session = services.mirror_session(*mirror)
    return ctx


async def chat_completions(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    body = await read_json(request)
    chat_request, options = parse_chat_request(body, services.catalog)
    ctx = chat_context(request, chat_request, "openai")
    render_args = dict(
        model=chat_request.model,
        options=options,
        thinking_output=services.settings.thinking_output,
        prompt_tokens=estimate_request_tokens(chat_request),
        stops=chat_request.stop,
        max_tokens=chat_request.max_tokens,
    )
    events, head = await relay.start(ctx)
    if chat_request.stream:
        return await relay.stream(request, events, head, OpenAIStream(**render_args))
    result = await relay.collect(events, head, OpenAICollector(**render_args))
    return web.json_response(result, dumps=_dumps)


async def list_models(request: web.Request) -> web.Response:
    return web.json_response(models_list(request.app[SERVICES].catalog))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    info = request.app[SERVICES].catalog.get(model_id)
    if info is None:
        raise APIError(
            404,
            f"The model `{model_id}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return web.json_response(model_object(info))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
