"""claude.ai's completion stream, frame by frame, into neutral events (and its ``message_limit`` frames)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.limits import parse_message_limit
from claude2api.core.types import (
    Citation,
    Event,
    SearchCall,
    SearchResult,
    SearchResults,
    Stop,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from claude2api.upstream.classify import classify_stream_error
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
            return self._block_start(index, block_type, block)
        if kind == "content_block_stop":
            call = self.calls.get(frame.get("index", -1))
            if call is None:
                return self._block_stop(frame.get("index", -1))
            self.paused = True
            return [ToolCallEnd(call)]
        if kind == "message_delta":
            delta = frame.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_sequence = delta.get("stop_sequence") or self.stop_sequence
            return []
        if kind == "message_limit":
            limit = parse_message_limit(frame.get("message_limit"))
            return [limit] if limit is not None else []
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

    def _block_start(self, index: int, block_type: str, block: dict[str, Any]) -> list[Event]:
        """A block that is no client tool call starts (claude.ai's own tools are dropped here)."""
        return []

    def _block_stop(self, index: Any) -> list[Event]:
        """A block that is no client tool call ends."""
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


class SearchStreamTranslator(StreamTranslator):
    """:class:`StreamTranslator` plus claude.ai's web search (``docs/protocol.md`` §7.2), for completions
    that carry the ``web_search_v0`` tool; plain replies keep the lean base class.

    The search's ``tool_use`` block becomes :class:`SearchCall` once its query has streamed, its
    ``tool_result`` (one delta holding the whole ``knowledge`` list as a JSON string)
    :class:`SearchResults`, and each ``citation_start_delta`` … ``citation_end_delta`` span of text a
    :class:`Citation` right after the span. Offsets count the answer text as claude.ai sent it.
    Other built-in tools (web_fetch, widgets) stay dropped.
    """

    __slots__ = ("_citing", "_pieces", "_position", "_result_ids", "_search_ids")

    def __init__(self, clock: Callable[[], float], client_tools: frozenset[str] = frozenset()) -> None:
        super().__init__(clock, client_tools)
        #: Upstream block index -> call id, for the search's tool_use and tool_result blocks.
        self._search_ids: dict[int, str] = {}
        self._result_ids: dict[int, str] = {}
        #: JSON pieces of those blocks, by index.
        self._pieces: dict[int, list[str]] = {}
        #: Open citations: uuid -> (citation object, start offset, text pieces since).
        self._citing: dict[str, tuple[dict[str, Any], int, list[str]]] = {}
        self._position = 0

    def _block_start(self, index: int, block_type: str, block: dict[str, Any]) -> list[Event]:
        if block.get("name") != "web_search" or block_type not in ("tool_use", "tool_result"):
            return []
        call_id = block.get("id") if block_type == "tool_use" else block.get("tool_use_id")
        ids = self._search_ids if block_type == "tool_use" else self._result_ids
        ids[index] = call_id if isinstance(call_id, str) else f"srvtoolu_{index}"
        self._pieces[index] = []
        return []

    def _block_stop(self, index: Any) -> list[Event]:
        pieces = self._pieces.pop(index, None)
        if pieces is None:
            return []
        value = _loads("".join(pieces))
        if index in self._search_ids:
            query = value.get("query") if isinstance(value, dict) else None
            return [SearchCall(self._search_ids.pop(index), query if isinstance(query, str) else "")]
        return [SearchResults(self._result_ids.pop(index), _results(value))]

    def _delta(self, frame: dict[str, Any]) -> list[Event]:
        events = super()._delta(frame)
        if events:
            for event in events:
                if type(event) is TextDelta:
                    self._position += len(event.text)
                    for _, _, pieces in self._citing.values():
                        pieces.append(event.text)
            return events
        delta = frame.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "input_json_delta":
            json_pieces = self._pieces.get(frame.get("index", -1))
            if json_pieces is not None and isinstance(delta.get("partial_json"), str):
                json_pieces.append(delta["partial_json"])
        elif dtype == "citation_start_delta":
            citation = delta.get("citation")
            if isinstance(citation, dict) and isinstance(citation.get("url"), str):
                self._citing[str(citation.get("uuid") or citation["url"])] = (citation, self._position, [])
        elif dtype == "citation_end_delta":
            opened = self._citing.pop(str(delta.get("citation_uuid")), None)
            if opened is not None:
                citation, start, cited = opened
                title = citation.get("title")
                return [
                    Citation(
                        url=citation["url"],
                        title=title if isinstance(title, str) else "",
                        cited_text="".join(cited),
                        start=start,
                        end=self._position,
                        id=str(citation.get("uuid") or ""),
                    )
                ]
        return []


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _results(value: Any) -> list[SearchResult]:
    """claude.ai's ``knowledge`` items as search results (items without a URL are left out)."""
    results = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        title = item.get("title")
        meta = item.get("prompt_context_metadata")
        age = meta.get("age") if isinstance(meta, dict) else None
        results.append(SearchResult(item["url"], title if isinstance(title, str) else "", age if isinstance(age, str) else None))
    return results

