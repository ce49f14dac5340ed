"""HTTP handlers of the OpenAI Responses API: create, retrieve and delete a response.

Errors leave in the OpenAI shape (the error middleware's default). A finished exchange is kept in
the daemon's :class:`~claude2api.dialects.response_store.ResponseStore` unless the request said
``store: false``, under the caller's credential, so only that caller can continue, read or delete it.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from claude2api.core.failures import bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.tokens import estimate_request_tokens
from claude2api.core.types import ChatRequest, Message
from claude2api.dialects.base import ReplySpec
from claude2api.dialects.response_store import StoredResponse, history_size, owner_of
from claude2api.dialects.responses import (
    RESPONSES,
    ResponsesCollector,
    ResponsesOptions,
    ResponsesStream,
    continue_conversation,
    conversation_of,
    deleted_body,
    parse_responses_request,
    response_not_found,
    stored_history,
    unknown_previous_response,
)
from claude2api.http import relay
from claude2api.http.auth import presented_key
from claude2api.http.handlers import MODEL_LOG_CHARS, apply_web_search
from claude2api.http.metrics import model_label
from claude2api.http.services import RECORD, SERVICES, Services


async def create_response(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    record = request[RECORD]
    record.dialect = RESPONSES.name
    body = await relay.read_json(request)
    asked = body.get("model") if isinstance(body, dict) else None
    record.model_asked = clip(asked, MODEL_LOG_CHARS) if isinstance(asked, str) else None
    record.model_label = model_label(services.catalog, asked)
    chat_request, options = parse_responses_request(body, services.catalog)
    record.stream = chat_request.stream
    if chat_request.tools and not services.settings.tools:
        raise bad_request("Tool calling is turned off on this server (setting TOOLS=false).", param="tools")
    apply_web_search(chat_request, services.settings, record)
    owner = owner_of(presented_key(request))
    if options.previous_response_id is not None:
        previous = await services.responses.get(owner, options.previous_response_id)
        if previous is None:
            raise unknown_previous_response(options.previous_response_id)
        chat_request = continue_conversation(chat_request, options, previous.history)
    ctx = relay.chat_context(request, chat_request, RESPONSES.name)
    events, head = await relay.start(ctx)
    record.first_token_seconds = time.perf_counter() - record.started
    record.model_sent = ctx.request.upstream_model
    # Counted once the plugins ran (they run before the first event): their prompt counts too.
    spec = ReplySpec(chat_request, options, estimate_request_tokens(ctx.request), services.settings.thinking_output)
    record.input_tokens = spec.prompt_tokens
    if chat_request.stream:
        renderer = ResponsesStream(chat_request.model, options, spec.prompt_tokens, chat_request.max_tokens)
        response = await relay.stream(
            request, events, head, renderer, RESPONSES, keepalive_interval=services.settings.keepalive_interval
        )
        if renderer.final is not None:
            await _keep(services, owner, chat_request, options, renderer.final, renderer.reply_message)
        return response
    collector = ResponsesCollector(chat_request.model, options, spec.prompt_tokens, chat_request.max_tokens)
    result = await relay.collect(events, head, collector, record)
    await _keep(services, owner, chat_request, options, result, collector.reply_message)
    return web.json_response(result, dumps=compact_json)


async def get_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    record = await request.app[SERVICES].responses.get(owner_of(presented_key(request)), response_id)
    if record is None:
        raise response_not_found(response_id)
    return web.json_response(record.response, dumps=compact_json)


async def delete_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    if not await request.app[SERVICES].responses.delete(owner_of(presented_key(request)), response_id):
        raise response_not_found(response_id)
    return web.json_response(deleted_body(response_id))


async def _keep(
    services: Services,
    owner: str,
    chat_request: ChatRequest,
    options: ResponsesOptions,
    response: dict[str, Any],
    reply: Message,
) -> None:
    """Keep a finished exchange for follow-ups, unless the client said ``store: false``."""
    if not options.store:
        return
    history = stored_history(conversation_of(chat_request, options), reply)
    size = history_size(history) + len(compact_json(response))
    await services.responses.put(
        StoredResponse(id=response["id"], owner=owner, response=response, history=history, size=size)
    )
