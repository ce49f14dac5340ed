"""The one parser for reset times claude.ai sends, wherever they come from (pure: no I/O).

claude.ai writes the same instant several ways: epoch seconds (``resetsAt``, ``windows.*.resets_at``,
the ``anthropic-ratelimit-unified-reset`` header), ISO 8601 with or without a fraction, offset or
``Z`` (``/usage``, ``resolved.limit.resets_at``, ``active_flags[].expires_at``), and a delay in
seconds or an HTTP date (``Retry-After``). Clients have also seen milliseconds. Whatever arrives is
taken at most as a hint: a time outside *now … now + 8 days* (past, absurd, ``inf``, ``NaN``, year
50000, a wrong unit) is refused, and the caller falls back to its default cool-down. A stored or
logged reset time is therefore always one ``datetime`` can format.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

#: The longest a reset may lie ahead: claude.ai's longest window is seven days.
MAX_RESET_AHEAD = 8 * 24 * 3600.0
#: Above this an epoch number is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLISECONDS_FROM = 1e11
#: ISO 8601 times are short; anything longer is not one (and is not worth parsing).
_MAX_TEXT = 64


def parse_instant(value: Any) -> float | None:
    """Epoch seconds from any form claude.ai uses, or ``None``; never raises, never non-finite."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > _MAX_TEXT:
            return None
        number = _float(text)
        return _epoch(number) if number is not None else _iso(text)
    if isinstance(value, int) and abs(value) >= 2**63:
        return None  # float() of a huge int overflows; no such instant anyway
    if isinstance(value, (int, float)):
        return _epoch(float(value))
    return None


def reset_time(value: Any, now: float) -> float | None:
    """A reset time within *now … now + 8 days*, else ``None`` (use the default cool-down)."""
    return clamp_reset(parse_instant(value), now)


def retry_after_time(value: Any, now: float) -> float | None:
    """``Retry-After`` (seconds to wait, or an HTTP date) as a reset time within the window."""
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        return None
    delay = _float(value.strip())
    if delay is not None:
        return clamp_reset(now + delay, now)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return clamp_reset(_timestamp(when), now)


def clamp_reset(instant: float | None, now: float) -> float | None:
    if instant is None or not math.isfinite(instant) or not now < instant <= now + MAX_RESET_AHEAD:
        return None
    return instant


def _float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _epoch(number: float) -> float | None:
    if not math.isfinite(number):
        return None
    return number / 1000 if abs(number) >= _MILLISECONDS_FROM else number


def _iso(text: str) -> float | None:
    # fromisoformat takes at most microseconds and (before 3.11) no "Z".
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("z", "Z"))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _timestamp(when)


def _timestamp(when: datetime) -> float | None:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # claude.ai's times are UTC; a bare one is read as such
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        return None
