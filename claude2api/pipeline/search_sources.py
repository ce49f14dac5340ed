"""The search-sources middleware: a searched reply's sources listed at the end of its text.

For clients that read no structured citations (``SEARCH_SOURCES``, :mod:`claude2api.core.search`):
``auto`` lists them when the client did not ask for search in its own dialect (the ``-search``
suffix, ``WEB_SEARCH=always``), ``footer`` after every search, ``off`` never. Replies that must be
JSON or end at a client tool call get no footer. Requests without search get ``call_next(ctx)``
itself: no extra generator per event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from claude2api.core.search import sources_footer
from claude2api.core.types import (
    ChatContext,
    ChatHandler,
    ChatMiddleware,
    Event,
    SearchResult,
    SearchResults,
    Stop,
    TextDelta,
)


def search_sources_factory(settings: Any) -> ChatMiddleware | None:
    mode = settings.search_sources
    if mode == "off":
        return None

    def search_sources(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        search = ctx.request.web_search
        if search is None or (mode == "auto" and search.native) or ctx.request.response_format is not None:
            return call_next(ctx)
        return _with_footer(call_next(ctx))  # type: ignore[arg-type]

    return search_sources


async def _with_footer(events: AsyncGenerator[Event, None]) -> AsyncIterator[Event]:
    results: list[SearchResult] = []
    try:
        async for event in events:
            if isinstance(event, SearchResults):
                results += event.results
            elif isinstance(event, Stop) and results and event.reason != "tool_use":
                yield TextDelta(sources_footer(results))
            yield event
    finally:
        await events.aclose()
