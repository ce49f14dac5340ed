"""Session state that survives a restart: a small JSON file, written atomically on change.

Sessions are stored under a hash of their key (never the key), so the file is safe to back up and
a session whose key was replaced in the configuration starts fresh. Org ids and plans are kept too,
so a restart does not repeat every organization lookup.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .logs import get_logger

log = get_logger(__name__)

VERSION = 1


def state_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def load(path: Path) -> dict[str, dict[str, Any]]:
    """Saved records by :func:`state_id`; a missing or unreadable file means no saved state."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("state_file_unreadable", path=str(path), error=str(exc))
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("sessions"), dict):
        log.warning("state_file_ignored", path=str(path), reason="unknown format")
        return {}
    return {k: v for k, v in data["sessions"].items() if isinstance(v, dict)}


def save(path: Path, records: dict[str, dict[str, Any]]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    payload = json.dumps({"version": VERSION, "sessions": records}, indent=1, sort_keys=True)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("state_file_write_failed", path=str(path), error=str(exc))
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
