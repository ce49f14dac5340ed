"""Background clean-up of claude.ai conversations: stop the generation, delete the chat.

Clean-up must survive the request that caused it: a client that walks away cancels its handler,
yet the conversation must still be stopped and deleted. So clean-up runs as tracked background
tasks, which shutdown waits for (nothing may be left in the user's account).
"""

from __future__ import annotations

import asyncio

from .errors import UpstreamError
from .logs import fingerprint, get_logger
from .upstream.client import Account, ClaudeWebClient

log = get_logger(__name__)

DELETE_ATTEMPTS = 3


class Janitor:
    def __init__(self, client: ClaudeWebClient, retry_delay: float = 1.0) -> None:
        self.client = client
        self.retry_delay = retry_delay
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, account: Account, conv_id: str, *, stop: bool, delete: bool) -> None:
        if not (stop or delete):
            return
        task = asyncio.get_running_loop().create_task(self._clean(account, conv_id, stop, delete))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clean(self, account: Account, conv_id: str, stop: bool, delete: bool) -> None:
        session = fingerprint(account.key)
        if stop:
            try:
                await self.client.stop_response(account, conv_id)
                log.info("generation_stopped", session=session, conversation=conv_id)
            except UpstreamError as exc:
                log.warning("stop_response_failed", session=session, conversation=conv_id, error=exc.message)
        if not delete:
            return
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            try:
                await self.client.delete_conversation(account, conv_id)
                log.debug("conversation_deleted", session=session, conversation=conv_id)
                return
            except UpstreamError as exc:
                log.warning(
                    "delete_failed", session=session, conversation=conv_id, attempt=attempt, error=exc.message
                )
                if attempt < DELETE_ATTEMPTS:
                    await asyncio.sleep(self.retry_delay * attempt)

    async def idle(self) -> None:
        """Wait until every scheduled clean-up has finished (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
