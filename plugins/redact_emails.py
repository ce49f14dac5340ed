"""Example plugin: rewrite the reply as it streams, masking e-mail addresses.

Shows the other half of the plugin API: a middleware may transform the events coming back. Text
arrives in pieces, so an address split across two deltas is held back until it is complete.
Option ``replacement`` (default ``[email]``) is what an address becomes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from claude2api.plugin import ChatContext, ChatHandler, ChatMiddleware, Event, TextDelta

requires_api = 1

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: A tail that may still grow into an address is held back until the next delta.
PARTIAL = re.compile(r"[\w.+@-]+$")


def chat_middleware(settings: Any, options: Mapping[str, Any]) -> ChatMiddleware:
    replacement = str(options.get("replacement", "[email]"))

    async def redact_emails(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        pending = ""
        async for event in call_next(ctx):
            if not isinstance(event, TextDelta):
                if pending:
                    yield TextDelta(EMAIL.sub(replacement, pending))
                    pending = ""
                yield event
                continue
            text = pending + event.text
            tail = PARTIAL.search(text)
            cut = tail.start() if tail else len(text)
            pending = text[cut:]
            if cut:
                yield TextDelta(EMAIL.sub(replacement, text[:cut]))
        if pending:
            yield TextDelta(EMAIL.sub(replacement, pending))

    return redact_emails
