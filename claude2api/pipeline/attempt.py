"""The end of the chat chain: one attempt at claude.ai on the session failover chose."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.types import ChatContext, Event
from claude2api.upstream.client import Account
from claude2api.upstream.protocol import TurnOptions, generation


async def claude_web(ctx: ChatContext) -> AsyncIterator[Event]:
    """The end of the chain: one attempt on ``ctx.session``, cleaning up whatever happens.

    Whatever fails after the account is known (an upload, the conversation set-up, the completion)
    leaves the conversation to the janitor: stopped if it was generating, deleted unless it finished
    and CHAT_DELETE is off.
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
    effort = request.thinking.effort if request.thinking else None
    conv_id = str(uuid.uuid4())
    streaming = finished = False
    task = asyncio.current_task()
    assert task is not None
    services.upstream_tasks.add(task)
    try:
        # Inside the try: a failing upload is cleaned up like a failed completion. (In the 2025 flow
        # uploads are account-level files that a conversation references; the 2026 flow will upload
        # through the conversation, after it exists.)
        files: list[str] = []
        for image in ctx.turn.images:
            if image.data is not None:
                files.append(await client.upload(account, image.data, image.media_type or "application/octet-stream"))
        protocol = generation(settings.upstream_protocol)
        options = TurnOptions(model=request.upstream_model, thinking_effort=effort, files=files)
        await protocol.open(client, account, conv_id, options)
        body = protocol.completion_body(ctx.turn, options)
        async for event in client.completion(account, conv_id, body):
            streaming = True
            yield event
        finished = True
    except asyncio.CancelledError:
        if not (services.cutting and task.cancelling()):
            raise
        task.uncancel()  # the shutdown cut: an error the client hears about, not a silent cancel
        raise UpstreamError(Failure.TRANSIENT, "claude2api is shutting down; the reply was cut short") from None
    finally:
        services.upstream_tasks.discard(task)
        # A failed or abandoned conversation is always deleted; a finished one when CHAT_DELETE is on.
        services.janitor.schedule(
            account, conv_id, stop=streaming and not finished, delete=settings.chat_delete or not finished
        )
