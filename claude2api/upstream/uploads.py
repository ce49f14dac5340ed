"""Where a turn's files go: claude.ai's per-conversation wiggle upload, else the legacy one.

The wiggle endpoint (docs/protocol.md §8.1) is the current one and its files go away with the
conversation, so a failed request's uploads are deleted with it by the janitor. An account (org)
whose wiggle endpoint answers 404 falls back to the legacy ``/api/{org}/upload`` (docs/protocol.md §8.4), whose
files stay in the account: no delete endpoint is published. The 404 is remembered for
:data:`WIGGLE_ABSENT_SECONDS`, so the fallback does not cost a failed call per file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from claude2api.core.failures import UpstreamError
from claude2api.logs import get_logger
from claude2api.upstream.client import Account, ClaudeWebClient

log = get_logger(__name__)

#: How long an org whose wiggle endpoint answered 404 uploads through the legacy endpoint.
WIGGLE_ABSENT_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Upload:
    file_uuid: str
    #: True when the file lives in the conversation (deleted with it), False for a legacy upload.
    in_conversation: bool


class Uploader:
    def __init__(self, client: ClaudeWebClient, clock: Callable[[], float]) -> None:
        self.client = client
        self.clock = clock
        #: org id -> clock time until which its wiggle endpoint is taken to be absent.
        self._wiggle_absent_until: dict[str, float] = {}

    def wiggle_absent(self, org_id: str) -> bool:
        until = self._wiggle_absent_until.get(org_id)
        if until is not None and until <= self.clock():
            del self._wiggle_absent_until[org_id]
            return False
        return until is not None

    async def upload(
        self, account: Account, conv_id: str, data: bytes, media_type: str, filename: str | None = None
    ) -> Upload:
        """Upload one file for the conversation ``conv_id`` (which need not exist yet)."""
        if not self.wiggle_absent(account.org_id):
            try:
                file_uuid = await self.client.upload_to_conversation(account, conv_id, data, media_type, filename)
                return Upload(file_uuid, in_conversation=True)
            except UpstreamError as exc:
                if exc.status != 404:
                    raise
                self._wiggle_absent_until[account.org_id] = self.clock() + WIGGLE_ABSENT_SECONDS
                log.warning("wiggle_upload_absent", org=account.org_id, fallback="legacy upload")
        return Upload(await self.client.upload(account, data, media_type, filename), in_conversation=False)
