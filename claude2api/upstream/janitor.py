"""Background clean-up of claude.ai conversations: stop the generation, delete the chat.

Clean-up must survive the request that caused it: a client that walks away cancels its handler,
yet the conversation must still be stopped and deleted. So the first attempt runs as a tracked
background task, which shutdown waits for. One that fails because claude.ai is unreachable or
refusing for now goes to a retry queue with exponential backoff, for ``CLEANUP_RETRY_HOURS``;
the queue is bounded and saved in the state file (under the session's key hash, never the key), so
a restart continues it. Mirror-mode callers' keys are never saved: their retries live in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, TypeGuard

from claude2api.accounts import statefile
from claude2api.accounts.pool import SessionPool
from claude2api.core.failures import Failure, UpstreamError
from claude2api.logs import fingerprint, get_logger
from claude2api.upstream.client import Account, ClaudeWebClient, canonical_org_id

log = get_logger(__name__)

#: The longest pause between two attempts at one clean-up.
MAX_BACKOFF_SECONDS = 600.0
#: Failures that pass: claude.ai down, blocking or limiting us. Others (a dead key, 4xx) will not.
RETRYABLE = frozenset({Failure.TRANSIENT, Failure.OVERLOADED, Failure.BLOCKED, Failure.RATE_LIMITED, Failure.REQUEST_RATE})


@dataclass(eq=False)
class Cleanup:
    """One conversation still to stop and/or delete."""

    session_id: str  # statefile.state_id of the key
    org_id: str
    conversation: str
    stop: bool
    delete: bool
    expires_at: float  # wall clock: give up after this
    attempts: int = 0
    due: float = 0.0  # loop time of the next attempt
    #: A mirror caller's key, kept in memory only; ``None`` for a configured session (found by its hash).
    mirror_key: str | None = None
    #: Files were uploaded into the conversation: if it was never created (a 2026 first turn that
    #: failed), create it so that deleting it deletes them.
    has_uploads: bool = False

    def record(self, loop_now: float, wall_now: float) -> dict[str, Any]:
        return {
            "session": self.session_id,
            "org_id": self.org_id,
            "conversation": self.conversation,
            "stop": self.stop,
            "delete": self.delete,
            "has_uploads": self.has_uploads,
            "attempts": self.attempts,
            "next_at": wall_now + min(max(0.0, self.due - loop_now), MAX_BACKOFF_SECONDS),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], loop_now: float, wall_now: float, window: float) -> Cleanup | None:
        """An entry read back from the state file, or ``None`` when it is not one we wrote."""
        session_id, org_id, conversation = record.get("session"), record.get("org_id"), record.get("conversation")
        stop, delete, attempts = record.get("stop"), record.get("delete"), record.get("attempts")
        next_at, expires_at = record.get("next_at"), record.get("expires_at")
        has_uploads = record.get("has_uploads", False)  # absent in files written before uploads
        if not (
            statefile.is_state_id(session_id)
            and isinstance(org_id, str)
            and canonical_org_id(org_id) is not None
            and isinstance(conversation, str)
            and canonical_org_id(conversation) is not None
            and isinstance(stop, bool)
            and isinstance(delete, bool)
            and isinstance(has_uploads, bool)
            and (stop or delete)
            and isinstance(attempts, int)
            and not isinstance(attempts, bool)
            and 0 <= attempts <= 1000
            and _finite(next_at)
            and _finite(expires_at)
        ):
            return None
        delay = min(max(0.0, float(next_at) - wall_now), MAX_BACKOFF_SECONDS)
        return cls(
            session_id=session_id,
            org_id=org_id,
            conversation=conversation,
            stop=stop,
            delete=delete,
            expires_at=min(float(expires_at), wall_now + window),
            attempts=attempts,
            due=loop_now + delay,
            has_uploads=has_uploads,
        )


class Janitor:
    def __init__(
        self,
        client: ClaudeWebClient,
        pool: SessionPool,
        *,
        retry_hours: float = 6.0,
        retry_delay: float = 2.0,
        queue_max: int = 10_000,
        concurrency: int = 32,
    ) -> None:
        self.client = client
        self.pool = pool
        self.retry_window = retry_hours * 3600
        self.retry_delay = retry_delay
        self.queue_max = queue_max
        #: Clean-ups (first attempts and retries) talking to claude.ai at once. Thousands of streams
        #: ending together (a restart, a load balancer dropping clients) would otherwise open as
        #: many connections at once: connect storms overflow listen queues and time out.
        self._limit = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: dict[str, Cleanup] = {}
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        #: Conversations deleted since start (the metrics read it).
        self.deleted = 0
        pool.pending_cleanup = self.pending_by_session
        if pool.state is not None:
            pool.state.sources["cleanup"] = self.records

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Take over the clean-ups the state file still lists, and start retrying."""
        loop = asyncio.get_running_loop()
        wall_now = self.pool.clock()
        restored = 0
        for record in self.pool.saved.cleanup:
            entry = Cleanup.from_record(record, loop.time(), wall_now, self.retry_window)
            if entry is None:
                log.warning("state_file_entry_dropped", part="cleanup")
            elif len(self._queue) < self.queue_max:
                self._queue[entry.conversation] = entry
                restored += 1
        if restored:
            log.info("cleanup_resumed", pending=restored)
        self._worker = loop.create_task(self._retry_forever())

    async def idle(self) -> None:
        """Wait until every first attempt has finished (tests); retries stay queued."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Shutdown: let first attempts finish, then stop retrying (the state file keeps the rest)."""
        await self.idle()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        now = asyncio.get_running_loop().time()
        for entry in self._queue.values():
            entry.due = min(entry.due, now)  # cut short mid-attempt: due again at once after a restart
        if self._queue:
            log.warning("cleanup_pending_at_shutdown", pending=len(self._queue))
            self._changed()

    # -- the work -------------------------------------------------------------------------------

    def schedule(
        self, account: Account, conv_id: str, *, stop: bool, delete: bool, has_uploads: bool = False
    ) -> None:
        if not (stop or delete):
            return
        sid = statefile.state_id(account.key)
        configured = self.pool.by_state_id(sid) is not None
        entry = Cleanup(
            session_id=sid,
            org_id=account.org_id,
            conversation=conv_id,
            stop=stop,
            delete=delete,
            expires_at=self.pool.clock() + self.retry_window,
            mirror_key=None if configured else account.key,
            has_uploads=has_uploads and delete,
        )
        task = asyncio.get_running_loop().create_task(self._first_attempt(entry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        """Clean-ups waiting for a retry."""
        return len(self._queue)

    def pending_by_session(self) -> Counter[str]:
        return Counter(entry.session_id for entry in self._queue.values())

    def records(self) -> list[dict[str, Any]]:
        """The queue as the state file keeps it: configured sessions only, by key hash."""
        loop_now, wall_now = _loop_time(), self.pool.clock()
        return [e.record(loop_now, wall_now) for e in self._queue.values() if e.mirror_key is None]

    async def _first_attempt(self, entry: Cleanup) -> None:
        async with self._limit:
            done = await self._attempt(entry)
        if not done:
            self._retry_later(entry)

    async def _retry_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            due = [e for e in self._queue.values() if e.due <= now]
            if due:
                for entry in due:
                    entry.due = math.inf  # in hand: not due again until this attempt is over
                await asyncio.gather(*(self._retry(entry) for entry in due))
                continue
            next_due = min((e.due for e in self._queue.values()), default=None)
            timeout = None if next_due is None else next_due - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _retry(self, entry: Cleanup) -> None:
        async with self._limit:
            done = await self._attempt(entry)
        del self._queue[entry.conversation]
        if done:
            log.info("cleanup_retry_succeeded", conversation=entry.conversation, attempts=entry.attempts + 1)
            self._changed()
        else:
            self._retry_later(entry)

    async def _attempt(self, entry: Cleanup) -> bool:
        """Stop and/or delete once; ``True`` when nothing is left to retry. Never raises (but for
        cancellation): a bug in one clean-up must not end the retry loop or strand the entry."""
        try:
            return await self._try_once(entry)
        except Exception as exc:  # logged; the entry is retried
            log.error("cleanup_failed", conversation=entry.conversation, error=type(exc).__name__)
            return False

    async def _try_once(self, entry: Cleanup) -> bool:
        key = entry.mirror_key
        if key is None:
            session = self.pool.by_state_id(entry.session_id)
            if session is None:  # no longer configured: wait (a reload may bring it back) until expiry
                return False
            key = session.key
        account = Account(key, entry.org_id)
        session_print = fingerprint(key)
        if entry.stop:
            try:
                await self.client.stop_response(account, entry.conversation)
                log.info("generation_stopped", session=session_print, conversation=entry.conversation)
                entry.stop = False
            except UpstreamError as exc:
                log.warning("stop_response_failed", session=session_print, conversation=entry.conversation,
                            error=exc.message)
                if not entry.delete:  # deleting the conversation ends the generation too
                    return exc.failure not in RETRYABLE
        if not entry.delete:
            return True
        try:
            existed = await self.client.delete_conversation(account, entry.conversation)
            if not existed and entry.has_uploads:
                # Uploaded into a conversation the failed completion never created: create it so
                # that deleting it takes the files too (docs/protocol.md §8.1).
                await self.client.create_conversation(account, entry.conversation, model=None)
                await self.client.delete_conversation(account, entry.conversation)
                log.debug("uploads_deleted", session=session_print, conversation=entry.conversation)
        except UpstreamError as exc:
            log.warning("delete_failed", session=session_print, conversation=entry.conversation,
                        attempt=entry.attempts + 1, error=exc.message)
            return exc.failure not in RETRYABLE
        self.deleted += 1
        log.debug("conversation_deleted", session=session_print, conversation=entry.conversation)
        return True

    def _retry_later(self, entry: Cleanup) -> None:
        entry.attempts += 1
        delay = min(self.retry_delay * 2 ** min(entry.attempts - 1, 30), MAX_BACKOFF_SECONDS)
        if self.pool.clock() + delay > entry.expires_at:
            log.error("cleanup_abandoned", conversation=entry.conversation, attempts=entry.attempts,
                      reason="retry window over")
        else:
            if len(self._queue) >= self.queue_max:
                oldest = next(iter(self._queue.values()))
                del self._queue[oldest.conversation]
                log.error("cleanup_abandoned", conversation=oldest.conversation, attempts=oldest.attempts,
                          reason="retry queue full")
            entry.due = asyncio.get_running_loop().time() + delay
            self._queue[entry.conversation] = entry
            self._wake.set()
        self._changed()

    def _changed(self) -> None:
        if self.pool.state is not None:
            self.pool.state.changed()


def _finite(value: object) -> TypeGuard[float]:
    """A finite int or float (not a bool): what the state file's times must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
