"""The document middleware: per-request caps, URL documents downloaded, text documents made attachments.

Runs before the session failover, like the image middleware: each document is downloaded once per
request however many accounts are tried, and nothing is uploaded unless every document is in hand
and within the caps. PDFs and office files stay in ``ctx.turn.documents`` for the attempt to upload
(:mod:`claude2api.pipeline.attempt`); text documents become inline attachments (see
:mod:`claude2api.core.documents` for why).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from claude2api.core.documents import DocumentError, document_from_bytes, document_size
from claude2api.core.failures import APIError, clip
from claude2api.core.types import Attachment, ChatContext, ChatHandler, ChatMiddleware, DocumentPart, Event
from claude2api.pipeline.images import display_url, fetch_all
from claude2api.upstream.image_http import ByteBudget, fetch_document


def documents_factory(settings: Any) -> ChatMiddleware:
    """Hold the request's documents to ``max_documents_per_request`` and
    ``max_document_bytes_per_request`` (inline and downloaded: the client's 400 otherwise), download
    the URL ones concurrently (same SSRF rules, deadline and private-address switch as images:
    ``image_fetch_timeout``, ``image_fetch_allow_private``), then move text documents into the
    turn's attachments."""
    max_count = settings.max_documents_per_request
    max_total = settings.max_document_bytes_per_request
    fetch = partial(
        fetch_document,
        max_bytes=max_total,
        timeout=settings.image_fetch_timeout,
        allow_private=settings.image_fetch_allow_private,
    )
    too_large = APIError(
        400,
        f"The documents of this request total more than {max_total} bytes, the most one request may"
        " carry (MAX_DOCUMENT_BYTES_PER_REQUEST).",
        param="messages",
    )

    def documents(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        docs = ctx.turn.documents
        if not docs:
            return call_next(ctx)
        if len(docs) > max_count:
            raise APIError(
                400,
                f"This request has {len(docs)} documents; at most {max_count} are allowed per request"
                " (MAX_DOCUMENTS_PER_REQUEST).",
                param="messages",
            )
        inline = sum(document_size(doc) for doc in docs)
        if inline > max_total:
            raise too_large
        urls = list(dict.fromkeys(doc.url for doc in docs if doc.url and doc.data is None and doc.text is None))
        if not urls:
            _to_attachments(ctx)
            return call_next(ctx)
        return fetch_then_continue(ctx, call_next, urls, ByteBudget(max_total - inline))

    async def fetch_then_continue(
        ctx: ChatContext, call_next: ChatHandler, urls: list[str], budget: ByteBudget
    ) -> AsyncIterator[Event]:
        fetched = await fetch_all(fetch, ctx.internal.http, urls, budget, what="document", too_large=too_large)
        for doc in ctx.turn.documents:
            if doc.url and doc.data is None and doc.text is None:
                _fill(doc, *fetched[doc.url], doc.url)
        _to_attachments(ctx)
        async for event in call_next(ctx):
            yield event

    return documents


def _fill(doc: DocumentPart, declared: str, data: bytes, url: str) -> None:
    """Put a downloaded document's bytes (or text) into ``doc``; the client's 400 if claude.ai cannot read it."""
    filename = doc.filename or url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    try:
        loaded = document_from_bytes(data, declared, filename)
    except DocumentError as exc:
        raise APIError(400, f"the document at {display_url(url)}: {exc}", param="messages") from None
    if not isinstance(loaded, DocumentPart):
        raise APIError(
            400, f"the document at {display_url(url)} is an image ({clip(declared)}); send it as an image", param="messages"
        )
    doc.media_type, doc.data, doc.text, doc.filename = loaded.media_type, loaded.data, loaded.text, loaded.filename


def _to_attachments(ctx: ChatContext) -> None:
    """Text documents go inline as attachments; the rest stay to be uploaded."""
    uploads = []
    for doc in ctx.turn.documents:
        if doc.text is not None:
            name = doc.filename or "document.txt"
            ctx.turn.attachments.append(Attachment(name, doc.text, doc.media_type or "text/plain", document=True))
        else:
            uploads.append(doc)
    ctx.turn.documents = uploads
