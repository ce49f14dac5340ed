"""Hostile client input (issue 15: H1, H2, M3, M6, L7): linear scans, bounded memory, 4xx not 500.

Everything that goes through HTTP is driven over real sockets against the daemon and the fake
claude.ai; errors are checked for the client's dialect (OpenAI shape on ``/v1/chat/completions``,
Anthropic shape on ``/v1/messages``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
import tracemalloc

import aiohttp
import pytest
from aiohttp import web

from claude2api.core.failures import APIError
from claude2api.core.stops import StopCutter
from claude2api.core.tools import find_json
from claude2api.dialects.openai import error_body as openai_error_body
from claude2api.dialects.openai import strip_think_blocks
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, raw_post

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


def openai_error(status: int, raw: bytes, expected: int = 400) -> dict:
    """The OpenAI error object of a response, asserting its status and shape."""
    assert status == expected, raw[:500]
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def anthropic_error(status: int, raw: bytes, expected: int = 400) -> dict:
    """The Anthropic error object of a response, asserting its status and shape."""
    assert status == expected, raw[:500]
    body = json.loads(raw)
    assert body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    return body["error"]


def chat(messages: list[dict], **extra) -> dict:
    return {"model": MODEL, "messages": messages, **extra}


def user(content: object) -> list[dict]:
    return [{"role": "user", "content": content}]


# --- H1: the <think> stripper is linear ------------------------------------------------------

_OLD_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>\s*", re.DOTALL | re.IGNORECASE)


def test_think_stripper_agrees_with_the_regex_it_replaced() -> None:
    pieces = ["<think>", "</think>", "<thinking>", "</thinking>", "<THINK>", "</Think>", "a", " ", "\n", "<", ">"]
    rng = random.Random(15)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert strip_think_blocks(text) == _OLD_THINK_BLOCK.sub("", text), text


def test_think_stripper_is_linear_on_unclosed_tags() -> None:
    text = "<think>" * 200_000  # 1.4 MB; the old regex needed hours for this
    started = time.perf_counter()
    assert strip_think_blocks(text) == text
    assert strip_think_blocks("<thinking>x</think>" * 50_000 + "</thinking>") == ""
    assert time.perf_counter() - started < 1.0


async def test_unclosed_think_tags_do_not_stall_the_daemon(daemon: Daemon) -> None:
    """224 KB of ``<think>``: 22.7 s of a frozen event loop before the fix."""
    body = chat([{"role": "assistant", "content": "<think>" * 32_000}, *user("go on")])
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {daemon.api_key}"}) as http:

        async def ask() -> tuple[int, float]:
            started = time.perf_counter()
            async with http.post(daemon.url + CHAT, json=body) as resp:
                await resp.read()
                return resp.status, time.perf_counter() - started

        async def health() -> float:
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            async with http.get(daemon.url + "/health") as resp:
                assert resp.status == 200
            return time.perf_counter() - started

        (status, chat_seconds), health_seconds = await asyncio.gather(ask(), health())
    assert status == 200
    assert chat_seconds < 1.0
    assert health_seconds < 0.5


def test_json_extraction_is_linear_on_hostile_replies() -> None:
    """JSON mode pulls JSON out of fences and prose; a lazy fence regex was quadratic on runs of
    spaces and unclosed fences, and a deep bracket run must not hit the recursion limit."""
    assert find_json("Here:\n```json\n{\"a\": 1}\n```\nbye") == ('{"a": 1}', {"a": 1})
    assert find_json("The answer is [1, 2] as asked") == ("[1, 2]", [1, 2])
    assert find_json("no json at all") is None
    started = time.perf_counter()
    assert find_json("```" + " " * 200_000 + "x```") is None
    assert find_json("```\n" * 50_000) is None
    assert find_json("[" * 200_000) is None
    assert time.perf_counter() - started < 1.5


# --- H2: stop sequences: capped, and a matcher with linear memory -----------------------------


def test_stop_cutter_memory_is_linear_in_the_stop_length() -> None:
    tracemalloc.start()
    try:
        cutter = StopCutter(["x" * 8000 + "y"])  # the old cutter stored every prefix: ~32 MB
        out, matched = cutter.feed("x" * 20_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (out, matched) == ("x" * 12_000, None)
    assert peak < 1_000_000, peak
    assert cutter.feed("xy tail") == ("x", "x" * 8000 + "y")


def _reference_cut(text: str, stops: list[str]) -> tuple[str, str | None]:
    """What a stream cut at the first complete stop string leaves (longest stop on a tie)."""
    for end in range(1, len(text) + 1):
        ending = [s for s in stops if s and text.endswith(s, 0, end)]
        if ending:
            stop = max(ending, key=len)
            return text[: end - len(stop)], stop
    return text, None


def test_stop_cutter_gives_the_same_cut_however_the_text_is_split() -> None:
    rng = random.Random(2)
    for _ in range(3000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 14)))
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randint(0, len(text) + 1)))
        cutter, out, matched = StopCutter(stops), "", None
        for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
            emitted, hit = cutter.feed(text[start:end])
            out += emitted
            matched = matched or hit
        if matched is None:
            out += cutter.flush()
        assert (out, matched) == _reference_cut(text, stops), (stops, text, cuts)


async def test_openai_accepts_at_most_four_stops(daemon: Daemon) -> None:
    error = openai_error(*_drop_headers(await raw_post(daemon, CHAT, chat(user("hi"), stop=list("abcde")))))
    assert error["param"] == "stop" and error["type"] == "invalid_request_error"
    assert "4" in error["message"]


async def test_anthropic_caps_stop_sequences(daemon: Daemon) -> None:
    body = chat(user("hi"), max_tokens=10, stop_sequences=[f"s{i}" for i in range(17)])
    error = anthropic_error(*_drop_headers(await raw_post(daemon, MESSAGES, body)))
    assert "stop_sequences" in error["message"] and "16" in error["message"]


@pytest.mark.parametrize(("path", "field"), [(CHAT, "stop"), (MESSAGES, "stop_sequences")])
async def test_stop_strings_have_a_length_cap(daemon: Daemon, path: str, field: str) -> None:
    body = chat(user("hi"), max_tokens=10, **{field: ["x" * 1001]})
    status, _, raw = await raw_post(daemon, path, body)
    error = openai_error(status, raw) if path == CHAT else anthropic_error(status, raw)
    assert "1000" in error["message"]
    body[field] = ["x" * 1000]
    assert (await raw_post(daemon, path, body))[0] == 200


# --- M6: client mistakes are 4xx in the client's dialect, never 500 ----------------------------


def _drop_headers(result: tuple[int, object, bytes]) -> tuple[int, bytes]:
    return result[0], result[2]


def _nested(depth: int) -> object:
    value: object = "deep"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("path", [CHAT, MESSAGES, MESSAGES + "/count_tokens"])
async def test_deeply_nested_json_is_a_400(daemon: Daemon, path: str, depth: int) -> None:
    raw_body = b'{"model":"' + MODEL.encode() + b'","messages":' + b"[" * depth + b"]" * depth + b"}"
    status, _, raw = await raw_post(daemon, path, raw_body)
    error = anthropic_error(status, raw) if "messages" in path else openai_error(status, raw)
    assert "nested" in error["message"]


async def test_deep_json_under_the_parser_limit_is_a_400_too(daemon: Daemon) -> None:
    """Deep enough to pass json.loads but to break anything recursing over it later."""
    body = chat(user("hi"), response_format={"type": "json_schema", "json_schema": {"schema": _nested(900)}})
    error = openai_error(*_drop_headers(await raw_post(daemon, CHAT, body)))
    assert "nested" in error["message"]


async def test_mirror_count_tokens_rejects_deep_json(make_daemon) -> None:
    daemon = await make_daemon(env={"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"})
    raw_body = b'{"messages":' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, _, raw = await raw_post(daemon, "/mirror/v1/messages/count_tokens", raw_body)
    assert "nested" in anthropic_error(status, raw)["message"]


async def test_nested_tool_results_are_a_400(daemon: Daemon) -> None:
    content: list = [{"type": "text", "text": "leaf"}]
    for _ in range(330):
        content = [{"type": "tool_result", "tool_use_id": "t", "content": content}]
    body = chat([{"role": "user", "content": content}], max_tokens=10)
    error = anthropic_error(*_drop_headers(await raw_post(daemon, MESSAGES, body)))
    assert "nested" in error["message"]


async def test_a_few_nested_tool_results_still_work(fake: FakeClaude, daemon: Daemon) -> None:
    content: list = [{"type": "text", "text": "leaf"}]
    for _ in range(5):
        content = [{"type": "tool_result", "tool_use_id": "t", "content": content}]
    body = chat([{"role": "user", "content": content}], max_tokens=10)
    status, _, raw = await raw_post(daemon, MESSAGES, body)
    assert status == 200, raw
    assert "leaf" in fake.calls_to("/completion")[-1].json["prompt"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_lone_surrogates_are_replaced(fake: FakeClaude, make_daemon, path: str) -> None:
    """Replaced by U+FFFD (as a browser's TextEncoder does), also in history sent as context.txt."""
    daemon = await make_daemon(env={"MAX_CHAT_HISTORY_LENGTH": "10"})
    raw_body = (
        b'{"model":"' + MODEL.encode() + b'","max_tokens":20,"stop":["\\udfff"],"stop_sequences":["\\ud800"],'
        b'"messages":[{"role":"user","content":"lone \\ud800 high, lone \\udc00 low, pair \\ud83d\\ude00"}]}'
    )
    status, _, raw = await raw_post(daemon, path, raw_body)
    assert status == 200, raw
    [attachment] = fake.calls_to("/completion")[-1].json["attachments"]
    assert "lone \ufffd high, lone \ufffd low, pair \U0001f600" in attachment["extracted_content"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_lone_surrogates_in_rejected_input_give_a_clean_4xx(daemon: Daemon, path: str) -> None:
    """Errors echo client input before any replacement: the error body must still encode."""
    raw_body = b'{"model":"x\\ud800","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
    status, _, raw = await raw_post(daemon, path, raw_body)
    assert status == 404, raw
    error = json.loads(raw)["error"]
    assert error["type"] == ("not_found_error" if path == MESSAGES else "invalid_request_error")
    assert "x\ud800" in error["message"]


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_invalid_utf8_body_is_a_400(daemon: Daemon, path: str) -> None:
    raw_body = b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"\xed\xa0\x80 \xff"}]}'
    status, _, raw = await raw_post(daemon, path, raw_body)
    error = anthropic_error(status, raw) if path == MESSAGES else openai_error(status, raw)
    assert "UTF-8" in error["message"]


