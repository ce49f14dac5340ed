"""Chat middlewares that build what goes to claude.ai: the prompt text, its images, its attachments.

claude.ai takes one user turn per completion, so the whole OpenAI/Anthropic conversation is
flattened into a transcript (``System: ``/``Human: ``/``Assistant: `` paragraphs), as the original
claude2api did. These middlewares only prepare the turn, so they hand back ``call_next(ctx)``
itself instead of re-yielding each event: no extra generator frame per open stream. Chain order: :func:`role_prefix_factory`, then :func:`history_to_file_factory`
(it reads the built prompt), then :func:`fetch_images_factory` before the session-retry middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

from yarl import URL

from .chat import (
    Attachment,
    ChatContext,
    ChatHandler,
    ChatMiddleware,
    Event,
    ImagePart,
    Message,
    TextPart,
)
from .errors import APIError
from .images import ByteBudget, ImageBudgetExceeded, ImageFetchError, fetch_image

# The original spelled the tag <antArtifac>; the real claude.ai tag is <antArtifact>.
ARTIFACTS_PREAMBLE = (
    "System: Forbidden to use <antArtifact> </antArtifact> to wrap code blocks, use markdown syntax "
    "instead, which means wrapping code blocks with ``` ```\n\n"
)
#: Visible prompt when the transcript went to ``context.txt`` (the original's text, verbatim).
HISTORY_FILE_INSTRUCTION = (
    "You must immerse yourself in the role of assistant in context.txt, cannot respond as a user, "
    "cannot reply to this message, cannot mention this message, and ignore this message in your "
    "response.\n\n"
)
HISTORY_FILE_NAME = "context.txt"

# Tool results come back from the client's side of the conversation, hence "Human".
_ROLE_PREFIXES = {"system": "System: ", "user": "Human: ", "assistant": "Assistant: ", "tool": "Human: "}
_TOOL_RESULT_HEADER = "[tool result]\n"


def build_prompt(
    messages: Sequence[Message],
    *,
    no_role_prefix: bool = False,
    disable_artifacts: bool = False,
    instructions: Sequence[str] = (),
) -> tuple[str, list[ImagePart]]:
    """Flatten ``messages`` into claude2api's transcript; returns ``(prompt, images)``.

    Each message becomes ``<prefix><text>\\n\\n`` (no trailing ``Assistant:`` cue, as in the
    original, e.g. ``"System: Be brief\\n\\nHuman: Hi\\n\\n"``); its parts are joined by blank
    lines, each image replaced by ``[image N]`` (N counts from 1 over the whole conversation and
    indexes the returned list). A message without any part (an assistant tool-call turn with
    ``content: null``) is left out. ``instructions`` follow as ``System:`` paragraphs.
    ``no_role_prefix`` drops the prefixes but keeps the separators; the artifacts preamble keeps
    its ``System:`` either way, as in the original.
    """
    images: list[ImagePart] = []
    paragraphs = [ARTIFACTS_PREAMBLE] if disable_artifacts else []
    for message in messages:
        if message.parts:
            text = _message_text(message, images)
            paragraphs.append(_paragraph(message.role, text, no_role_prefix))
    paragraphs.extend(_paragraph("system", text, no_role_prefix) for text in instructions)
    return "".join(paragraphs), images


def _message_text(message: Message, images: list[ImagePart]) -> str:
    """The message's parts as text, appending its images to ``images`` as they are met."""
    pieces = []
    for part in message.parts:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        else:
            images.append(part)
            pieces.append(f"[image {len(images)}]")
    text = "\n\n".join(pieces)
    return _TOOL_RESULT_HEADER + text if message.role == "tool" else text


def _paragraph(role: str, text: str, no_role_prefix: bool) -> str:
    prefix = "" if no_role_prefix else _ROLE_PREFIXES[role]
    return f"{prefix}{text}\n\n"


def role_prefix_factory(settings: Any) -> ChatMiddleware:
    """Build ``ctx.turn.prompt`` and ``ctx.turn.images`` from the request (see :func:`build_prompt`)."""
    no_role_prefix = settings.no_role_prefix
    disable_artifacts = settings.prompt_disable_artifacts

    def role_prefix(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        ctx.turn.prompt, ctx.turn.images = build_prompt(
            ctx.request.messages,
            no_role_prefix=no_role_prefix,
            disable_artifacts=disable_artifacts,
            instructions=ctx.request.instructions,
        )
        return call_next(ctx)

    return role_prefix


def history_to_file_factory(settings: Any) -> ChatMiddleware:
    """Move a prompt longer than ``max_chat_history_length`` UTF-8 bytes into ``context.txt``.

    The whole transcript becomes an inline attachment and the visible prompt is replaced by
    (artifacts preamble if enabled +) :data:`HISTORY_FILE_INSTRUCTION`, about 200 bytes. With a
    limit smaller than that the instruction is still sent, over the limit: there is nothing
    shorter that would still work. ``0`` therefore means "always attach".
    """
    limit = settings.max_chat_history_length
    replacement = (ARTIFACTS_PREAMBLE if settings.prompt_disable_artifacts else "") + HISTORY_FILE_INSTRUCTION

    def history_to_file(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        if len(ctx.turn.prompt.encode()) > limit:
            ctx.turn.attachments.append(Attachment(HISTORY_FILE_NAME, ctx.turn.prompt, "text/plain"))
            ctx.turn.prompt = replacement
        return call_next(ctx)

    return history_to_file


def fetch_images_factory(settings: Any) -> ChatMiddleware:
    """Hold the request's images to the per-request caps, then download the http(s) ones.

    ``max_images_per_request`` caps the number of images and ``max_image_bytes_per_request``
    their total size, inline ones included; either is the client's 400 before anything is
    downloaded or uploaded. The downloads run concurrently (a URL repeated in the conversation
    once), each within ``image_fetch_timeout`` from the same start: one deadline for all. The first
    failure cancels the others and is the client's 400. Runs before the session-retry middleware,
    so each image is downloaded once per request however many accounts are tried, and nothing is
    uploaded unless every image is in hand. The parts are filled in place, so the request's
    messages see the bytes as well. Uses the daemon's download session ``ctx.services.http``.
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
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {url: group.create_task(_fetch_or_400(fetch, ctx.services.http, url, budget)) for url in urls}
        except BaseExceptionGroup as failures:  # the first failure cancelled the other downloads
            if any(isinstance(exc, ImageBudgetExceeded) for exc in failures.exceptions):
                raise too_large from None
            raise failures.exceptions[0] from None
        for image in ctx.turn.images:
            if image.url and image.data is None:
                image.media_type, image.data = tasks[image.url].result()
        async for event in call_next(ctx):
            yield event

    return fetch_images


async def _fetch_or_400(fetch: Any, session: Any, url: str, budget: ByteBudget) -> tuple[str, bytes]:
    try:
        return await fetch(session, url, budget=budget)
    except ImageFetchError as exc:
        message = f"could not fetch the image at {_display_url(url)}: {exc}"
        raise APIError(400, message, param="messages") from None


def _display_url(url: str, max_chars: int = 120) -> str:
    """``url`` without credentials, query and fragment, shortened (it may be a huge data: URL)."""
    try:
        parsed = URL(url)
        if parsed.absolute:
            parsed = parsed.with_user(None)
        shown = str(parsed.with_query(None).with_fragment(None))
    except ValueError:
        return "(invalid URL)"
    return shown if len(shown) <= max_chars else shown[:max_chars] + "…"
