"""Chaining chat middlewares: each one gets the next as ``call_next``; the terminal handler ends the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from claude2api.core.types import ChatContext, ChatHandler, ChatMiddleware, Event


def build_chain(middlewares: Sequence[ChatMiddleware], terminal: ChatHandler) -> ChatHandler:
    handler = terminal
    for middleware in reversed(middlewares):
        handler = _bind(middleware, handler)
    return handler


def _bind(middleware: ChatMiddleware, call_next: ChatHandler) -> ChatHandler:
    def handler(ctx: ChatContext) -> AsyncIterator[Event]:
        return middleware(ctx, call_next)

    return handler
