"""Client stop sequences, applied to streamed text (claude.ai has no ``stop`` parameter)."""

from __future__ import annotations

#: Longest stop string a client may send, in characters (both dialects). Real stop strings are a
#: few characters (``"\n\nHuman:"``); the cap keeps request validation simple to reason about.
MAX_STOP_LENGTH = 1000


class StopCutter:
    """Finds the first stop string in text that arrives in deltas.

    ``feed`` returns the text that is safe to emit now and, once a stop string matched, that string:
    the reply ends there (the stop string itself is not emitted, nor anything after it). Text that
    could be the beginning of a stop string is held back until the next delta decides; ``flush``
    returns it when the reply ends without a match.

    "First" means the stop string that is complete first in the stream (as a server stops
    generating the moment it has produced one); of several completed by the same character, the
    longest. The result is therefore the same however the text is split into deltas.

    Each stop string is followed with a Knuth-Morris-Pratt automaton whose state is how much of it
    the text currently ends with: memory is linear in the stop lengths, time linear in the text
    (``str.find`` skips ahead while no stop string is under way), and the text held back is the
    longest such partial match, never more than the longest stop string.
    """

    __slots__ = ("_borders", "_held", "_states", "_stops", "matched")

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in dict.fromkeys(stops) if s]
        self._borders = [_borders(s) for s in self._stops]
        #: Per stop string: how many of its first characters the text so far ends with.
        self._states = [0] * len(self._stops)
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> tuple[str, str | None]:
        if self.matched is not None:
            return "", None
        if not self._stops:
            return text, None
        end, match = len(text) + 1, None  # earliest end of a match in text (exclusive), and its stop
        states = []
        for stop, borders, state in zip(self._stops, self._borders, self._states, strict=True):
            at, state = _advance(stop, borders, state, text, min(end, len(text)))
            states.append(state)
            if at != -1 and (at < end or (at == end and match is not None and len(stop) > len(match))):
                end, match = at, stop
        buf = self._held + text
        if match is not None:
            self._held = ""
            self.matched = match
            return buf[: len(buf) - len(text) + end - len(match)], match
        self._states = states
        keep = max(states)
        self._held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], None

    def flush(self) -> str:
        held, self._held = self._held, ""
        self._states = [0] * len(self._stops)
        return held


def _borders(stop: str) -> list[int]:
    """KMP failure function: ``borders[i]`` is the longest proper prefix of ``stop[: i + 1]`` that
    is also a suffix of it."""
    borders = [0] * len(stop)
    k = 0
    for i in range(1, len(stop)):
        while k and stop[i] != stop[k]:
            k = borders[k - 1]
        if stop[i] == stop[k]:
            k += 1
        borders[i] = k
    return borders


def _advance(stop: str, borders: list[int], state: int, text: str, limit: int) -> tuple[int, int]:
    """Run ``stop``'s automaton from ``state`` over ``text[:limit]``.

    Returns ``(end, state)``: ``end`` is the index just after the first complete match (-1 if
    none), ``state`` the automaton state after the text.
    """
    first, size, i = stop[0], len(stop), 0
    while i < limit:
        if state == 0:
            i = text.find(first, i, limit)  # nothing under way: skip to the next possible start
            if i == -1:
                return -1, 0
            state = 1
        else:
            char = text[i]
            while state and stop[state] != char:
                state = borders[state - 1]
            if stop[state] == char:
                state += 1
        i += 1
        if state == size:
            return i, state
    return -1, state
