"""What both dialects do to the reply text: stop sequences, the ``max_tokens`` soft cap, counting."""

from __future__ import annotations

from claude2api.core.stops import StopCutter
from claude2api.core.tokens import TokenCounter
from claude2api.core.types import Event, Stop, TextDelta, ThinkingDelta


class ReplyCutter:
    """The reply as the client asked for it: stop sequences and the ``max_tokens`` soft cap.

    Both apply to answer text only (never to thinking, whose length claude.ai decides). Stop
    reasons use the neutral (Anthropic) vocabulary of :class:`~claude2api.core.types.Stop`;
    ``stop_reason`` is set once the reply is over, after which every event is ignored. Tokens of
    both kinds are counted as they pass.
    """

    __slots__ = ("_cutter", "_max_tokens", "answer", "stop_reason", "stop_sequence", "thinking")

    def __init__(self, stops: list[str], max_tokens: int | None) -> None:
        self._cutter = StopCutter(stops)
        self._max_tokens = max_tokens
        self.answer = TokenCounter()
        self.thinking = TokenCounter()
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None

    def feed(self, event: Event) -> tuple[str, str]:
        """The (thinking, answer) text to emit for ``event``; at most one of them is non-empty."""
        if self.stop_reason is not None:
            return "", ""
        if isinstance(event, TextDelta):
            text, matched = self._cutter.feed(event.text)
            text = self._cap(text)
            if matched is not None:
                self._stop("stop_sequence", matched)
            return "", text
        if isinstance(event, ThinkingDelta):
            self.thinking.add(event.text)
            return event.text, ""
        if isinstance(event, Stop):
            return "", self.end(event.reason, event.sequence)
        return "", ""  # Limit: quota bookkeeping, nothing for the client

    def end(self, reason: str = "end_turn", sequence: str | None = None) -> str:
        """Finish the reply (if not already finished); returns the held-back answer text."""
        text = self._cap(self._cutter.flush())
        self._stop(reason, sequence)
        return text

    def _stop(self, reason: str, sequence: str | None) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_sequence = reason, sequence

    def _cap(self, text: str) -> str:
        if not text:
            return text
        if self._max_tokens is None:
            self.answer.add(text)
            return text
        kept = self.answer.add_within(text, self._max_tokens)
        if len(kept) < len(text):
            self._stop("max_tokens", None)
        return kept
