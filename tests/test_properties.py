"""Property-based tests (hypothesis) for the pure parts: the SSE parser, the stream translator,
the stop cutter and prompt building. Derandomized, so a run is reproducible."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from claude2api.config import Settings
from claude2api.core.catalog import ModelCatalog
from claude2api.core.failures import APIError
from claude2api.core.stops import StopCutter
from claude2api.core.types import ChatContext, Stop, TextDelta, ThinkingDelta
from claude2api.dialects.anthropic import parse_messages_request
from claude2api.dialects.openai import parse_chat_request
from claude2api.pipeline.history_file import history_to_file_factory
from claude2api.pipeline.transcript import transcript_factory
from claude2api.upstream.protocol import attachment_wire
from claude2api.upstream.sse import SSEParser
from claude2api.upstream.translator import StreamTranslator

settings.register_profile(
    "claude2api", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("claude2api")

# -- SSE parser ----------------------------------------------------------------------------------

#: Field values: any text without line ends, as UTF-8 (multi-byte characters get split too).
line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=30)
sse_event = st.tuples(
    st.none() | line_text.filter(bool),  # event name
    st.lists(line_text, min_size=1, max_size=4),  # data lines
    st.booleans(),  # a comment line in the middle
)


def encode_sse(events: list[tuple[str | None, list[str], bool]], newline: bytes) -> bytes:
    out = b""
    for name, datas, comment in events:
        if name is not None:
            out += b"event: " + name.encode() + newline
        for i, data in enumerate(datas):
            if comment and i == 1:
                out += b": keep-alive" + newline
            out += b"data: " + data.encode() + newline
        out += newline
    return out


def expected_frames(events: list[tuple[str | None, list[str], bool]]) -> list[tuple[str | None, bytes]]:
    return [(name, "\n".join(datas).encode()) for name, datas, _ in events]


def feed_in_pieces(raw: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    parser = SSEParser()
    frames: list[tuple[str | None, bytes]] = []
    bounds = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
    for start, end in itertools.pairwise(bounds):
        frames += parser.feed(raw[start:end])
    return frames + parser.close()


@given(
    events=st.lists(sse_event, max_size=8),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_sse_any_split_any_line_end_gives_the_same_events(events, newline, cuts) -> None:
    raw = encode_sse(events, newline)
    assert feed_in_pieces(raw, cuts) == expected_frames(events)


@given(events=st.lists(sse_event, min_size=1, max_size=5), newline=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_sse_byte_by_byte_equals_whole(events, newline) -> None:
    raw = encode_sse(events, newline)
    assert feed_in_pieces(raw, list(range(len(raw)))) == feed_in_pieces(raw, [])


@given(events=st.lists(sse_event, min_size=1, max_size=5), newline=st.sampled_from([b"\n", b"\r\n"]))
def test_sse_last_frame_without_blank_line_still_counts(events, newline) -> None:
    raw = encode_sse(events, newline)[: -len(newline)]
    assert feed_in_pieces(raw, []) == expected_frames(events)


# -- stream translator ---------------------------------------------------------------------------

block = st.tuples(
    st.sampled_from(["text", "thinking", "tool_use", "tool_result"]),
    st.lists(st.text(max_size=12), max_size=5),
)


def claude_frames(blocks: list[tuple[str, list[str]]], stop_reason: str) -> list[dict[str, Any]]:
    """A claude.ai web stream with these content blocks, as the fake and the captures shape it."""
    frames: list[dict[str, Any]] = [{"type": "message_start", "message": {"id": "chatcompl_x", "content": []}}]
    for index, (kind, pieces) in enumerate(blocks):
        frames.append({"type": "content_block_start", "index": index, "content_block": {"type": kind}})
        for piece in pieces:
            if kind == "text":
                delta = {"type": "text_delta", "text": piece}
            elif kind == "thinking":
                delta = {"type": "thinking_delta", "thinking": piece}
            else:
                delta = {"type": "input_json_delta", "partial_json": json.dumps(piece)}
            frames.append({"type": "content_block_delta", "index": index, "delta": delta})
        frames.append({"type": "content_block_stop", "index": index})
    frames.append({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}})
    frames.append({"type": "message_limit", "message_limit": {"type": "within_limit"}})
    frames.append({"type": "message_stop"})
    return frames


def translate(raw: bytes, cuts: list[int]) -> list[Any]:
    parser, stream = SSEParser(), StreamTranslator(clock=lambda: 1_700_000_000.0)
    events: list[Any] = []
    bounds = [0, *sorted(c % (len(raw) + 1) for c in cuts), len(raw)]
    for start, end in itertools.pairwise(bounds):
        for name, data in parser.feed(raw[start:end]):
            events += stream.handle(name, data)
    for name, data in parser.close():
        events += stream.handle(name, data)
    if not stream.done:
        events.append(stream.end_of_stream())
    return events


@given(
    blocks=st.lists(block, max_size=5),
    stop_reason=st.sampled_from(["end_turn", "max_tokens", "stop_sequence"]),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=15),
)
def test_translator_keeps_text_and_thinking_drops_tools_whatever_the_split(blocks, stop_reason, crlf, cuts) -> None:
    nl = "\r\n" if crlf else "\n"
    raw = "".join(
        f"event: {frame['type']}{nl}data: {json.dumps(frame, ensure_ascii=False)}{nl}{nl}"
        for frame in claude_frames(blocks, stop_reason)
    ).encode()
    events = translate(raw, cuts)
    assert events == translate(raw, [])
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    assert text == "".join("".join(p) for kind, p in blocks if kind == "text")
    assert thinking == "".join("".join(p) for kind, p in blocks if kind == "thinking")
    assert isinstance(events[-1], Stop) and events[-1].reason == stop_reason
    assert not any(isinstance(e, TextDelta | ThinkingDelta) and not e.text for e in events)


@given(junk=st.binary(max_size=200), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_translator_ignores_undecodable_frames(junk, cuts) -> None:
    """Truncated or garbled JSON in a frame is skipped, never raised; the stream then ends as a failure
    or a stop, never with an unexpected exception type."""
    raw = b"data: " + junk.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n"
    try:
        events = translate(raw, cuts)
    except Exception as exc:
        assert type(exc).__name__ == "UpstreamError", repr(exc)
    else:
        assert all(isinstance(e, TextDelta | ThinkingDelta | Stop) or hasattr(e, "resets_at") for e in events)


# -- stop cutter ---------------------------------------------------------------------------------

small_text = st.text(alphabet="abc", max_size=12)


def reference_cut(text: str, stops: list[str]) -> tuple[str, set[str]]:
    """The whole text cut where generation stops, and the stop string that stopped it.

    A server stops generating as soon as it has produced a stop string, so the winner is the one
    whose first occurrence *ends* first; of several ending at the same character, the longest.
    (Not the one that starts first: with stops ``["cab", "a"]`` the text ``"ca"`` already holds
    ``"a"``, and the ``"b"`` completing ``"cab"`` is never generated.)
    """
    hits = [(text.find(s) + len(s), -len(s), s) for s in stops if s and s in text]
    if not hits:
        return text, set()
    end, _, stop = min(hits)
    return text[: end - len(stop)], {stop}


@settings(max_examples=500)
@given(
    stops=st.lists(st.text(alphabet="abc", min_size=0, max_size=4), max_size=4),
    deltas=st.lists(small_text, max_size=8),
)
# A stop that starts earlier but completes later than another: the cut must not depend on the split.
@example(stops=["cab", "a"], deltas=["ca", "b"])
def test_stop_cutter_agrees_with_the_naive_reference(stops, deltas) -> None:
    cutter = StopCutter(stops)
    emitted, matched, fed = "", None, 0
    longest = max((len(s) for s in stops), default=0)
    for delta in deltas:
        out, match = cutter.feed(delta)
        emitted += out
        fed += len(delta)
        if match is not None:
            matched = match
            break
        # Bounded memory: what is held back is shorter than the longest stop string.
        assert fed - len(emitted) < max(longest, 1)
    if matched is None:
        emitted += cutter.flush()
    expected_text, expected_stops = reference_cut("".join(deltas), stops)
    assert emitted == expected_text
    if expected_stops:
        assert matched in expected_stops
    else:
        assert matched is None


def test_stop_cutter_memory_is_linear_in_the_stop_length() -> None:
    """H2: one long stop string must not cost memory quadratic in its length."""
    stop = "x" * 5000
    tracemalloc.start()
    try:
        cutter = StopCutter([stop])
        for _ in range(20):
            cutter.feed("x" * 200 + "y")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * len(stop), f"{peak} bytes for one {len(stop)}-character stop string"


# -- prompt building -----------------------------------------------------------------------------

#: Any JSON string, lone surrogates included ("\ud800" is valid JSON).
any_text = st.text(max_size=30) | st.sampled_from(["\ud800", "a\udfffb", "<think>", "<think>x</think>"])
openai_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": any_text}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.just({"url": "data:image/png;base64,iVBORw0KGgo="})}
    ),
)
openai_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]),
        "content": any_text | st.lists(openai_part, max_size=3),
    }
)
anthropic_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": any_text}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "name": any_text, "input": st.dictionaries(any_text, any_text)}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": any_text}),
)
anthropic_block = st.recursive(
    anthropic_leaf,
    lambda inner: st.fixed_dictionaries(
        {"type": st.just("tool_result"), "content": st.lists(inner, max_size=3), "is_error": st.booleans()}
    ),
    max_leaves=8,
)
anthropic_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": any_text | st.lists(anthropic_block, max_size=3)}
)


def run_prompt_middlewares(request: Any, *, limit: int) -> ChatContext:
    """The built-in prompt middlewares as the chain runs them, ending in a handler that encodes the
    turn the way the upstream client sends it."""
    config = SimpleNamespace(no_role_prefix=False, prompt_disable_artifacts=False, max_chat_history_length=limit)
    ctx = ChatContext(request=request, request_id="req_test", dialect="openai", settings=Settings(), internal=None)

    def upstream(ctx: ChatContext) -> Any:
        json.dumps({"prompt": ctx.turn.prompt, "attachments": [attachment_wire(a) for a in ctx.turn.attachments]})
        return None

    history = history_to_file_factory(config)
    transcript_factory(config)(ctx, lambda c: history(c, upstream))
    return ctx


@settings(max_examples=150)
@given(
    messages=st.lists(openai_message, min_size=1, max_size=4),
    limit=st.sampled_from([0, 50, 10_000]),
)
def test_prompt_building_never_raises_on_a_valid_openai_request(messages, limit) -> None:
    try:
        request, _ = parse_chat_request({"model": "", "messages": messages}, ModelCatalog([]))
    except APIError as exc:
        assert 400 <= exc.status < 500
        return
    try:
        run_prompt_middlewares(request, limit=limit)
    except APIError as exc:
        assert 400 <= exc.status < 500


@settings(max_examples=150)
@given(
    messages=st.lists(anthropic_message, min_size=1, max_size=4),
    system=st.none() | any_text,
    limit=st.sampled_from([0, 50, 10_000]),
)
def test_prompt_building_never_raises_on_a_valid_anthropic_request(messages, system, limit) -> None:
    body: dict[str, Any] = {"model": "", "messages": messages, "max_tokens": 100}
    if system is not None:
        body["system"] = system
    try:
        request, _ = parse_messages_request(body, ModelCatalog([]))
    except APIError as exc:
        assert 400 <= exc.status < 500
        return
    try:
        run_prompt_middlewares(request, limit=limit)
    except APIError as exc:
        assert 400 <= exc.status < 500


@pytest.mark.parametrize("depth", [50, 400, 5000])
def test_deeply_nested_tool_results_are_a_4xx_or_fine(depth: int) -> None:
    """M6: nesting is a client mistake at worst, never a RecursionError."""
    block: dict[str, Any] = {"type": "text", "text": "leaf"}
    for _ in range(depth):
        block = {"type": "tool_result", "content": [block]}
    body = {"messages": [{"role": "user", "content": [block]}], "max_tokens": 10}
    try:
        request, _ = parse_messages_request(body, ModelCatalog([]))
    except APIError as exc:
        assert 400 <= exc.status < 500
        return
    run_prompt_middlewares(request, limit=10_000)


def test_property_helpers_run_the_chain_for_real() -> None:
    """The helper above must actually reach the upstream handler (else the properties prove nothing)."""
    request, _ = parse_chat_request({"messages": [{"role": "user", "content": "hi"}]}, ModelCatalog([]))
    ctx = run_prompt_middlewares(request, limit=0)
    assert ctx.turn.attachments and "Human: hi" in ctx.turn.attachments[0].content
