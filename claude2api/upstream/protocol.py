"""claude.ai's protocol generations: how a turn is opened and what its completion body holds.

claude.ai's web API moved in 2026 (docs/protocol.md §4.2, §4.3): the first completion now creates the
conversation (``create_conversation_params``), message ids travel in ``turn_message_uuids`` and
thinking is asked for in the body (``thinking_mode``/``effort``). The 2025 generation creates the
conversation first and switches thinking per conversation (``paprika_mode``). Each generation is
one :class:`Generation` object; :func:`generation` picks it by the ``UPSTREAM_PROTOCOL`` setting.
Everything that knows the completion's wire format lives here, so a future change upstream is one
more generation, not edits across the pipeline.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from claude2api.core.search import WEB_SEARCH_TOOL
from claude2api.core.types import Attachment, UpstreamTurn
from claude2api.upstream.client import Account, ClaudeWebClient

ROOT_MESSAGE_UUID = "00000000-0000-4000-8000-000000000000"
NORMAL_STYLE = {
    "type": "default",
    "key": "Default",
    "name": "Normal",
    "nameKey": "normal_style_name",
    "prompt": "Normal",
    "summary": "Default responses from Claude",
    "summaryKey": "normal_style_summary",
    "isDefault": True,
}


@dataclass(slots=True)
class TurnOptions:
    """What the pipeline decided for this turn, beyond the prompt: the claude.ai model id (``None``:
    the account default), the model's ``thinking_mode`` and ``effort`` exactly as
    :func:`~claude2api.core.catalog.plan_thinking` decided them (``None``: leave the field out), the
    uploaded files and the client's tools in claude.ai's form (:func:`claude2api.core.tools.tool_wire`).
    ``web_search`` turns on claude.ai's search: its tool entry goes first in ``tools`` and the
    conversation's ``enabled_web_search`` setting is switched on (both are needed, ``docs/protocol.md`` §7.1)."""

    model: str | None = None
    thinking_mode: str | None = None
    effort: str | None = None
    files: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    web_search: bool = False

    @property
    def thinking(self) -> bool:
        """Whether the turn thinks (any mode but ``off``)."""
        return self.thinking_mode not in (None, "off")


def attachment_wire(attachment: Attachment) -> dict[str, Any]:
    """An inline text document as the completion's ``attachments`` entry (no upload needed).

    A client's document carries ``origin``/``kind`` as the page's own text-file attachment does
    (docs/protocol.md §8.2, without ``path``: nothing was uploaded)."""
    wire: dict[str, Any] = {
        "file_name": attachment.file_name,
        "file_type": attachment.file_type,
        "file_size": len(attachment.content.encode()),
        "extracted_content": attachment.content,
    }
    if attachment.document:
        wire.update(origin="user_upload", kind="file")
    return wire


def _common_body(turn: UpstreamTurn, options: TurnOptions) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": turn.prompt,
        "timezone": "UTC",
        "locale": "en-US",
        "personalized_styles": [NORMAL_STYLE],
        "tools": [WEB_SEARCH_TOOL, *options.tools] if options.web_search else options.tools,
        "attachments": [attachment_wire(a) for a in turn.attachments],
        "files": options.files,
        "sync_sources": [],
        "rendering_mode": "messages",
    }
    if options.model:
        body["model"] = options.model
    return body


class Generation:
    """One protocol generation: :meth:`open` runs before the completion, :meth:`completion_body`
    builds its body."""

    name = ""

    async def open(self, client: ClaudeWebClient, account: Account, conv_id: str, options: TurnOptions) -> None:
        """Whatever must exist before the completion call (nothing, by default)."""

    def completion_body(self, turn: UpstreamTurn, options: TurnOptions) -> dict[str, Any]:
        raise NotImplementedError


class Generation2025(Generation):
    """Create the conversation, switch thinking on per conversation, then complete from the root."""

    name = "2025"

    async def open(self, client: ClaudeWebClient, account: Account, conv_id: str, options: TurnOptions) -> None:
        await client.create_conversation(account, conv_id, model=options.model)
        settings: dict[str, Any] = {}
        if options.thinking:  # the 2025 switch is per conversation, and only ``extended``
            settings["paprika_mode"] = "extended"
        if options.web_search:
            settings["enabled_web_search"] = True
        if settings:
            await client.update_conversation_settings(account, conv_id, settings)

    def completion_body(self, turn: UpstreamTurn, options: TurnOptions) -> dict[str, Any]:
        body = _common_body(turn, options)
        body["parent_message_uuid"] = ROOT_MESSAGE_UUID
        return body


class Generation2026(Generation):
    """The completion creates the conversation and carries thinking itself.

    Search: ``enabled_web_search`` rides in ``create_conversation_params`` next to ``paprika_mode``
    (the other conversation setting sent there). That claude.ai reads it there is unverified (``docs/protocol.md`` §7.1: clients seen so far rely on the account default, which then also works); with
    ``UPSTREAM_PROTOCOL=2025`` the setting is PUT explicitly, which is the measured way."""

    name = "2026"

    def completion_body(self, turn: UpstreamTurn, options: TurnOptions) -> dict[str, Any]:
        body = _common_body(turn, options)
        body["turn_message_uuids"] = {
            "human_message_uuid": str(uuid.uuid4()),
            "assistant_message_uuid": str(uuid.uuid4()),
        }
        if options.thinking_mode is not None:
            body["thinking_mode"] = options.thinking_mode
        if options.effort is not None:
            body["effort"] = options.effort
        params: dict[str, Any] = {
            "name": "",
            "include_conversation_preferences": True,
            "paprika_mode": "extended" if options.thinking_mode == "extended" else None,
            "compass_mode": None,
            "is_temporary": True,
        }
        if options.web_search:
            params["enabled_web_search"] = True
        if options.model:
            params["model"] = options.model
        body["create_conversation_params"] = params
        return body


GENERATIONS: dict[str, Generation] = {g.name: g for g in (Generation2025(), Generation2026())}


def generation(name: str) -> Generation:
    """The generation the ``UPSTREAM_PROTOCOL`` setting names."""
    return GENERATIONS[name]
