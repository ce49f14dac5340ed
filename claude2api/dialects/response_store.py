"""Finished Responses API exchanges, kept so ``previous_response_id`` can continue them.

The Responses API is stateful: a follow-up request may send only its new input plus the id of the
response it continues, and ``GET``/``DELETE /v1/responses/{id}`` read or drop a kept response.
claude.ai keeps nothing for us (conversations are deleted after each answer), so the daemon keeps
the neutral history of each stored exchange itself.

:class:`ResponseStore` is the small interface the HTTP layer uses (async, so a shared store can
serve several daemons later); :class:`MemoryResponseStore` is the default: bounded by a count, a
total size and a time to live. Every record belongs to an *owner* (a digest of the caller's
credential): another owner's id reads as unknown, so one caller can neither read nor continue
another's exchanges, nor learn that an id exists.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from claude2api.core.types import DocumentPart, ImagePart, Message, Part, TextPart, ToolCall


def owner_of(credential: str | None) -> str:
    """The owner id of a caller: a digest of its credential (never the credential itself).

    Without an API key every caller is the same owner (the daemon then trusts whoever reaches it).
    """
    return hashlib.sha256((credential or "").encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(slots=True)
class StoredResponse:
    """One finished exchange: the ``response`` object as sent, and the conversation to continue.

    ``history`` is every message of the conversation so far except the request's ``instructions``
    (which, as in OpenAI's API, are not carried over to a follow-up), ending with the reply.
    """

    id: str
    owner: str
    response: dict[str, Any]
    history: list[Message]
    #: Rough size in bytes, for the store's total-size bound.
    size: int = field(default=0)
    #: When the store forgets it (set by the store, from its clock and TTL).
    expires_at: float = field(default=0.0)


def history_size(messages: list[Message]) -> int:
    """Rough memory held by ``messages``: text characters, image and document bytes (and URLs),
    tool calls' arguments and tool results' content."""
    return sum(_part_size(part) for message in messages for part in message.parts)


def _part_size(part: Part | TextPart | ImagePart) -> int:
    if isinstance(part, TextPart):
        return len(part.text)
    if isinstance(part, ImagePart):
        return len(part.data or b"") + len(part.url or "")
    if isinstance(part, DocumentPart):
        return len(part.data or b"") + len(part.text or "") + len(part.url or "")
    if isinstance(part, ToolCall):
        return len(part.id) + len(part.name) + len(part.arguments)
    return len(part.call_id) + sum(_part_size(inner) for inner in part.content)


class ResponseStore(Protocol):
    """Where finished exchanges are kept. Every method is scoped to one owner."""

    async def put(self, record: StoredResponse) -> None: ...

    async def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...


class MemoryResponseStore:
    """The in-process store: at most ``max_items`` records and ``max_bytes`` of history, each
    forgotten ``ttl`` seconds after it was stored; the oldest go first when a bound is reached.

    ``max_items == 0`` keeps nothing (every ``previous_response_id`` is then unknown). A record
    larger than ``max_bytes`` on its own is not kept.
    """

    def __init__(
        self, *, max_items: int, max_bytes: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock
        self._records: OrderedDict[str, StoredResponse] = OrderedDict()  # oldest first
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def put(self, record: StoredResponse) -> None:
        self._expire()
        if self.max_items == 0 or record.size > self.max_bytes:
            return
        self._drop(record.id)
        record.expires_at = self._clock() + self.ttl
        self._records[record.id] = record
        self._bytes += record.size
        while len(self._records) > self.max_items or self._bytes > self.max_bytes:
            self._drop(next(iter(self._records)))

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        self._expire()
        record = self._records.get(response_id)
        return record if record is not None and record.owner == owner else None

    async def delete(self, owner: str, response_id: str) -> bool:
        if await self.get(owner, response_id) is None:
            return False
        self._drop(response_id)
        return True

    def _expire(self) -> None:
        """Forget expired records; all have the same TTL, so they expire oldest first."""
        now = self._clock()
        while self._records:
            oldest = next(iter(self._records.values()))
            if oldest.expires_at > now:
                break
            self._drop(oldest.id)

    def _drop(self, response_id: str) -> None:
        record = self._records.pop(response_id, None)
        if record is not None:
            self._bytes -= record.size
