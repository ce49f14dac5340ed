"""Example plugin: rewrite the reply as it streams, masking e-mail addresses.

Shows the other half of the plugin API: a middleware may transform the events coming back. Text
arrives in pieces, so an address split across two deltas is held back until it is complete.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from claude2api.plugin import ChatContext, ChatHandler, Event, TextDelta

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: A tail that may still grow into an address is held back until the next delta.
PARTIAL = re.compile(r"[\w.+@-]+$")


def chat_middleware(settings):
    async def redact_emails(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        pending = ""
        async for event in call_next(ctx):
            if not isinstance(event, TextDelta):
                if pending:
                    yield TextDelta(EMAIL.sub("[email]", pending))
                    pending = ""
                yield event
                continue
            text = pending + event.text
            tail = PARTIAL.search(text)
            cut = tail.start() if tail else len(text)
            pending = text[cut:]
            if cut:
                yield TextDelta(EMAIL.sub("[email]", text[:cut]))
        if pending:
            yield TextDelta(EMAIL.sub("[email]", pending))

    return redact_emails
