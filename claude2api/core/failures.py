"""Errors the daemon reports to clients, and the upstream failure taxonomy.

:class:`APIError` is what a client sees: a status plus a message, rendered in the client's dialect
(OpenAI ``{"error":{...}}`` or Anthropic ``{"type":"error",...}``) by the server's error middleware.
:class:`UpstreamError` is what the claude.ai client raises: a classified failure
(``claude-web-protocol.md`` section 7) that the session pool acts on.
"""

from __future__ import annotations

import enum
from typing import Any

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


#: Longest client-supplied value quoted in an error message (see :func:`clip`).
MAX_QUOTED_CHARS = 100
#: Longest error message: whatever a message quotes, an error body stays small.
MAX_MESSAGE_CHARS = 1000


def clip(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``value`` cut to at most ``limit`` characters (ending in "…" if cut), to quote client input."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class APIError(Exception):
    """A client-facing error with an HTTP status, decided before any response byte is sent.

    The message is cut to :data:`MAX_MESSAGE_CHARS`: messages quote client input (a model name, a
    path), and a 1 MB model name must not make a 1 MB error body. Quote values with :func:`clip`
    so the end of the message survives.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        etype = self.type or _OPENAI_TYPES.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )
        return {"error": {"message": self.message, "type": etype, "param": self.param, "code": self.code}}

    def anthropic_body(self, request_id: str | None = None) -> dict[str, Any]:
        if self.status in _ANTHROPIC_TYPES:
            etype = _ANTHROPIC_TYPES[self.status]
        elif self.status >= 500:
            etype = "api_error"
        else:
            etype = "invalid_request_error"
        body: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": self.message}}
        if request_id:
            body["request_id"] = request_id
        return body


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


class Failure(enum.Enum):
    """Classes of upstream failure, each with its meaning for the account that hit it."""

    DEAD = "dead"  # 401 / account_session_invalid: the cookie is expired or revoked
    DISABLED = "disabled"  # organization disabled / banned: permanent
    RATE_LIMITED = "rate_limited"  # quota exhausted until a reset time
    REQUEST_RATE = "request_rate"  # 429 without reset: a short burst limit
    BLOCKED = "blocked"  # Cloudflare challenge / 302 / region: the egress IP, not the account
    MODEL_NOT_ALLOWED = "model_not_allowed"  # plan lacks the model: exclude for that model only
    TRANSIENT = "transient"  # overloaded, 5xx, timeouts, resets
    UNKNOWN = "unknown"  # other 4xx: ambiguous


class UpstreamError(Exception):
    """A classified claude.ai failure. ``message`` is safe to show and log (no secrets, no HTML)."""

    def __init__(
        self,
        failure: Failure,
        message: str,
        *,
        status: int | None = None,
        reset_at: float | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.status = status
        self.reset_at = reset_at

    def __repr__(self) -> str:
        return f"UpstreamError({self.failure.value}, {self.message!r}, status={self.status})"
