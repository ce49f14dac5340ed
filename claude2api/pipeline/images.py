"""The image middleware: per-request caps, then the http(s) images downloaded before any account is tried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, Protocol

import aiohttp
from yarl import URL

from claude2api.core.failures import APIError
from claude2api.core.types import ChatContext, ChatHandler, ChatMiddleware, Event
from claude2api.upstream.image_http import ByteBudget, ImageBudgetExceeded, ImageFetchError, fetch_image


def fetch_images_factory(settings: Any) -> ChatMiddleware:
    """Hold the request's images to the per-request caps, then download the http(s) ones.

    ``max_images_per_request`` caps the number of images and ``max_image_bytes_per_request``
    their total size, inline ones included; either is the client's 400 before anything is
    downloaded or uploaded. The downloads run concurrently (a URL repeated in the conversation
    once), each within ``image_fetch_timeout`` from the same start: one deadline for all. The first
    failure cancels the others and is the client's 400. Runs before the session-retry middleware,
    so each image is downloaded once per request however many accounts are tried, and nothing is
    uploaded unless every image is in hand. The parts are filled in place, so the request's
    messages see the bytes as well. Uses the daemon's download session ``ctx.internal.http``.
    """
    max_count = settings.max_images_per_request
    max_total = settings.max_image_bytes_per_request
    fetch = partial(
        fetch_image,
        max_bytes=settings.image_max_bytes,
        timeout=settings.image_fetch_timeout,
        allow_private=settings.image_fetch_allow_private,
    )
    too_large = APIError(
        400,
        f"The images of this request total more than {max_total} bytes, the most one request may"
        " carry (MAX_IMAGE_BYTES_PER_REQUEST).",
        param="messages",
    )

    def fetch_images(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        images = ctx.turn.images
        if len(images) > max_count:
            raise APIError(
                400,
                f"This request has {len(images)} images; at most {max_count} are allowed per request"
                " (MAX_IMAGES_PER_REQUEST).",
                param="messages",
            )
        inline = sum(len(image.data) for image in images if image.data is not None)
        if inline > max_total:
            raise too_large
        urls = list(dict.fromkeys(image.url for image in images if image.url and image.data is None))
        if not urls:
            return call_next(ctx)  # nothing to download: stay out of the event path
        return fetch_then_continue(ctx, call_next, urls, ByteBudget(max_total - inline))

    async def fetch_then_continue(
        ctx: ChatContext, call_next: ChatHandler, urls: list[str], budget: ByteBudget
    ) -> AsyncIterator[Event]:
        fetched = await fetch_all(fetch, ctx.internal.http, urls, budget, what="image", too_large=too_large)
        for image in ctx.turn.images:
            if image.url and image.data is None:
                image.media_type, image.data = fetched[image.url]
        async for event in call_next(ctx):
            yield event

    return fetch_images


class _Fetch(Protocol):
    """:func:`fetch_image` with the settings' limits bound."""

    async def __call__(self, session: aiohttp.ClientSession, url: str, *, budget: ByteBudget) -> tuple[str, bytes]: ...


async def fetch_all(
    fetch: _Fetch,
    session: aiohttp.ClientSession,
    urls: list[str],
    budget: ByteBudget,
    *,
    what: str,
    too_large: APIError,
) -> dict[str, tuple[str, bytes]]:
    """Download ``urls`` concurrently under one shared byte ``budget`` (images and documents):
    ``{url: (media type, bytes)}``. The first failure cancels the others and is the client's 400;
    running out of budget is ``too_large``."""

    async def one(url: str) -> tuple[str, bytes]:
        try:
            return await fetch(session, url, budget=budget)
        except ImageFetchError as exc:
            raise APIError(400, f"could not fetch the {what} at {display_url(url)}: {exc}", param="messages") from None

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {url: group.create_task(one(url)) for url in urls}
    except BaseExceptionGroup as failures:  # the first failure cancelled the other downloads
        if any(isinstance(exc, ImageBudgetExceeded) for exc in failures.exceptions):
            raise too_large from None
        raise failures.exceptions[0] from None
    return {url: task.result() for url, task in tasks.items()}


def display_url(url: str, max_chars: int = 120) -> str:
    """``url`` without credentials, query and fragment, shortened (it may be a huge data: URL)."""
    try:
        parsed = URL(url)
        if parsed.absolute:
            parsed = parsed.with_user(None)
        shown = str(parsed.with_query(None).with_fragment(None))
    except ValueError:
        return "(invalid URL)"
    return shown if len(shown) <= max_chars else shown[:max_chars] + "…"
