"""State that survives a restart: a small JSON file, written atomically, off the event loop.

Sessions are stored under a hash of their key (never the key), so the file is safe to back up and
a session whose key was replaced in the configuration starts fresh. Org ids and plans are kept too,
so a restart does not repeat every organization lookup, and so are the conversation clean-ups still
to retry (by the same hash), so a restart continues them.

The file is read as untrusted input: anything of the wrong shape is dropped with a warning (the
owners of each part, :mod:`claude2api.accounts.pool` and :mod:`claude2api.upstream.janitor`, check the values),
never a crash. Writes are debounced: a burst of changes costs one write, done in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from claude2api.logs import get_logger

log = get_logger(__name__)

VERSION = 1
#: Changes within this many seconds share one write.
WRITE_DEBOUNCE_SECONDS = 0.5
#: A state file is a few KB; a bigger one is not ours.
MAX_FILE_BYTES = 16 * 1024 * 1024
_STATE_ID = re.compile(r"[0-9a-f]{32}")


def state_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def is_state_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and _STATE_ID.fullmatch(value) is not None


@dataclass
class SavedState:
    """What a state file held: session records by :func:`state_id`, and pending clean-ups."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cleanup: list[dict[str, Any]] = field(default_factory=list)


def load(path: Path) -> SavedState:
    """The saved state; a missing, unreadable or foreign file means none. Never raises."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            log.warning("state_file_ignored", path=str(path), reason="too large")
            return SavedState()
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return SavedState()
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("state_file_unreadable", path=str(path), error=type(exc).__name__)
        return SavedState()
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("sessions"), dict):
        log.warning("state_file_ignored", path=str(path), reason="unknown format")
        return SavedState()
    saved = SavedState()
    for sid, record in data["sessions"].items():
        if is_state_id(sid) and isinstance(record, dict):
            saved.sessions[sid] = record
        else:
            log.warning("state_file_entry_dropped", path=str(path), part="sessions")
    cleanup = data.get("cleanup", [])
    if isinstance(cleanup, list):
        saved.cleanup = [entry for entry in cleanup if isinstance(entry, dict)]
    if not isinstance(cleanup, list) or len(saved.cleanup) != len(cleanup):
        log.warning("state_file_entry_dropped", path=str(path), part="cleanup")
    return saved


def write(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    text = json.dumps({"version": VERSION, **payload}, indent=1, sort_keys=True)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("state_file_write_failed", path=str(path), error=str(exc))
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


class StateFile:
    """The daemon's state file: each part (``sessions``, ``cleanup``) has a source that returns its
    current records; :meth:`changed` schedules a debounced write of all of them, :meth:`flush` writes now."""

    def __init__(self, path: Path, debounce: float = WRITE_DEBOUNCE_SECONDS) -> None:
        self.path = path
        self.debounce = debounce
        self.sources: dict[str, Callable[[], Any]] = {}
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def load(self) -> SavedState:
        return load(self.path)

    def changed(self) -> None:
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a command-line tool): write at once
            self._dirty = False
            write(self.path, self._payload())
            return
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = loop.create_task(self._write_soon())

    async def flush(self) -> None:
        """Write pending changes now and wait for the write (shutdown)."""
        self._wake.set()
        if self._writer is not None:
            await self._writer
        if self._dirty:
            self._dirty = False
            await asyncio.to_thread(write, self.path, self._payload())

    async def _write_soon(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.debounce)
        while self._dirty:
            self._dirty = False
            await asyncio.to_thread(write, self.path, self._payload())

    def _payload(self) -> dict[str, Any]:
        return {name: source() for name, source in self.sources.items()}
