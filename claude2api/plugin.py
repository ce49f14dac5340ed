"""The plugin API, version :data:`PLUGIN_API_VERSION`. Import from here, not from the internal modules.

A plugin is a module with a factory::

    requires_api = 1  # optional: refused at start unless this claude2api speaks plugin API 1

    def chat_middleware(settings, options):  # or chat_middleware(settings) without options
        if not options.get("enabled", True):
            return None  # stay out of the chain
        async def my_middleware(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
            ...  # look at or rewrite ctx.request, then re-yield (or rewrite) the reply's events
            async for event in call_next(ctx):
                yield event
        return my_middleware

It is loaded from ``PLUGINS`` / the ``plugins:`` YAML section (with its ``options``) or, when
``PLUGINS_ENTRY_POINTS`` enables it, from the ``claude2api.plugins`` entry point group of an
installed package. The factory runs at start and on every reload (SIGHUP, which re-imports the
module); whatever it raises is a start-up (or reload) error naming the plugin.

What a middleware may use of :class:`ChatContext`: ``request`` (the dialect-neutral
:class:`ChatRequest`; change it with ``ctx.replace_request(...)``), ``request_id``, ``dialect``
(``"openai"``, ``"anthropic"`` or ``"responses"``), ``settings`` (read-only, as the request started),
``log`` (a structlog logger; lines carry the request id), ``turn`` and ``extras`` (a dict for the
plugins' own per-request state). Other attributes are internal and may change in any release.

Events are :data:`Event` values: text and thinking deltas, tool-call pieces, :class:`Limit` (quota
news, not content) and a final :class:`Stop`. Before the first content event a middleware may raise
:class:`APIError` to answer with an HTTP error; after it the client gets the dialect's in-band
error frame, whatever was raised. Test a middleware without sockets with
:func:`claude2api.testing.plugins.run_middleware`.

The version goes up when something above changes incompatibly; additions keep it.
"""

from __future__ import annotations

from claude2api.core.failures import APIError
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
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)

#: The plugin API this claude2api provides; a plugin module's ``requires_api`` must equal it.
PLUGIN_API_VERSION = 1

__all__ = [
    "PLUGIN_API_VERSION",
    "APIError",
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
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
]
