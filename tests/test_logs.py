"""Logging: one JSON shape for structlog and stdlib records, and no secret in any rendered line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from claude2api.logs import (
    configure_logging,
    fingerprint,
    get_logger,
    redact_text,
    redact_url,
    register_secret,
)

SESSION_KEY = "sk-ant-sid01-" + "Qw3rTy9_uI-oP" * 7 + "AA"
API_KEY = "c2a-logtest-apikey-3b8e1f"
PROXY_PASSWORD = "pr0xy-l0gtest-pw"
PROXY_URL = f"socks5://proxyuser:{PROXY_PASSWORD}@10.1.2.3:1080"
SECRETS = (SESSION_KEY, SESSION_KEY[13:], API_KEY, PROXY_PASSWORD)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the logging configuration is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    register_secret(API_KEY)
    register_secret(PROXY_PASSWORD)
    configure_logging("debug", "json", stream, cache_logger_on_first_use=False)
    yield stream
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_secrets_as_values(output: io.StringIO) -> None:
    get_logger("test").info(
        "values",
        session_key=SESSION_KEY,
        sessionKey=SESSION_KEY,
        authorization=f"Bearer {API_KEY}",
        api_key=API_KEY,
        proxy=PROXY_URL,
        headers={"Cookie": f"sessionKey={SESSION_KEY}", "x-api-key": API_KEY, "Accept": "text/event-stream"},
        keys=[SESSION_KEY, API_KEY],
        detail=f"configured with {API_KEY}",
        input_tokens=12,
    )
    text = output.getvalue()
    assert_no_secret(text)
    [line] = lines(output)
    assert line["session_key"] == line["api_key"] == line["authorization"] == "***"
    assert line["headers"] == {"Cookie": "***", "x-api-key": "***", "Accept": "text/event-stream"}
    assert line["proxy"] == "socks5://proxyuser:***@10.1.2.3:1080"
    assert line["keys"] == [fingerprint(SESSION_KEY), "***"]
    assert line["detail"] == "configured with ***"
    assert line["input_tokens"] == 12


def test_secrets_inside_messages(output: io.StringIO) -> None:
    log = get_logger("test")
    log.warning(f"using session {SESSION_KEY} for model x")
    log.info(f"upstream said Authorization: Bearer {SESSION_KEY}:org")
    log.info(f"proxy {PROXY_URL} failed")
    log.info(f"GET /v1/models?key={API_KEY}&x=1")
    assert_no_secret(output.getvalue())
    first = lines(output)[0]
    assert first["event"] == f"using session {fingerprint(SESSION_KEY)} for model x"


def test_secrets_in_a_traceback(output: io.StringIO) -> None:
    log = get_logger("test")
    try:
        raise RuntimeError(f"cookie sessionKey={SESSION_KEY} key {API_KEY} proxy {PROXY_URL}")
    except RuntimeError:
        log.exception("request failed")
    assert_no_secret(output.getvalue())
    [line] = lines(output)
    assert line["level"] == "error"
    assert "Traceback" in line["exception"]
    expected = "RuntimeError: cookie sessionKey=*** key *** proxy socks5://proxyuser:***@10.1.2.3:1080"
    assert expected in line["exception"]


def test_stdlib_records_share_the_pipeline(output: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        raise ConnectionResetError(f"while relaying for {SESSION_KEY} via {PROXY_URL}")
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /v1/models?api_key=%s HTTP/1.1" 200', API_KEY)
    logging.getLogger("asyncio").debug("poll took %.3f seconds", 0.5)
    assert_no_secret(output.getvalue())
    server, access, loop = lines(output)
    assert server["logger"] == "aiohttp.server"
    assert server["level"] == "error"
    assert server["event"] == "Error handling request"
    assert server["request_id"] == "req-42"
    assert "ConnectionResetError: while relaying for " + fingerprint(SESSION_KEY) in server["exception"]
    assert access["event"] == '127.0.0.1 "GET /v1/models?api_key=*** HTTP/1.1" 200'
    assert loop == {
        "event": "poll took 0.500 seconds",
        "request_id": "req-42",
        "level": "debug",
        "logger": "asyncio",
        "timestamp": loop["timestamp"],
    }


def test_json_lines_shape_and_request_id(output: io.StringIO) -> None:
    log = get_logger("claude2api.relay")
    structlog.contextvars.bind_contextvars(request_id="req-7")
    log.info("relayed", status=200, extra={"nested": [1, 2.5, None, True]})
    structlog.contextvars.clear_contextvars()
    log.info("after")
    first, second = lines(output)
    assert first["request_id"] == "req-7"
    assert first["logger"] == "claude2api.relay"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert first["extra"] == {"nested": [1, 2.5, None, True]}
    assert "request_id" not in second


def test_level_filter(output: io.StringIO) -> None:
    configure_logging("warning", "json", output, cache_logger_on_first_use=False)
    get_logger("test").info("quiet")
    logging.getLogger("aiohttp.access").info("quiet too")
    get_logger("test").warning("loud")
    assert [line["event"] for line in lines(output)] == ["loud"]


def test_console_format_is_redacted_too(output: io.StringIO) -> None:
    configure_logging("info", "console", output, cache_logger_on_first_use=False)
    get_logger("test").info(f"session {SESSION_KEY}", api_key=API_KEY, proxy=PROXY_URL)
    text = output.getvalue()
    assert_no_secret(text)
    assert fingerprint(SESSION_KEY) in text


def test_unknown_level_or_format() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("verbose", "json", io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", io.StringIO(), cache_logger_on_first_use=False)


def test_fingerprint() -> None:
    fp = fingerprint(SESSION_KEY)
    assert fp == fingerprint(SESSION_KEY)
    assert fp.startswith("sk-ant-sid01...")
    assert len(fp) == len("sk-ant-sid01...") + 8
    assert fp != fingerprint(SESSION_KEY[:-1] + "B")
    assert SESSION_KEY[13:21] not in fp
    assert fingerprint("not-a-claude-key").startswith("key...")
    assert redact_text(fp) == fp


def test_redact_text_patterns() -> None:
    """Shapes that are masked without registration."""
    assert redact_text("Authorization: bearer abc.def-123") == "Authorization: bearer ***"
    assert redact_text("http://u:p@ss@host:3128/x") == "http://u:***@host:3128/x"
    assert redact_text("Cookie: sessionKey=whatever; other=1") == "Cookie: sessionKey=***; other=1"
    assert redact_text("max_tokens=100 tokens=5") == "max_tokens=100 tokens=5"


def test_redact_url() -> None:
    assert redact_url(PROXY_URL) == "socks5://proxyuser:***@10.1.2.3:1080"
    assert redact_url("http://token@host:1") == "http://***@host:1"
    assert redact_url("http://host:1") == "http://host:1"


def test_short_values_are_not_registered(output: io.StringIO) -> None:
    register_secret("123")
    get_logger("test").info("port 8123 and 123")
    assert lines(output)[0]["event"] == "port 8123 and 123"
