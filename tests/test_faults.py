"""Fault injection: claude.ai's transport breaking in every documented way, in both dialects,
streamed and not. Each fault maps to the documented client error (README, "Errors"): 502 in the
client's dialect before the first byte, the dialect's error frame after it; and nothing is left
behind in the account once cleanup has run.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.fake_claude import Faults

from support import MODEL

#: Small timeouts so every case is quick: a stall longer than this is a failure.
ENV = {"UPSTREAM_READ_TIMEOUT": "1", "RETRY_COUNT": "2", "KEEPALIVE_INTERVAL": "0"}
DELTAS = ["Hello ", "from ", "the ", "fake "]
#: message_start, content_block_start and two text deltas: the client has seen text by then.
AFTER_TEXT = 4


@dataclass(frozen=True)
class Case:
    faults: dict[str, Any]
    #: "before": 502 JSON whatever the mode; "after": streams get 200 + error frame, others 502;
    #: "ok": the reply arrives whole.
    strikes: str


CASES = {
    "reset_before_headers": Case({"reset_before_headers": True}, "before"),
    "stall_before_first_byte": Case({"stall_before_headers": 3.0}, "before"),
    "html_502_page": Case({"html_error": 502}, "before"),
    "html_503_page": Case({"html_error": 503}, "before"),
    "html_page_with_200": Case({"html_error": 200}, "before"),
    "truncated_json_before_text": Case({"truncate_after_frames": 1}, "before"),
    "reset_mid_stream": Case({"reset_after_frames": AFTER_TEXT}, "after"),
    "stall_mid_stream": Case({"stall_after_frames": AFTER_TEXT, "stall_seconds": 3.0}, "after"),
    "truncated_json_mid_stream": Case({"truncate_after_frames": AFTER_TEXT}, "after"),
    "one_megabyte_sse_line": Case({"long_line_bytes": 1_000_000}, "ok"),
}


def request_for(dialect: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if dialect == "openai":
        return "/v1/chat/completions", {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    body = {"model": MODEL, "max_tokens": 1_000_000, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return "/v1/messages", body


async def post(url: str, key: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(url, json=body, headers=headers) as resp:
            return resp.status, resp.content_type, await resp.read()


def assert_json_error(dialect: str, status: int, content_type: str, raw: bytes, expected_status: int) -> None:
    assert (status, content_type) == (expected_status, "application/json"), raw[:300]
    body = json.loads(raw)
    if dialect == "openai":
        assert set(body) == {"error"} and body["error"]["type"] == "server_error", body
        assert body["error"]["code"] == "upstream_error", body
    else:
        assert body["type"] == "error" and body["error"]["type"] == "api_error", body


def assert_error_frame_after_text(dialect: str, raw: bytes) -> None:
    text = raw.decode()
    assert "Hello" in text, "the client should have seen text before the fault"
    payloads = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    if dialect == "openai":
        errors = [json.loads(p) for p in payloads if p != "[DONE]" and "error" in json.loads(p)]
        assert len(errors) == 1 and errors[0]["error"]["message"], text[-500:]
        assert payloads[-1] == "[DONE]"
        assert not any('"finish_reason":"stop"' in p for p in payloads)
    else:
        assert "event: error" in text, text[-500:]
        error = json.loads(payloads[-1])
        assert error["type"] == "error" and error["error"]["message"], error
        assert "event: message_stop" not in text


async def wait_until_clean(fake: FakeClaude, daemon: Any, timeout: float) -> None:
    """Cleanup runs in the background: wait for it, then the account must hold no conversation."""
    deadline = time.monotonic() + timeout
    while True:
        await daemon.idle()
        if not fake.conversations or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert fake.conversations == {}, f"{len(fake.conversations)} conversation(s) left in the account"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
async def test_fault_maps_to_documented_error_and_leaks_nothing(make_daemon, fake, case, dialect, stream) -> None:
    fake.add_account()
    daemon = await make_daemon(env=ENV)
    fake.reply(deltas=DELTAS)
    fake.faults = Faults(**CASES[case].faults)
    path, body = request_for(dialect, stream)

    status, content_type, raw = await post(daemon.url + path, daemon.api_key, body)

    strikes = CASES[case].strikes
    if strikes == "before" or (strikes == "after" and not stream):
        assert_json_error(dialect, status, content_type, raw, 502)
    elif strikes == "after":
        assert (status, content_type) == (200, "text/event-stream")
        assert_error_frame_after_text(dialect, raw)
    else:
        assert status == 200, raw[:300]
        assert raw.count(b"0123456789abcdef") >= 1_000_000 // 16 - 1
        assert b"fake" in raw
    assert fake.calls_to("/completion"), "the fault was never reached"
    await wait_until_clean(fake, daemon, timeout=5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("down_seconds", [1.5, 5.0])
async def test_cleanup_outlasts_claude_ai_being_down(make_daemon, fake, down_seconds) -> None:
    """M5: a client abandons its streams while claude.ai is down; once it is back, the daemon
    must still stop and delete every conversation."""
    fake.add_account()
    daemon = await make_daemon(env=ENV)
    fake.reply(deltas=["tick "] * 200, delay=0.05)
    headers = {"Authorization": f"Bearer {daemon.api_key}"}
    _, body = request_for("openai", True)
    async with aiohttp.ClientSession() as http:
        responses = [
            await http.post(daemon.url + "/v1/chat/completions", json=body, headers=headers) for _ in range(3)
        ]
        for resp in responses:
            assert resp.status == 200
            await resp.content.readuntil(b"tick")
        assert len(fake.conversations) == 3
        fake.faults = Faults(down_until=fake.clock() + down_seconds)
        for resp in responses:
            resp.close()  # the clients go away while claude.ai is down
    await asyncio.sleep(down_seconds)
    assert fake.calls_to("/stop_response") or [c for c in fake.calls if c.method == "DELETE"]
    await wait_until_clean(fake, daemon, timeout=down_seconds + 10)
