"""The plugin API: what a chat middleware sees. Import from here, not from the internal modules.

A plugin module has a ``chat_middleware(settings)`` factory returning a middleware (or ``None``);
see README's plugin section. The full versioned API (options, discovery, a test helper) comes later.
"""

from __future__ import annotations

from claude2api.core.record import RequestRecord
from claude2api.core.types import (
    ChatContext,
    ChatHandler,
    ChatMiddleware,
    ChatMiddlewareFactory,
    ChatRequest,
    DocumentPart,
    Event,
    ImagePart,
    Limit,
    Message,
    Stop,
    TextDelta,
    TextPart,
    Thinking,
    ThinkingDelta,
)

__all__ = [
    "ChatContext",
    "ChatHandler",
    "ChatMiddleware",
    "ChatMiddlewareFactory",
    "ChatRequest",
    "DocumentPart",
    "Event",
    "ImagePart",
    "Limit",
    "Message",
    "RequestRecord",
    "Stop",
    "TextDelta",
    "TextPart",
    "Thinking",
    "ThinkingDelta",
]
