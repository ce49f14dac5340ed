"""Example plugin: put a fixed system prompt in front of every conversation.

Enable it in the YAML configuration, with its option::

    plugins:
      - module: plugins/system_prompt.py   # a module path such as mypackage.plugin works too
        options: {prompt: "Answer in French."}

The plugin sees the dialect-neutral request, so it works the same for every client dialect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from claude2api.plugin import ChatContext, ChatHandler, ChatMiddleware, Event, Message, TextPart

requires_api = 1


def chat_middleware(settings: Any, options: Mapping[str, Any]) -> ChatMiddleware | None:
    prompt = str(options.get("prompt") or "").strip()
    if not prompt:
        return None  # nothing to add: stay out of the chain

    async def system_prompt(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        ctx.replace_request(messages=[Message("system", [TextPart(prompt)]), *ctx.request.messages])
        async for event in call_next(ctx):
            yield event

    return system_prompt
