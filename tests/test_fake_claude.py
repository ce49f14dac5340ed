"""The fake claude.ai server, exercised over real sockets with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from claude2api.testing import Account, Call, FakeClaude, Reply
from claude2api.testing.fake_claude import fixture_bytes

NOW = 1_700_000_000.0
KOREAN = "사용자가 요합니다. 코드 분석하며 잠재적 문제점 식별하기"
Event = tuple[str, dict[str, Any]]
CONV = "945e2e0b-622f-4375-81de-25795391c5c7"  # the uuid of the 2025-07-30 create-conversation capture
CONVS = "/api/organizations/{org}/chat_conversations"
COMPLETION = f"{CONVS}/{CONV}/completion"
STOP = f"{CONVS}/{CONV}/stop_response"


class SSESplitter:
    """Minimal incremental SSE splitter: accepts LF, CRLF and CR framing, decodes whole frames only."""

    _BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events = []
        while match := self._BOUNDARY.search(self._buffer):
            block, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            events.append(self._parse(block.decode("utf-8")))
        return events

    @staticmethod
    def _parse(block: str) -> Event:
        name, data = "message", ""
        for line in re.split(r"\r\n|\n|\r", block):
            field, _, value = line.partition(":")
            if field == "event":
                name = value.strip()
            elif field == "data":
                data += value.removeprefix(" ")
        return name, json.loads(data)


@dataclass
class Client:
    http: aiohttp.ClientSession
    fake: FakeClaude
    account: Account

    def url(self, path: str) -> str:
        return self.fake.base_url + path.format(org=self.account.org_id)

    async def call(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"Cookie": f"sessionKey={self.account.session_key}", **kwargs.pop("headers", {})}
        return await self.http.request(
            method, self.url(path), headers=headers, allow_redirects=False, **kwargs
        )

    async def stream(self, conv: str, body: dict[str, Any]) -> tuple[list[bytes], list[Event]]:
        """POST a completion; return the raw reads and the parsed events."""
        resp = await self.call("POST", f"{CONVS}/{conv}/completion", json=body)
        assert resp.status == 200, await resp.text()
        assert resp.headers["content-type"].startswith("text/event-stream")
        splitter, chunks, events = SSESplitter(), [], []
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
            events += splitter.feed(chunk)
        return chunks, events


def completion_body(prompt: str = "Hello there", *, create: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": prompt,
        "rendering_mode": "messages",
        "timezone": "UTC",
        "locale": "en-US",
        "attachments": [],
        "files": [],
        "sync_sources": [],
        **extra,
    }
    if create:
        body["create_conversation_params"] = {
            "name": "",
            "model": "claude-sonnet-4-6",
            "include_conversation_preferences": True,
            "paprika_mode": None,
            "is_temporary": True,
        }
    return body


def text_of(events: list[Event], delta_type: str = "text_delta", key: str = "text") -> str:
    return "".join(
        data["delta"][key]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == delta_type
    )


def names(events: list[Event]) -> list[str]:
    return [name for name, _ in events]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaude]:
    async with FakeClaude(clock=lambda: NOW) as server:
        yield server


@pytest.fixture
def client(http: aiohttp.ClientSession, fake: FakeClaude) -> Client:
    return Client(http, fake, fake.add_account())


# --------------------------------------------------------------------------- accounts and orgs


def test_generated_session_key_has_the_real_format(fake: FakeClaude) -> None:
    key = fake.add_account().session_key
    assert re.fullmatch(r"sk-ant-sid01-[0-9A-Za-z_-]{86,120}-[0-9A-Za-z_-]{6}AA", key)
    with pytest.raises(ValueError):
        fake.add_account(key)
    with pytest.raises(ValueError):
        fake.add_account(behaviour="sleepy")


@pytest.mark.parametrize(("plan", "capabilities"), [("pro", ["chat", "claude_pro"]), ("free", ["chat"])])
async def test_organizations_default_org(
    http: aiohttp.ClientSession, fake: FakeClaude, plan: str, capabilities: list[str]
) -> None:
    client = Client(http, fake, fake.add_account(plan=plan))
    resp = await client.call("GET", "/api/organizations")
    orgs = await resp.json()
    assert resp.status == 200
    assert [set(org) for org in orgs] == [set(json.loads(fixture_bytes("organizations.response.json"))[0])]
    assert orgs[0]["uuid"] == client.account.org_id
    assert orgs[0]["capabilities"] == capabilities
    assert orgs[0]["rate_limit_tier"] == "default_claude_ai"


async def test_organizations_custom_orgs_pick_the_chat_org(
    http: aiohttp.ClientSession, fake: FakeClaude
) -> None:
    account = fake.add_account(orgs=[{"capabilities": ["api"], "rate_limit_tier": "default_api"}, {}])
    orgs = await (await Client(http, fake, account).call("GET", "/api/organizations")).json()
    assert [org["capabilities"] for org in orgs] == [["api"], ["chat", "claude_pro"]]
    assert account.org_id == orgs[1]["uuid"]


async def test_usage(client: Client) -> None:
    client.account.utilization = 0.42
    body = await (await client.call("GET", "/api/organizations/{org}/usage")).json()
    assert body["five_hour"]["utilization"] == 42
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00\.000Z", body["five_hour"]["resets_at"])
    assert body["seven_day"] == {"utilization": 42}


# --------------------------------------------------------------------------- conversations and completions


async def test_completion_creates_the_conversation_from_params(client: Client, fake: FakeClaude) -> None:
    ids = {"human_message_uuid": "h-1", "assistant_message_uuid": "a-1"}
    body = completion_body("Please summarise the following text for me, thanks", turn_message_uuids=ids)
    _, events = await client.stream(CONV, body)

    assert names(events) == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 12,
        "content_block_stop",
        "message_delta",
        "message_limit",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    message = events[0][1]["message"]
    assert message["id"].startswith("chatcompl_") and message["model"] == ""
    assert (message["parent_uuid"], message["uuid"]) == ("h-1", "a-1")
    assert text_of(events) == "Hello from fake claude.ai. You said: Please summarise the following text for "
    assert events[-3][1]["delta"]["stop_reason"] == "end_turn"
    windows = events[-2][1]["message_limit"]["windows"]
    assert {name: w["utilization"] for name, w in windows.items()} == {"5h": 0.05, "7d": 0.05}
    assert all(isinstance(w["resets_at"], int) for w in windows.values())

    conv = fake.conversations[CONV]
    assert (conv.org_id, conv.session_key) == (client.account.org_id, client.account.session_key)
    assert conv.is_temporary is True
    assert conv.model == "claude-sonnet-4-6" and conv.settings["paprika_mode"] is None
    assert conv.messages == [body]


async def test_completion_needs_an_existing_conversation(http: aiohttp.ClientSession) -> None:
    async with FakeClaude(protocol="2025") as fake:
        client = Client(http, fake, fake.add_account())
        for body in (completion_body(create=False), completion_body()):  # 2025 ignores create params
            resp = await client.call("POST", COMPLETION, json=body)
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "not_found_error"
        assert fake.conversations == {}


@pytest.mark.parametrize("body", [{"rendering_mode": "messages"}, {"prompt": "hi"}, {"prompt": 1}, None])
async def test_completion_validates_the_body(client: Client, body: Any) -> None:
    resp = await client.call("POST", COMPLETION, json=body)
    assert resp.status == 400


async def test_create_update_complete_delete(client: Client, fake: FakeClaude) -> None:
    create = json.loads(fixture_bytes("create-conversation-2025-07-30.request.json"))
    resp = await client.call("POST", CONVS, json=create)
    created = await resp.json()
    assert resp.status == 201
    fixture = json.loads(fixture_bytes("create-conversation-2025-07-30.response.json"))
    assert set(created) == set(fixture) and set(created["settings"]) == set(fixture["settings"])
    assert created["uuid"] == CONV and created["settings"]["paprika_mode"] is None
    assert (await client.call("POST", CONVS, json=create)).status == 409

    paprika = json.loads(fixture_bytes("conversation-settings-paprika.request.json"))
    resp = await client.call("PUT", f"{CONVS}/{CONV}", json=paprika)
    assert resp.status == 202
    assert fake.conversations[CONV].settings["paprika_mode"] == "extended"

    _, events = await client.stream(CONV, completion_body(create=False))
    assert events[-1][0] == "message_stop"

    assert (await client.call("DELETE", f"{CONVS}/{CONV}")).status == 204
    assert CONV not in fake.conversations
    assert (await client.call("DELETE", f"{CONVS}/{CONV}")).status == 404


@pytest.mark.parametrize(
    ("protocol", "plan", "switch", "expected"),
    [
        ("both", "pro", None, False),
        ("both", "pro", "paprika", True),
        ("both", "pro", "thinking_mode", True),
        ("both", "free", "paprika", False),
        ("2025", "pro", "thinking_mode", False),
        ("2026", "pro", "paprika", False),
        ("2026", "pro", "thinking_mode", True),
    ],
)
async def test_thinking_block_only_when_requested(
    http: aiohttp.ClientSession, protocol: str, plan: str, switch: str | None, expected: bool
) -> None:
    async with FakeClaude(protocol=protocol) as fake:
        client = Client(http, fake, fake.add_account(plan=plan))
        fake.reply("The answer.", thinking="Let me think about this.")
        await client.call("POST", CONVS, json={"uuid": CONV})
        if switch == "paprika":
            await client.call("PUT", f"{CONVS}/{CONV}", json={"settings": {"paprika_mode": "extended"}})
        extra = {"thinking_mode": "extended"} if switch == "thinking_mode" else {}
        _, events = await client.stream(CONV, completion_body(create=False, **extra))

    starts = [data for name, data in events if name == "content_block_start"]
    assert text_of(events) == "The answer."
    if not expected:
        assert [s["content_block"]["type"] for s in starts] == ["text"]
        assert text_of(events, "thinking_delta", "thinking") == ""
        return
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "thinking"), (1, "text")]
    assert starts[0]["content_block"]["summaries"] == [] and starts[0]["content_block"]["cut_off"] is False
    assert text_of(events, "thinking_delta", "thinking") == "Let me think about this."
    delta_types = {d["delta"]["type"] for n, d in events if n == "content_block_delta"}
    assert "thinking_summary_delta" in delta_types


async def test_2025_protocol_frames(http: aiohttp.ClientSession) -> None:
    async with FakeClaude(protocol="2025") as fake:
        client = Client(http, fake, fake.add_account())
        await client.call("POST", CONVS, json={"uuid": CONV})
        _, events = await client.stream(CONV, completion_body(create=False))
    assert "trace_id" not in events[0][1]["message"]
    assert "windows" not in events[-2][1]["message_limit"]


async def test_reply_script_and_factory(client: Client, fake: FakeClaude) -> None:
    fake.reply(deltas=["a", "b", "c"], stop_reason="stop_sequence")
    _, events = await client.stream(CONV, completion_body())
    assert text_of(events) == "abc"
    assert events[-3][1]["delta"]["stop_reason"] == "stop_sequence"

    seen: list[Call] = []

    def factory(call: Call) -> Reply:
        seen.append(call)
        return Reply(f"#{len(seen)}")

    fake.reply_factory = factory
    _, events = await client.stream(CONV, completion_body(create=False))
    assert text_of(events) == "#1"
    assert seen[0].json["prompt"] == "Hello there"


async def test_noise_blocks(client: Client, fake: FakeClaude) -> None:
    fake.framing.noise = True
    fake.reply("plain text")
    _, events = await client.stream(CONV, completion_body())
    blocks = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    deltas = {d["delta"]["type"] for n, d in events if n == "content_block_delta"}
    assert blocks == ["tool_use", "tool_result", "text"]
    assert {"input_json_delta", "tool_use_block_update_delta", "citation_start_delta"} <= deltas
    assert text_of(events) == "plain text"


async def test_legacy_completion_stream(client: Client, fake: FakeClaude) -> None:
    fake.reply("old style")
    resp = await client.call("POST", COMPLETION, json=completion_body(rendering_mode="raw"))
    raw = await resp.read()
    assert b"event:" not in raw
    chunks = SSESplitter().feed(raw)
    assert "".join(data["completion"] for _, data in chunks) == "old style"
    assert [data["stop_reason"] for _, data in chunks][-2:] == [None, "end_turn"]


# --------------------------------------------------------------------------- framing


async def test_padding_and_lf_framing(client: Client) -> None:
    chunks, _ = await client.stream(CONV, completion_body())
    data_lines = [line for line in b"".join(chunks).split(b"\n") if line.startswith(b"data:")]
    assert b"\r" not in b"".join(chunks)
    assert all(re.search(rb"[^ ] +\}$", line) for line in data_lines)


async def test_no_padding_and_crlf_framing(client: Client, fake: FakeClaude) -> None:
    fake.framing.padding, fake.framing.crlf = False, True
    chunks, events = await client.stream(CONV, completion_body())
    raw = b"".join(chunks)
    assert raw.count(b"\n") == raw.count(b"\r\n") and raw.endswith(b"\r\n\r\n")
    assert raw.count(b"\r\n\r\n") == len(events)
    assert not re.search(rb" \}\r\n", raw)


@pytest.mark.parametrize(("split", "crlf"), [("bytes", True), ("random", False)])
async def test_split_writes_reassemble_to_the_same_events(
    client: Client, fake: FakeClaude, split: str, crlf: bool
) -> None:
    fake.reply(KOREAN, thinking=KOREAN)
    body = completion_body(thinking_mode="extended")
    fake.framing.crlf = crlf
    _, whole = await client.stream(CONV, body)

    fake.framing.split = split  # type: ignore[assignment]
    chunks, pieces = await client.stream(CONV, completion_body(create=False, thinking_mode="extended"))

    def comparable(events: list[Event]) -> list[Any]:
        return [(name, data.get("index"), data.get("delta")) for name, data in events]

    assert comparable(pieces) == comparable(whole)
    assert text_of(pieces) == KOREAN
    assert len(chunks) > len(pieces)  # frames arrive across many reads
    undecodable = 0
    for chunk in chunks:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable > 0  # some reads end or start inside a multi-byte character


# --------------------------------------------------------------------------- behaviours


@pytest.mark.parametrize(
    ("behaviour", "status", "fixture", "content_type"),
    [
        ("dead", 403, "error-403-account-session-invalid.json", "application/json"),
        ("dead_401", 401, "error-401-authentication-error.json", "application/json"),
        ("cloudflare", 403, "error-403-cloudflare-challenge.html", "text/html"),
        ("unable_to_serve", 403, "error-403-unable-to-serve.json", "application/json"),
    ],
)
@pytest.mark.parametrize("path", ["/api/organizations", COMPLETION])
async def test_account_wide_behaviours(
    client: Client, behaviour: str, status: int, fixture: str, content_type: str, path: str
) -> None:
    client.account.behaviour = behaviour
    method = "GET" if path == "/api/organizations" else "POST"
    resp = await client.call(method, path, json=completion_body())
    assert resp.status == status
    assert resp.headers["content-type"] == content_type
    assert await resp.read() == fixture_bytes(fixture)
    if behaviour == "cloudflare":
        assert resp.headers["cf-mitigated"] == "challenge"


async def test_cloudflare_302(client: Client, http: aiohttp.ClientSession) -> None:
    client.account.behaviour = "cloudflare_302"
    resp = await client.call("GET", "/api/organizations")
    assert resp.status == 302
    assert await resp.read() == fixture_bytes("error-302-cloudflare.html")
    assert "/cdn-cgi/challenge-platform/" in resp.headers["location"]

    cookie = {"Cookie": f"sessionKey={client.account.session_key}"}
    followed = await http.get(client.url("/api/organizations"), headers=cookie)
    assert followed.status == 403 and followed.headers["cf-mitigated"] == "challenge"
    assert await followed.read() == fixture_bytes("error-403-cloudflare-challenge.html")


@pytest.mark.parametrize("cookie", [None, "sessionKey=sk-ant-sid01-unknown"])
async def test_missing_or_unknown_cookie(
    http: aiohttp.ClientSession, fake: FakeClaude, cookie: str | None
) -> None:
    fake.add_account()
    resp = await http.get(f"{fake.base_url}/api/organizations", headers={"Cookie": cookie} if cookie else {})
    assert resp.status == 403
    assert await resp.read() == fixture_bytes("error-403-account-session-invalid.json")


async def test_foreign_org_is_forbidden(client: Client, fake: FakeClaude) -> None:
    other = fake.add_account()
    resp = await client.call("GET", f"/api/organizations/{other.org_id}/usage")
    assert resp.status == 403
    assert (await resp.json())["error"]["type"] == "permission_error"


async def test_org_disabled(client: Client, fake: FakeClaude) -> None:
    client.account.behaviour = "org_disabled"
    expected = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "This organization has been disabled."},
    }
    create = await client.call("POST", CONVS, json={"uuid": CONV})
    completion = await client.call("POST", COMPLETION, json=completion_body())
    for resp in (create, completion):
        assert resp.status == 400 and await resp.json() == expected
    assert (await client.call("GET", "/api/organizations")).status == 200
    assert fake.conversations == {}


async def test_rate_limited_body_matches_the_capture(client: Client) -> None:
    client.account.behaviour = "rate_limited"
    resp = await client.call("POST", COMPLETION, json=completion_body())
    reset = int(NOW + 3600)
    assert resp.status == 429
    assert await resp.read() == fixture_bytes("error-429-exceeded-limit-extension.json").replace(
        b"1755183600", str(reset).encode()
    )
    assert resp.headers["anthropic-ratelimit-unified-reset"] == str(reset)
    assert (await client.call("GET", "/api/organizations")).status == 200

    client.account.reset_at = NOW + 60.5
    resp = await client.call("POST", COMPLETION, json=completion_body())
    assert json.loads((await resp.json())["error"]["message"])["resetsAt"] == int(NOW + 60)


@pytest.mark.parametrize(
    ("behaviour", "has_header"), [("rate_limited_no_reset", False), ("rate_limited_header_only", True)]
)
async def test_rate_limited_without_json_message(client: Client, behaviour: str, has_header: bool) -> None:
    client.account.behaviour = behaviour
    resp = await client.call("POST", COMPLETION, json=completion_body())
    error = (await resp.json())["error"]
    assert resp.status == 429 and error["type"] == "rate_limit_error"
    with pytest.raises(ValueError):
        json.loads(error["message"])
    assert ("anthropic-ratelimit-unified-reset" in resp.headers) is has_header


async def test_denied_model(http: aiohttp.ClientSession, fake: FakeClaude) -> None:
    client = Client(http, fake, fake.add_account(denied_models={"claude-opus-4-6"}))
    create = await client.call("POST", CONVS, json={"uuid": CONV, "model": "claude-opus-4-6"})
    completion = await client.call("POST", COMPLETION, json=completion_body(model="claude-opus-4-6"))
    for resp in (create, completion):
        assert resp.status == 403
        assert await resp.read() == fixture_bytes("error-403-model-not-allowed.json")
    _, events = await client.stream(CONV, completion_body(model="claude-sonnet-4-6"))
    assert events[-1][0] == "message_stop"


async def test_server_error(client: Client) -> None:
    client.account.behaviour = "server_error"
    resp = await client.call("POST", COMPLETION, json=completion_body())
    assert resp.status == 500 and (await resp.json())["type"] == "error"


async def test_overloaded_in_stream(client: Client, fake: FakeClaude) -> None:
    client.account.behaviour = "overloaded"
    _, events = await client.stream(CONV, completion_body())
    (expected,) = SSESplitter().feed(fixture_bytes("stream-error-overloaded.sse"))
    assert events == [events[0], expected] and events[0][0] == "message_start"


async def test_error_after_some_deltas(client: Client, fake: FakeClaude) -> None:
    fake.reply(deltas=["one ", "two ", "three"], error_after=2)
    _, events = await client.stream(CONV, completion_body())
    assert text_of(events) == "one two "
    assert names(events)[-1] == "error" and "message_stop" not in names(events)


async def test_exceeded_in_stream(client: Client) -> None:
    client.account.behaviour, client.account.reset_at = "exceeded_in_stream", NOW + 100
    _, events = await client.stream(CONV, completion_body())
    assert text_of(events).startswith("Hello from fake claude.ai.")
    assert names(events)[-2:] == ["message_limit", "message_stop"]
    assert events[-2][1]["message_limit"] == {"type": "exceeded_limit", "resetsAt": int(NOW + 100)}


# --------------------------------------------------------------------------- stop, uploads, recording


async def test_stop_response_ends_a_live_stream(client: Client, fake: FakeClaude) -> None:
    fake.reply(deltas=["tick "] * 100, delay=0.05)
    resp = await client.call("POST", COMPLETION, json=completion_body())
    splitter, events = SSESplitter(), []
    started = time.monotonic()
    async for chunk in resp.content.iter_any():
        events += splitter.feed(chunk)
        if text_of(events) and not fake.stopped:
            stop = await client.call("POST", STOP)
            assert stop.status == 200 and await stop.read() == b""
    assert time.monotonic() - started < 2
    assert fake.stopped == [CONV]
    assert names(events)[-4:] == ["content_block_stop", "message_delta", "message_limit", "message_stop"]
    assert events[-3][1]["delta"]["stop_reason"] == "user_canceled"
    assert text_of(events).count("tick") < 100

    idle = await client.call("POST", STOP)
    assert idle.status == 200 and fake.stopped == [CONV]


async def test_close_ends_live_streams(client: Client, fake: FakeClaude) -> None:
    fake.reply(deltas=["tick "] * 10, delay=30)
    resp = await client.call("POST", COMPLETION, json=completion_body())
    await resp.content.readuntil(b"\n\n")  # message_start
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 2
    events = SSESplitter().feed(await resp.read())
    assert names(events)[-1] == "message_stop"


async def test_client_disconnect_mid_stream(client: Client, fake: FakeClaude) -> None:
    fake.reply(deltas=["tick "] * 100, delay=0.01)
    resp = await client.call("POST", COMPLETION, json=completion_body())
    await resp.content.readuntil(b"\n\n")
    resp.close()
    await asyncio.sleep(0.1)
    assert (await client.call("POST", STOP)).status == 200
    assert fake.stopped == []  # the stream had already ended
    fake.reply("again")
    _, events = await client.stream(CONV, completion_body(create=False))
    assert text_of(events) == "again"


def _form(field: str, data: bytes, filename: str, content_type: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(field, data, filename=filename, content_type=content_type)
    return form


@pytest.mark.parametrize(
    ("path", "filename", "content_type", "kind"),
    [
        ("/api/{org}/upload", "image.png", "image/png", "image"),
        (f"/api/organizations/{{org}}/conversations/{CONV}/wiggle/upload-file", "a.md", "text/plain", "blob"),
    ],
)
async def test_uploads(
    client: Client, fake: FakeClaude, path: str, filename: str, content_type: str, kind: str
) -> None:
    resp = await client.call("POST", path, data=_form("file", b"\x89PNG data", filename, content_type))
    body = await resp.json()
    assert resp.status == 200
    assert set(body) == set(json.loads(fixture_bytes("wiggle-upload-file-2026-05-27.response.json")))
    assert (body["file_name"], body["file_kind"], body["size_bytes"]) == (filename, kind, 9)
    info = fake.uploads[body["file_uuid"]]
    assert (info["filename"], info["content_type"]) == (filename, content_type)
    assert info["bytes"] == b"\x89PNG data"
    assert fake.calls[-1].file is info


@pytest.mark.parametrize("kwargs", [{"data": _form("other", b"x", "a.txt", "text/plain")}, {"json": {}}])
async def test_upload_without_a_file_part(client: Client, fake: FakeClaude, kwargs: dict[str, Any]) -> None:
    resp = await client.call("POST", "/api/{org}/upload", **kwargs)
    assert resp.status == 400
    assert fake.uploads == {}


async def test_calls_are_recorded(client: Client, fake: FakeClaude) -> None:
    settings = json.loads(fixture_bytes("account-settings-claude2api.request.json"))
    await client.call(
        "PUT",
        "/api/account?statsig_hashing_algorithm=djb2",
        json=settings,
        headers={"Origin": "https://claude.ai", "Anthropic-Client-Platform": "web_claude_ai"},
    )
    await client.call("GET", "/api/organizations")

    (account_call,) = fake.calls_to("/api/account")
    assert account_call.method == "PUT" and account_call.query == {"statsig_hashing_algorithm": "djb2"}
    assert account_call.json == settings and account_call.session_key == client.account.session_key
    assert account_call.headers["origin"] == "https://claude.ai"
    assert account_call.headers["anthropic-client-platform"] == "web_claude_ai"
    assert account_call.time == NOW
    assert [c.path for c in fake.calls_to(re.compile(r"^/api/(account|organizations)$"))] == [
        "/api/account",
        "/api/organizations",
    ]


# --------------------------------------------------------------------------- plugin and CLI


async def test_pytest_plugin_fixture(fake_claude: FakeClaude, http: aiohttp.ClientSession) -> None:
    (account,) = fake_claude.accounts
    assert account.behaviour == "ok"
    resp = await Client(http, fake_claude, account).call("GET", "/api/organizations")
    assert resp.status == 200


async def test_cli_serves_until_sigterm(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "claude2api.testing.fake_claude",
        "--port",
        "0",
        "--accounts",
        "2",
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert len(info["session_keys"]) == 2
        resp = await http.get(
            f"{info['base_url']}/api/organizations",
            headers={"Cookie": f"sessionKey={info['session_keys'][1]}"},
        )
        assert (await resp.json())[0]["uuid"] == info["org_ids"][1]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
