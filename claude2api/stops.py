"""Client stop sequences, applied to streamed text (claude.ai has no ``stop`` parameter)."""

from __future__ import annotations


class StopCutter:
    """Finds the first stop string in text that arrives in deltas.

    ``feed`` returns the text that is safe to emit now and, once a stop string matched, that string:
    the reply ends there (the stop string itself is not emitted, nor anything after it). Text that
    could be the beginning of a stop string is held back until the next delta decides; ``flush``
    returns it when the reply ends without a match.
    """

    __slots__ = ("_held", "_longest", "_prefixes", "_stops", "matched")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in dict.fromkeys(stops) if s]
        #: Every proper prefix of every stop string: the suffixes worth holding back.
        self._prefixes = {s[:i] for s in self._stops for i in range(1, len(s))}
        self._longest = max((len(p) for p in self._prefixes), default=0)
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> tuple[str, str | None]:
        if self.matched is not None:
            return "", None
        if not self._stops:
            return text, None
        buf = self._held + text
        match_at, match = len(buf), None
        for stop in self._stops:
            at = buf.find(stop, 0, match_at + len(stop) - 1)  # only matches starting before the best
            if at != -1 and at < match_at:
                match_at, match = at, stop
        if match is not None:
            self._held = ""
            self.matched = match
            return buf[:match_at], match
        keep = self._held_suffix(buf)
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], None

    def _held_suffix(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that a stop string starts with."""
        for k in range(min(len(buf), self._longest), 0, -1):
            if buf[-k:] in self._prefixes:
                return k
        return 0

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
