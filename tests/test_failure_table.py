"""The one failure table: every dialect words an upstream failure the same way, early or late."""

from __future__ import annotations

import pytest

from claude2api.core.failures import (
    CLIENT_ERRORS,
    APIError,
    Failure,
    Refusal,
    UpstreamError,
    upstream_api_error,
)
from claude2api.core.types import ChatRequest, Message, TextPart
from claude2api.dialects.anthropic import ANTHROPIC, AnthropicOptions
from claude2api.dialects.base import ReplySpec
from claude2api.dialects.openai import OPENAI, OpenAIOptions
from claude2api.upstream.classify import classify_stream_error


def _spec(options: object) -> ReplySpec:
    request = ChatRequest("m", None, [Message("user", [TextPart("hi")])], stream=True)
    return ReplySpec(request, options, 1, "reasoning_content")


def test_anthropic_504_is_timeout_error() -> None:
    error = CLIENT_ERRORS[Refusal.DEADLINE].error("too slow")
    assert ANTHROPIC.error_body(error, "req_1") == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "too slow"},
        "request_id": "req_1",
    }
    assert OPENAI.error_body(error, None)["error"]["code"] == "request_timeout"


@pytest.mark.parametrize(
    ("failure", "openai_type", "anthropic_type"),
    [
        (Failure.OVERLOADED, "overloaded_error", "overloaded_error"),
        (Failure.RATE_LIMITED, "rate_limit_error", "rate_limit_error"),
        (Failure.TRANSIENT, "server_error", "api_error"),
    ],
)
def test_late_error_frames_are_typed_by_the_table(failure: Failure, openai_type: str, anthropic_type: str) -> None:
    error = upstream_api_error(UpstreamError(failure, "boom"))
    openai_frame = OPENAI.error_frame(OPENAI.stream(_spec(OpenAIOptions())), error).decode()
    anthropic_frame = ANTHROPIC.error_frame(ANTHROPIC.stream(_spec(AnthropicOptions())), error).decode()
    assert f'"type":"{openai_type}"' in openai_frame
    assert f'"type":"{anthropic_type}"' in anthropic_frame


def test_overloaded_is_decided_by_the_classifier_not_the_message() -> None:
    error = classify_stream_error({"type": "overloaded_error", "message": "busy"}, 0.0)
    assert error.failure is Failure.OVERLOADED
    assert upstream_api_error(error).status == 529
    assert classify_stream_error({"type": "api_error", "message": "overloaded"}, 0.0).failure is Failure.TRANSIENT


def test_every_failure_and_refusal_has_a_client_error() -> None:
    assert set(CLIENT_ERRORS) == set(Failure) | set(Refusal)
    assert all(isinstance(kind.error("x"), APIError) for kind in CLIENT_ERRORS.values())
