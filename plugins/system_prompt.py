"""Example plugin: put a fixed system prompt in front of every conversation.

Enable with ``PLUGINS=plugins/system_prompt.py`` (a module path such as ``mypackage.plugin`` works
too) and set ``SYSTEM_PROMPT``. The plugin sees the dialect-neutral request, so it works the same
for OpenAI and Anthropic clients.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from claude2api.plugin import ChatContext, ChatHandler, Event, Message, TextPart


def chat_middleware(settings):
    prompt = os.environ.get("SYSTEM_PROMPT", "").strip()
    if not prompt:
        return None  # nothing to add: stay out of the chain

    async def system_prompt(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        ctx.replace_request(messages=[Message("system", [TextPart(prompt)]), *ctx.request.messages])
        async for event in call_next(ctx):
            yield event

    return system_prompt
