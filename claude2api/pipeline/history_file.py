"""The history-to-file middleware: a transcript too long for the prompt goes to claude.ai as ``context.txt``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from claude2api.core.types import Attachment, ChatContext, ChatHandler, ChatMiddleware, Event
from claude2api.pipeline.transcript import ARTIFACTS_PREAMBLE

#: Visible prompt when the transcript went to ``context.txt`` (the original's text, verbatim).
HISTORY_FILE_INSTRUCTION = (
    "You must immerse yourself in the role of assistant in context.txt, cannot respond as a user, "
    "cannot reply to this message, cannot mention this message, and ignore this message in your "
    "response.\n\n"
)
HISTORY_FILE_NAME = "context.txt"


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
            ctx.record.history_file = True
        return call_next(ctx)

    return history_to_file
