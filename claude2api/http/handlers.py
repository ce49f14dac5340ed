"""HTTP handlers: the chat handler (one per dialect, built from its :class:`Dialect`), token
counting, the model list, health and the admin view."""

from __future__ import annotations

import copy
import json
import time
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from claude2api.config import Settings
from claude2api.core.failures import bad_request, clip
from claude2api.core.jsonutil import compact_json
from claude2api.core.record import RequestRecord
from claude2api.core.search import apply_search_policy, search_instructions, search_notes
from claude2api.core.tokens import estimate_request_tokens
from claude2api.core.types import ChatRequest
from claude2api.dialects.anthropic import parse_count_tokens
from claude2api.dialects.base import Dialect, ReplySpec, unknown_model
from claude2api.dialects.openai import model_object, models_list
from claude2api.http import relay
from claude2api.http.auth import key_matches, presented_key
from claude2api.http.metrics import model_label
from claude2api.http.services import MIRROR_CREDENTIALS, RECORD, SERVICES

#: Longest model id quoted in an access line (a client may send a megabyte).
MODEL_LOG_CHARS = 120


def chat_handler(dialect: Dialect) -> Handler:
    """The chat endpoint of ``dialect``: parse, run the chain to the commit point, stream or collect."""

    async def chat(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        record = request[RECORD]
        record.dialect = dialect.name
        body = await relay.read_json(request)
        asked = body.get("model") if isinstance(body, dict) else None
        record.model_asked = clip(asked, MODEL_LOG_CHARS) if isinstance(asked, str) else None
        record.model_label = model_label(services.catalog, asked)
        chat_request, options = dialect.parse(body, services.catalog_for(request.get(MIRROR_CREDENTIALS)))
        record.stream = chat_request.stream
        record.model_asked = clip(chat_request.model, MODEL_LOG_CHARS)
        record.unhonoured = dialect.unhonoured(body, chat_request)
        if chat_request.tools and not services.settings.tools:
            raise bad_request("Tool calling is turned off on this server (setting TOOLS=false).", param="tools")
        apply_web_search(chat_request, services.settings, record)
        ctx = relay.chat_context(request, chat_request, dialect.name)
        events, head = await relay.start(ctx)
        record.first_token_seconds = time.perf_counter() - record.started
        record.model_sent = ctx.request.upstream_model
        # Counted once the plugins ran (they run before the first event): their prompt counts too.
        spec = ReplySpec(chat_request, options, estimate_request_tokens(ctx.request), services.settings.thinking_output)
        record.input_tokens = spec.prompt_tokens
        if chat_request.stream:
            return await relay.stream(
                request,
                events,
                head,
                dialect.stream(spec),
                dialect,
                keepalive_interval=services.settings.keepalive_interval,
            )
        result = await relay.collect(events, head, dialect.collect(spec), record)
        return web.json_response(result, dumps=compact_json)

    chat.__name__ = f"{dialect.name}_chat"
    return chat


def apply_web_search(chat_request: ChatRequest, settings: Settings, record: RequestRecord) -> None:
    """``WEB_SEARCH`` on a parsed request (a 400 when off and asked), then its options as prompt
    instructions and warning notes (:mod:`claude2api.core.search`)."""
    search = apply_search_policy(chat_request, settings.web_search).web_search
    if search is not None:
        record.unhonoured += search_notes(search)
        chat_request.instructions += search_instructions(search)


async def count_tokens(request: web.Request) -> web.Response:
    """A local estimate (claude.ai counts nothing); needs no claude.ai session."""
    body = await relay.read_json(request)
    chat_request = parse_count_tokens(body, request.app[SERVICES].catalog_for(request.get(MIRROR_CREDENTIALS)))
    return web.json_response({"input_tokens": estimate_request_tokens(chat_request)})


async def list_models(request: web.Request) -> web.Response:
    """One body serves both SDKs (each reads the fields it knows)."""
    return web.json_response(models_list(request.app[SERVICES].catalog_for(request.get(MIRROR_CREDENTIALS))))


async def get_model(request: web.Request) -> web.Response:
    model_id = request.match_info["model_id"]
    request[RECORD].model_asked = clip(model_id, MODEL_LOG_CHARS)
    catalog = request.app[SERVICES].catalog_for(request.get(MIRROR_CREDENTIALS))
    info = catalog.get(model_id)
    if info is None:
        raise unknown_model(catalog, model_id)
    return web.json_response(model_object(info))


async def health(request: web.Request) -> web.Response:
    """``{"status": "ok"}`` for anyone; session counts only for a caller with an API or admin key."""
    services = request.app[SERVICES]
    settings = services.settings
    presented = presented_key(request)
    accepted = settings.api_keys + ((settings.admin_key,) if settings.admin_key else ())
    if presented is None or not accepted or not key_matches(presented, accepted):
        return web.json_response({"status": "ok"})
    states: dict[str, int] = {}
    for session in services.pool.snapshot():
        states[session["state"]] = states.get(session["state"], 0) + 1
    return web.json_response({"status": "ok", "sessions": states})


async def admin_sessions(request: web.Request) -> web.Response:
    """Every configured session's state, for operators; keys appear only as fingerprints."""
    services = request.app[SERVICES]
    return web.json_response({"object": "list", "data": services.pool.snapshot()})


@cache
def openapi_base() -> dict[str, Any]:
    """The HTTP surface as shipped in ``claude2api/openapi.json`` (routes of the default setup)."""
    loaded: dict[str, Any] = json.loads((resources.files("claude2api") / "openapi.json").read_bytes())
    return loaded


def openapi_for(settings: Settings) -> dict[str, Any]:
    """The document for this configuration: the shipped one, plus the mirror routes when mirror mode is on."""
    doc = copy.deepcopy(openapi_base())
    if settings.enable_mirror_api:
        mirror = settings.mirror_api_prefix + "/v1"
        for path in (
            "/chat/completions",
            "/responses",
            "/responses/{response_id}",
            "/messages",
            "/messages/count_tokens",
            "/models",
            "/models/{model_id}",
        ):
            doc["paths"][mirror + path] = doc["paths"]["/v1" + path]
    return doc


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /openapi.json``, without a key: it tells nothing the README does not."""
    return web.json_response(openapi_for(request.app[SERVICES].settings))
