"""The demo's chat middleware: its errors say they come from the built-in fake, not claude.ai.

``claude2api --demo`` loads it as a plugin (the outermost one), so a failure of the fake the demo
talks to (say its packaged fixtures went missing) reads "... (from the built-in demo claude.ai, not
the real claude.ai)" instead of sending the user to check on claude.ai. Nothing else changes:
the same statuses, codes and error frames as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from claude2api.core.failures import APIError, UpstreamError
from claude2api.plugin import ChatContext, ChatHandler, ChatMiddleware, Event

#: Appended to the upstream errors of demo mode.
DEMO_NOTE = " (from the built-in demo claude.ai, not the real claude.ai)"


def _from_upstream(exc: APIError | UpstreamError) -> bool:
    """Upstream failures: all of them mid-stream, and the ones the chain reports before content
    (5xx, limits, a model the fake's accounts lack); a 400 about the client's request stays as it is."""
    return isinstance(exc, UpstreamError) or exc.status >= 429 or exc.code == "model_not_allowed"


def chat_middleware(settings: Any) -> ChatMiddleware:
    async def demo_errors(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        try:
            async for event in call_next(ctx):
                yield event
        except (APIError, UpstreamError) as exc:
            if _from_upstream(exc) and not exc.message.endswith(DEMO_NOTE):
                exc.message += DEMO_NOTE
                exc.args = (exc.message,)
            raise

    return demo_errors
