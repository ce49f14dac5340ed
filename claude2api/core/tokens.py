"""Cheap token estimates for ``usage`` fields and the ``max_tokens`` soft cap.

claude.ai reports no token counts, and tiktoken would download BPE files at run time, so we blend
two rules of thumb: about four UTF-8 bytes per token (right for code and CJK-heavy text) and about
four tokens per three words (right for prose). The estimate is the larger of ``bytes/4`` and the
mean of both rules, rounded up: never 0 for non-empty text.
"""

from __future__ import annotations

from claude2api.core.types import ChatRequest, ImagePart

#: Per-message overhead (role markers, separators), as OpenAI's own accounting adds.
MESSAGE_OVERHEAD = 4
#: A flat cost per image: we cannot know its size in tokens without decoding it.
IMAGE_TOKENS = 800


def _estimate(n_bytes: int, n_words: int) -> int:
    # ceil(max(b/4, (b/4 + 4w/3) / 2)) in integers: both terms scaled by 24.
    return -(-max(6 * n_bytes, 3 * n_bytes + 16 * n_words) // 24)


def _measure(text: str) -> tuple[int, int]:
    return len(text.encode("utf-8", "surrogatepass")), len(text.split())


def estimate_tokens(text: str) -> int:
    """Estimated token count of ``text``; 0 only for the empty string."""
    return _estimate(*_measure(text)) if text else 0


class TokenCounter:
    """Running estimate over text that arrives in pieces (a word split across two pieces counts once).

    ``estimate_tokens(a + b)`` equals the count after ``add(a); add(b)``.
    """

    __slots__ = ("_bytes", "_in_word", "_words")

    def __init__(self) -> None:
        self._bytes = 0
        self._words = 0
        self._in_word = False  # whether the text so far ends inside a word

    @property
    def tokens(self) -> int:
        return _estimate(self._bytes, self._words)

    def _after(self, text: str) -> tuple[int, int]:
        n_bytes, n_words = _measure(text)
        if self._in_word and n_words and not text[0].isspace():
            n_words -= 1  # continues the previous piece's last word
        return self._bytes + n_bytes, self._words + n_words

    def _commit(self, text: str, state: tuple[int, int]) -> None:
        self._bytes, self._words = state
        if text:
            self._in_word = not text[-1].isspace()

    def add(self, text: str) -> None:
        self._commit(text, self._after(text))

    def add_within(self, text: str, limit: int) -> str:
        """Add the longest prefix of ``text`` that keeps the estimate at most ``limit``; return it."""
        state = self._after(text)
        if _estimate(*state) <= limit:
            self._commit(text, state)
            return text
        lo, hi = 0, len(text) - 1  # the estimate grows with the prefix length: bisect
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _estimate(*self._after(text[:mid])) <= limit:
                lo = mid
            else:
                hi = mid - 1
        kept = text[:lo]
        self._commit(kept, self._after(kept))
        return kept


def estimate_request_tokens(request: ChatRequest) -> int:
    """Estimated prompt size of ``request``: message text, per-message overhead, images; at least 1."""
    total = sum(estimate_tokens(text) for text in request.instructions)
    for message in request.messages:
        total += MESSAGE_OVERHEAD + estimate_tokens(message.text)
        total += IMAGE_TOKENS * sum(isinstance(part, ImagePart) for part in message.parts)
    return max(total, 1)
