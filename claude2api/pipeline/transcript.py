"""The transcript middleware: the conversation flattened into the one prompt claude.ai takes.

claude.ai takes one user turn per completion, so the whole OpenAI/Anthropic conversation is
flattened into a transcript (``System: ``/``Human: ``/``Assistant: `` paragraphs), as the original
claude2api did. The prompt-building middlewares (this one, :mod:`~claude2api.pipeline.history_file`,
:mod:`~claude2api.pipeline.images`) only prepare the turn, so they hand back ``call_next(ctx)``
itself instead of re-yielding each event: no extra generator frame per open stream. Chain order:
:func:`transcript_factory`, then the history file (it reads the built prompt), then the images,
before the session failover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from claude2api.core.types import (
    ChatContext,
    ChatHandler,
    ChatMiddleware,
    DocumentPart,
    Event,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolResult,
)

# The original spelled the tag <antArtifac>; the real claude.ai tag is <antArtifact>.
ARTIFACTS_PREAMBLE = (
    "System: Forbidden to use <antArtifact> </antArtifact> to wrap code blocks, use markdown syntax "
    "instead, which means wrapping code blocks with ``` ```\n\n"
)
# Tool results come back from the client's side of the conversation, hence "Human".
_ROLE_PREFIXES = {"system": "System: ", "user": "Human: ", "assistant": "Assistant: ", "tool": "Human: "}


def build_prompt(
    messages: Sequence[Message],
    *,
    no_role_prefix: bool = False,
    disable_artifacts: bool = False,
    instructions: Sequence[str] = (),
    documents: list[DocumentPart] | None = None,
) -> tuple[str, list[ImagePart]]:
    """Flatten ``messages`` into claude2api's transcript; returns ``(prompt, images)``.

    Each message becomes ``<prefix><text>\\n\\n`` (no trailing ``Assistant:`` cue, as in the
    original, e.g. ``"System: Be brief\\n\\nHuman: Hi\\n\\n"``); its parts are joined by blank
    lines, each image replaced by ``[image N]`` (N counts from 1 over the whole conversation and
    indexes the returned list). Each document becomes ``[document N: NAME]`` and is appended to
    ``documents`` when given (the files themselves go to claude.ai beside the prompt). A message without any part (an assistant tool-call turn with
    ``content: null``) is left out. ``instructions`` follow as ``System:`` paragraphs.
    ``no_role_prefix`` drops the prefixes but keeps the separators; the artifacts preamble keeps
    its ``System:`` either way, as in the original.
    """
    images: list[ImagePart] = []
    tool_names: dict[str, str] = {}
    documents = [] if documents is None else documents
    paragraphs = [ARTIFACTS_PREAMBLE] if disable_artifacts else []
    for message in messages:
        if message.parts:
            text = _message_text(message, images, documents, tool_names)
            paragraphs.append(_paragraph(message.role, text, no_role_prefix))
    paragraphs.extend(_paragraph("system", text, no_role_prefix) for text in instructions)
    return "".join(paragraphs), images


def _message_text(
    message: Message, images: list[ImagePart], documents: list[DocumentPart], tool_names: dict[str, str]
) -> str:
    """The message's parts as text, appending its images and documents to the lists as they are met.

    Past tool calls and results are rendered explicitly (docs/protocol.md §6.5: a plain format of our
    own, not claude.ai's internal markup): ``<tool_call id=… name=…>{arguments}</tool_call>`` and
    ``<tool_result id=… name=… [is_error="true"]>…</tool_result>``; the ``toolu_…`` ids tie a
    result to its call, and ``tool_names`` remembers each call's name for its result.
    """
    pieces = []
    for part in message.parts:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ImagePart):
            images.append(part)
            pieces.append(f"[image {len(images)}]")
        elif isinstance(part, DocumentPart):
            documents.append(part)
            pieces.append(f"[document {len(documents)}: {part.filename or 'document'}]")
        elif isinstance(part, ToolCall):
            tool_names[part.id] = part.name
            pieces.append(f'<tool_call id="{part.id}" name="{part.name}">{part.arguments}</tool_call>')
        elif isinstance(part, ToolResult):
            pieces.append(_tool_result_text(part, images, tool_names))
    return "\n\n".join(pieces)


def _tool_result_text(result: ToolResult, images: list[ImagePart], tool_names: dict[str, str]) -> str:
    inner = []
    for part in result.content:
        if isinstance(part, TextPart):
            inner.append(part.text)
        else:
            images.append(part)
            inner.append(f"[image {len(images)}]")
    name = tool_names.get(result.call_id, result.call_id.removeprefix("function:"))
    error = ' is_error="true"' if result.is_error else ""
    body = "\n".join(inner)
    return f'<tool_result id="{result.call_id}" name="{name}"{error}>\n{body}\n</tool_result>'


def _paragraph(role: str, text: str, no_role_prefix: bool) -> str:
    prefix = "" if no_role_prefix else _ROLE_PREFIXES[role]
    return f"{prefix}{text}\n\n"


def transcript_factory(settings: Any) -> ChatMiddleware:
    """Build ``ctx.turn.prompt``, ``.images`` and ``.documents`` from the request (see :func:`build_prompt`)."""
    no_role_prefix = settings.no_role_prefix
    disable_artifacts = settings.prompt_disable_artifacts

    def transcript(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        ctx.turn.prompt, ctx.turn.images = build_prompt(
            ctx.request.messages,
            no_role_prefix=no_role_prefix,
            disable_artifacts=disable_artifacts,
            instructions=ctx.request.instructions,
            documents=ctx.turn.documents,
        )
        return call_next(ctx)

    return transcript