@pytest.mark.parametrize("media_type", ["image/png\r\nX-Injected: 1", "image/png\n", "image/p ng", "image/", "text/plain"])
async def test_bad_media_types_are_a_400_before_any_upload(fake: FakeClaude, daemon: Daemon, media_type: str) -> None:
    """Checked while parsing: before the fix a CR/LF failed mid-upload, leaving the first image behind."""
    data = base64.b64encode(PNG).decode()
    good = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    bad = {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    body = chat([{"role": "user", "content": [good, bad, {"type": "text", "text": "?"}]}], max_tokens=10)
    error = anthropic_error(*_drop_headers(await raw_post(daemon, MESSAGES, body)))
    assert "media_type" in error["message"]
    assert fake.uploads == {}
    assert not fake.calls_to("/completion")


@pytest.mark.parametrize("media_type", ["image/png\r\nX-Injected: 1", "image/p\nng", "image/p ng", "image/", "text/plain"])
async def test_bad_data_url_media_types_are_a_400_before_any_upload(
    fake: FakeClaude, daemon: Daemon, media_type: str
) -> None:
    url = "data:" + media_type + ";base64," + base64.b64encode(PNG).decode()
    body = chat(user([{"type": "image_url", "image_url": {"url": PNG_URL}}, {"type": "image_url", "image_url": {"url": url}}]))
    error = openai_error(*_drop_headers(await raw_post(daemon, CHAT, body)))
    assert error["param"] == "messages[0].content[1]"
    assert fake.uploads == {}
    assert not fake.calls_to("/completion")


# --- L7: error bodies do not echo client input at full length ----------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_error_bodies_quote_client_values_shortened(daemon: Daemon, path: str) -> None:
    huge = "m" * 1_000_000
    status, _, raw = await raw_post(daemon, path, {"model": huge, "messages": user("hi"), "max_tokens": 5})
    assert status == 404
    assert len(raw) < 2000
    message = (json.loads(raw)["error"])["message"]
    assert "mmmm" in message and "…" in message
    status, _, raw = await raw_post(daemon, path, chat([{"role": "user", "content": [{"type": huge}]}]))
    assert status == 400 and len(raw) < 2000


def test_every_api_error_message_is_bounded() -> None:
    error = APIError(400, "x" * 100_000)
    assert len(error.message) <= 1000
    assert len(openai_error_body(error)["error"]["message"]) <= 1000


# --- M3: images are capped per request and fetched concurrently -------------------------------


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_image_count_is_capped_per_request(fake: FakeClaude, make_daemon, path: str) -> None:
    daemon = await make_daemon(env={"MAX_IMAGES_PER_REQUEST": "3"})
    if path == CHAT:
        content = [{"type": "image_url", "image_url": {"url": PNG_URL}}] * 4
    else:
        source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
        content = [{"type": "image", "source": source}] * 4
    status, _, raw = await raw_post(daemon, path, chat(user(content), max_tokens=10))
    error = anthropic_error(status, raw) if path == MESSAGES else openai_error(status, raw)
    assert "MAX_IMAGES_PER_REQUEST" in error["message"] and "3" in error["message"]
    assert fake.uploads == {}
    status, _, raw = await raw_post(daemon, path, chat(user(content[:3]), max_tokens=10))
    assert status == 200, raw
    assert len(fake.calls_to("/wiggle/upload-file")) == 3


@pytest.fixture
async def image_server(aiohttp_server):
    """Loopback image host: ``/slow/N.png`` answers after a second, ``/big/N.png`` sends N bytes."""

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(body=PNG, content_type="image/png")

    async def big(request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        return web.Response(body=PNG + b"\0" * (size - len(PNG)), content_type="image/png")

    app = web.Application()
    app.router.add_get("/slow/{n}.png", slow)
    app.router.add_get("/big/{size}.png", big)
    return await aiohttp_server(app)


async def test_images_are_fetched_concurrently(fake: FakeClaude, make_daemon, image_server) -> None:
    daemon = await make_daemon(env={"IMAGE_FETCH_ALLOW_PRIVATE": "true"})
    content = [{"type": "image_url", "image_url": {"url": str(image_server.make_url(f"/slow/{i}.png"))}}
               for i in range(5)]
    started = time.perf_counter()
    status, _, raw = await raw_post(daemon, CHAT, chat(user(content)))
    assert status == 200, raw
    assert time.perf_counter() - started < 3.0  # one after the other: 5 s
    assert len(fake.calls_to("/wiggle/upload-file")) == 5


async def test_image_fetches_share_one_deadline(fake: FakeClaude, make_daemon, image_server) -> None:
    daemon = await make_daemon(env={"IMAGE_FETCH_ALLOW_PRIVATE": "true", "IMAGE_FETCH_TIMEOUT": "0.5"})
    content = [{"type": "image_url", "image_url": {"url": PNG_URL}}] + [
        {"type": "image_url", "image_url": {"url": str(image_server.make_url(f"/slow/{i}.png"))}} for i in range(4)]
    started = time.perf_counter()
    error = openai_error(*_drop_headers(await raw_post(daemon, CHAT, chat(user(content)))))
    assert time.perf_counter() - started < 1.5
    assert "timed out" in error["message"]
    assert fake.uploads == {}


@pytest.mark.parametrize("path", [CHAT, MESSAGES])
async def test_image_bytes_are_capped_per_request(fake: FakeClaude, make_daemon, image_server, path: str) -> None:
    daemon = await make_daemon(env={"IMAGE_FETCH_ALLOW_PRIVATE": "true", "MAX_IMAGE_BYTES_PER_REQUEST": "250000"})
    urls = [str(image_server.make_url(f"/big/{100_000 + i}.png")) for i in range(3)]
    if path == CHAT:
        content = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    else:
        content = [{"type": "image", "source": {"type": "url", "url": url}} for url in urls]
    status, _, raw = await raw_post(daemon, path, chat(user(content), max_tokens=10))
    error = anthropic_error(status, raw) if path == MESSAGES else openai_error(status, raw)
    assert "MAX_IMAGE_BYTES_PER_REQUEST" in error["message"]
    assert fake.uploads == {}
    assert not fake.calls_to("/completion")


async def test_inline_image_bytes_count_towards_the_cap(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"MAX_IMAGE_BYTES_PER_REQUEST": str(2 * len(PNG))})
    status, _, raw = await raw_post(daemon, CHAT, chat(user([{"type": "image_url", "image_url": {"url": PNG_URL}}] * 3)))
    assert "MAX_IMAGE_BYTES_PER_REQUEST" in openai_error(status, raw)["message"]
    assert fake.uploads == {}
