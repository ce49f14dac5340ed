"""Testing a chat middleware without sockets: scripted events in, the middleware's events out.

::

    from claude2api.plugin import ChatRequest, Message, Stop, TextDelta, TextPart
    from claude2api.testing.plugins import run_middleware

    async def test_shouts() -> None:
        request = ChatRequest(model="claude-sonnet-4-5", upstream_model=None, messages=[Message("user", [TextPart("hi")])])
        events = await run_middleware(shout, request, [TextDelta("hello"), Stop()])
        assert events == [TextDelta("HELLO"), Stop()]

The scripted events stand for everything after the middleware (the rest of the chain and claude.ai);
an exception in the script is raised there, as an upstream failure would be. Pass a
:func:`plugin_context` instead of a request to look at what the middleware did to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from claude2api.config import Settings
from claude2api.core.types import ChatContext, ChatMiddleware, ChatRequest, Event


def plugin_context(
    request: ChatRequest,
    *,
    settings: Settings | None = None,
    dialect: str = "openai",
    request_id: str = "req_test",
) -> ChatContext:
    """A :class:`ChatContext` as a plugin sees it, with no daemon behind it (no ``internal``)."""
    return ChatContext(
        request=request,
        request_id=request_id,
        dialect=dialect,
        settings=settings if settings is not None else Settings(),
        internal=cast(Any, None),
    )


async def run_middleware(
    middleware: ChatMiddleware,
    request: ChatRequest | ChatContext,
    events: Iterable[Event | BaseException],
) -> list[Event]:
    """Run ``middleware`` once with ``events`` as what ``call_next(ctx)`` yields; its events, in order.

    What the middleware raises propagates; afterwards ``ctx.request`` is the request as the rest of
    the chain saw it.
    """
    ctx = request if isinstance(request, ChatContext) else plugin_context(request)

    async def call_next(_: ChatContext) -> AsyncIterator[Event]:
        for item in events:
            if isinstance(item, BaseException):
                raise item
            yield item

    return [event async for event in middleware(ctx, call_next)]
