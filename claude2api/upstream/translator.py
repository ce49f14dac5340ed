"""claude.ai's completion stream, frame by frame, into neutral events (and its ``message_limit`` frames)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.types import (
    Event,
    Limit,
    LimitWindow,
    Stop,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from claude2api.upstream.classify import classify_stream_error, reset_from_limit
from claude2api.upstream.resets import reset_time
from claude2api.upstream.sse import COMMENT


class StreamTranslator:
    """claude.ai's web stream -> neutral events; web-only frames and built-in tool blocks are dropped.

    ``tool_use`` blocks of the client's tools (``client_tools``: their names) become tool-call
    events. claude.ai does not end a turn at a client tool call: it holds the response open with
    comment pings, waiting for results (docs/protocol.md §6.2). Once such a block has ended
    (:attr:`paused`), the next comment ends the turn here with ``Stop("tool_use")``; so does a
    silence, which the reader times (:meth:`pause_end`).
    """

    __slots__ = ("blocks", "calls", "client_tools", "clock", "done", "paused", "stop_reason", "stop_sequence")

    def __init__(self, clock: Callable[[], float], client_tools: frozenset[str] = frozenset()) -> None:
        self.clock = clock
        self.client_tools = client_tools
        self.blocks: dict[int, str] = {}
        #: Upstream block index -> our tool-call index (0, 1, ... in the order they started).
        self.calls: dict[int, int] = {}
        self.paused = False
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.done = False

    #: ``raw_decode`` of a shared decoder: the C scanner without ``json.loads``'s per-call checks.
    _raw_decode = json.JSONDecoder().raw_decode

    def handle(self, event: str | None, data: bytes) -> list[Event]:
        if event == COMMENT:
            return [self.pause_end()] if self.paused else []
        try:
            frame = self._parse(data)
        except ValueError:
            return []
        if not isinstance(frame, dict):
            return []
        kind = frame.get("type") or event
        if kind == "content_block_delta":
            return self._delta(frame)
        if kind == "content_block_start":
            block = frame.get("content_block") or {}
            index = frame.get("index", -1)
            self.blocks[index] = block_type = block.get("type", "")
            if block_type == "tool_use" and block.get("name") in self.client_tools:
                return self._call_start(index, block)
            return []
        if kind == "content_block_stop":
            call = self.calls.get(frame.get("index", -1))
            if call is None:
                return []
            self.paused = True
            return [ToolCallEnd(call)]
        if kind == "message_delta":
            delta = frame.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_sequence = delta.get("stop_sequence") or self.stop_sequence
            return []
        if kind == "message_limit":
            return [parse_limit(frame.get("message_limit"), self.clock())]
        if kind == "message_stop":
            self.done = True
            if self.calls:
                return [Stop("tool_use")]
            return [Stop(self.stop_reason or "end_turn", self.stop_sequence)]
        if kind == "error":
            raise classify_stream_error(frame.get("error"), self.clock())
        if "completion" in frame:  # legacy shape (docs/protocol.md §5.7)
            return self._legacy(frame)
        return []

    def _parse(self, data: bytes) -> Any:
        """``json.loads(data)``, a third faster on the usual frame (UTF-8, nothing around the value)."""
        try:
            text = data.decode()
            frame, end = self._raw_decode(text)
            if end == len(text):
                return frame
        except ValueError:
            pass
        return json.loads(data)  # whitespace around the value, another encoding, or an error to raise

    def _delta(self, frame: dict[str, Any]) -> list[Event]:
        delta = frame.get("delta") or {}
        dtype = delta.get("type")
        # A delta whose block start we never saw (the captures skip some) is taken at its word.
        block = self.blocks.get(frame.get("index", -1))
        if dtype == "text_delta" and block in (None, "text"):
            text = delta.get("text") or ""
            return [TextDelta(text)] if text else []
        if dtype == "thinking_delta" and block in (None, "thinking"):
            text = delta.get("thinking") or ""
            return [ThinkingDelta(text)] if text else []
        if dtype == "input_json_delta":
            call = self.calls.get(frame.get("index", -1))
            piece = delta.get("partial_json")
            if call is not None and isinstance(piece, str) and piece:
                return [ToolCallDelta(call, piece)]
        return []

    def _call_start(self, index: int, block: dict[str, Any]) -> list[Event]:
        call = self.calls[index] = len(self.calls)
        self.paused = False
        call_id = block.get("id")
        return [ToolCallStart(call, call_id if isinstance(call_id, str) else f"toolu_{call}", block["name"])]

    def pause_end(self) -> Event:
        """End a turn paused at client tool calls: the model waits for results we will not send."""
        self.done = True
        return Stop("tool_use")

    def _legacy(self, frame: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        text = frame.get("completion") or ""
        if text:
            events.append(TextDelta(text))
        if frame.get("stop_reason"):
            self.done = True
            events.append(Stop("max_tokens" if frame["stop_reason"] == "max_tokens" else "end_turn"))
        return events

    def end_of_stream(self) -> Event:
        """The stream closed without ``message_stop``: fine after a stop reason or a tool call, else a failure."""
        if self.calls:
            return self.pause_end()
        if self.stop_reason:
            self.done = True
            return Stop(self.stop_reason, self.stop_sequence)
        raise UpstreamError(Failure.TRANSIENT, "claude.ai closed the stream before the reply ended")


def parse_limit(raw: Any, now: float) -> Limit:
    raw = raw if isinstance(raw, dict) else {}
    windows = []
    raw_windows = raw.get("windows")
    for name, window in (raw_windows.items() if isinstance(raw_windows, dict) else ()):
        if isinstance(window, dict):
            windows.append(
                LimitWindow(
                    name=str(name),
                    status=window.get("status") if isinstance(window.get("status"), str) else None,
                    utilization=as_float(window.get("utilization")),
                    resets_at=reset_time(window.get("resets_at"), now),
                )
            )
    return Limit(type=str(raw.get("type") or "within_limit"), resets_at=reset_from_limit(raw, now), windows=windows)


def as_float(value: Any) -> float | None:
    """A finite JSON number as a float, else ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
