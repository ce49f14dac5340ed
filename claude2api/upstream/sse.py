"""Incremental Server-Sent Events parser for claude.ai's completion stream.

claude.ai frames are standard SSE, but arrive with LF or CRLF line ends (docs/protocol.md §5.1), with
lines split anywhere across TCP reads (inside a multi-byte UTF-8 character too) and with lines far
longer than 64 KiB. The parser therefore works on bytes, keeps the unfinished tail between reads,
and only decodes complete lines.
"""

from __future__ import annotations

import re

_LINE_END = re.compile(rb"\r\n|\r|\n")
#: The ``event`` of a comment line when comments are surfaced (no real event name starts with ":").
COMMENT = ":"


class SSEParser:
    """Feed raw bytes; get back complete ``(event, data)`` pairs in order.

    ``event`` is the ``event:`` field or ``None``; ``data`` is the ``data:`` lines joined by
    ``\\n`` (as bytes, ready for ``json.loads``). Unknown fields are ignored, and so are comments
    unless ``comments`` is set: then each comment line comes out at once as ``(COMMENT, text)``
    (claude.ai's ``: ping`` keep-alives tell that a paused turn is waiting, docs/protocol.md §5.1).
    """

    __slots__ = ("_comments", "_data", "_event", "_tail")

    def __init__(self, *, comments: bool = False) -> None:
        self._comments = comments
        self._tail = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buf = self._tail + chunk if self._tail else chunk
        frames: list[tuple[str | None, bytes]] = []
        if b"\r" in buf:
            pos = 0
            for match in _LINE_END.finditer(buf):
                if match.group() == b"\r" and match.end() == len(buf):
                    break  # a lone CR at the end may be the first half of a CRLF still in transit
                self._line(buf[pos : match.start()], frames)
                pos = match.end()
            self._tail = buf[pos:]
            return frames
        # LF-only input, the usual case: the rules of _line, inlined (this runs once per frame of
        # every reply, and the inlined loop is about 4x faster; comments fall out as name b"").
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        event, data = self._event, self._data
        for line in lines:
            if not line:
                if data:
                    frames.append((event, b"\n".join(data)))
                    data = []
                event = None
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value[1:] if value[:1] == b" " else value)
            elif name == b"event":
                event = (value[1:] if value[:1] == b" " else value).decode("utf-8", "replace")
            elif not name and self._comments:
                frames.append((COMMENT, value))
        self._event, self._data = event, data
        return frames

    def close(self) -> list[tuple[str | None, bytes]]:
        """Flush at end of stream: a final frame without its blank line still counts."""
        frames: list[tuple[str | None, bytes]] = []
        if self._tail.rstrip(b"\r"):
            self._line(self._tail.rstrip(b"\r"), frames)
        self._tail = b""
        self._line(b"", frames)
        return frames

    def _line(self, line: bytes, frames: list[tuple[str | None, bytes]]) -> None:
        if not line:
            if self._data:
                frames.append((self._event, b"\n".join(self._data)))
            self._event = None
            self._data = []
            return
        if line[0] == 0x3A:  # ":" comment
            if self._comments:
                frames.append((COMMENT, line[1:]))
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
