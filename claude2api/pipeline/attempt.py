"""The end of the chat chain: one attempt at claude.ai on the session failover chose."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from claude2api.core.catalog import ModelCapabilities, ThinkingIntent, ThinkingPlan, plan_thinking
from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.tools import offered_tools, tool_wire
from claude2api.core.types import ChatContext, Event, Stop
from claude2api.logs import get_logger
from claude2api.upstream.client import Account
from claude2api.upstream.protocol import TurnOptions, generation

log = get_logger(__name__)


def thinking_plan(ctx: ChatContext) -> ThinkingPlan:
    """What to send for thinking: the client's intent against the model as this account's live
    list describes it (else the catalogue's record); departures are said in a debug line."""
    request = ctx.request
    model_id = request.upstream_model or ctx.internal.catalog.default
    caps = _capabilities(ctx, model_id)
    wish = request.thinking
    plan = plan_thinking(caps, ThinkingIntent(wish.enabled, wish.effort) if wish else None)
    for note in plan.adjustments:
        log.debug("thinking_adjusted", model=model_id, note=note)
    return plan


def _capabilities(ctx: ChatContext, model_id: str) -> ModelCapabilities:
    own = (ctx.session.models if ctx.session is not None else None) or ()
    for caps in own:
        if caps.id == model_id:
            return caps
    resolved = ctx.internal.catalog.resolve(model_id)
    if resolved is not None and resolved.model is not None and resolved.upstream == model_id:
        return resolved.model
    return ModelCapabilities(model_id, model_id)  # unknown: nothing about thinking is sent


async def claude_web(ctx: ChatContext) -> AsyncIterator[Event]:
    """The end of the chain: one attempt on ``ctx.session``, cleaning up whatever happens.

    Whatever fails after the account is known (an upload, the conversation set-up, the completion)
    leaves the conversation to the janitor: stopped if it was generating, deleted unless it finished
    and CHAT_DELETE is off; the files uploaded into it go with it. A turn that ended at client tool
    calls is still generating upstream (claude.ai waits for the results, docs/protocol.md §6.2): it is
    stopped and deleted like an abandoned one; no upstream connection outlives the request.
    """
    services = ctx.internal
    settings = ctx.settings
    client = services.claude
    request = ctx.request
    session = ctx.session
    assert session is not None, "session failover runs before the attempt"
    if ctx.mirror_session is not None and session.org_id:
        account = Account(session.key, session.org_id)  # verified by the auth middleware; no state file
    else:
        account = await services.pool.account(session, client)
    plan = thinking_plan(ctx)
    conv_id = str(uuid.uuid4())
    streaming = finished = held = uploaded_into_conversation = False
    task = asyncio.current_task()
    assert task is not None
    services.upstream_tasks.add(task)
    try:
        # Inside the try: a failing upload is cleaned up like a failed completion. The conversation
        # is opened first (2025: created; 2026: nothing, its id is ours already), then the files go
        # into it (wiggle, docs/protocol.md §8.1), so deleting it deletes them.
        protocol = generation(settings.upstream_protocol)
        tools = [tool_wire(t) for t in offered_tools(request)]
        options = TurnOptions(
            model=request.upstream_model,
            thinking_mode=plan.thinking_mode,
            effort=plan.effort,
            tools=tools,
            web_search=request.web_search is not None,
        )
        await protocol.open(client, account, conv_id, options)
        ctx.record.conversations += 1
        for image in ctx.turn.images:
            if image.data is not None:
                media_type = image.media_type or "application/octet-stream"
                upload = await services.uploader.upload(account, conv_id, image.data, media_type)
                options.files.append(upload.file_uuid)
                uploaded_into_conversation |= upload.in_conversation
                ctx.record.uploads += 1
        for document in ctx.turn.documents:
            if document.data is not None:
                media_type = document.media_type or "application/octet-stream"
                upload = await services.uploader.upload(account, conv_id, document.data, media_type, document.filename)
                options.files.append(upload.file_uuid)
                uploaded_into_conversation |= upload.in_conversation
                ctx.record.uploads += 1
        body = protocol.completion_body(ctx.turn, options)
        event: Event | None = None
        async for event in client.completion(account, conv_id, body):
            streaming = True
            yield event
        finished = True
        held = isinstance(event, Stop) and event.reason == "tool_use"
    except asyncio.CancelledError:
        if not (services.cutting and task.cancelling()):
            raise
        task.uncancel()  # the shutdown cut: an error the client hears about, not a silent cancel
        raise UpstreamError(Failure.TRANSIENT, "claude2api is shutting down; the reply was cut short") from None
    finally:
        services.upstream_tasks.discard(task)
        # A failed or abandoned conversation is always deleted; a finished one when CHAT_DELETE is on.
        services.janitor.schedule(
            account,
            conv_id,
            stop=(streaming and not finished) or held,
            delete=settings.chat_delete or not finished or held,
            has_uploads=uploaded_into_conversation,
        )
