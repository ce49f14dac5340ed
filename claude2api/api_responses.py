"""HTTP handlers of the OpenAI Responses API: create, retrieve and delete a response.

Errors leave in the OpenAI shape (the error middleware's default). A finished exchange is kept in
the daemon's :class:`~claude2api.dialects.response_store.ResponseStore` unless the request said
``store: false``, under the caller's credential, so only that caller can continue, read or delete it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import relay
from .auth import presented_key
from .chat import ChatRequest
from .dialects.response_store import StoredResponse, history_size, owner_of
from .dialects.responses import (
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
from .errors import UpstreamError
from .services import SERVICES, Services
from .tokens import estimate_request_tokens


async def create_response(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    body = await relay.read_json(request)
    chat_request, options = parse_responses_request(body, services.catalog)
    owner = owner_of(presented_key(request))
    if options.previous_response_id is not None:
        previous = await services.responses.get(owner, options.previous_response_id)
        if previous is None:
            raise unknown_previous_response(options.previous_response_id)
        chat_request = continue_conversation(chat_request, options, previous.history)
    ctx = relay.chat_context(request, chat_request, "responses")
    render_args: dict[str, Any] = {
        "model": chat_request.model,
        "options": options,
        "prompt_tokens": estimate_request_tokens(chat_request),
        "max_tokens": chat_request.max_tokens,
    }
    events, head = await relay.start(ctx)
    if chat_request.stream:
        renderer = ResponsesStream(**render_args)
        response = await relay.stream(
            request,
            events,
            head,
            renderer,
            error_frame=_failed_event(renderer),
            keepalive_interval=services.settings.keepalive_interval,
        )
        if renderer.final is not None:
            await _keep(services, owner, chat_request, options, renderer.final, renderer.reply_text)
        return response
    collector = ResponsesCollector(**render_args)
    result = await relay.collect(events, head, collector)
    await _keep(services, owner, chat_request, options, result, collector.reply_text)
    return web.json_response(result, dumps=relay.compact_json)


async def get_response(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    record = await request.app[SERVICES].responses.get(owner_of(presented_key(request)), response_id)
    if record is None:
        raise response_not_found(response_id)
    return web.json_response(record.response, dumps=relay.compact_json)


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
    reply: str,
) -> None:
    """Keep a finished exchange for follow-ups, unless the client said ``store: false``."""
    if not options.store:
        return
    history = stored_history(conversation_of(chat_request, options), reply)
    size = history_size(history) + len(relay.compact_json(response))
    await services.responses.put(
        StoredResponse(id=response["id"], owner=owner, response=response, history=history, size=size)
    )


def _failed_event(renderer: ResponsesStream) -> Callable[[UpstreamError], bytes]:
    """A late failure as ``response.failed``, coded as its HTTP error would have been."""

    def frame(exc: UpstreamError) -> bytes:
        error = relay.upstream_api_error(exc)
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        return renderer.error_frame(error.message, code=code)

    return frame
