"""Errors the daemon reports to clients, the upstream failure taxonomy, and the one table between them.

:class:`APIError` is what a client sees: a status, a message and (optionally) a type, code and
param; each dialect renders it in its own wire format (:mod:`claude2api.dialects`).
:class:`UpstreamError` is what the claude.ai client raises: a classified :class:`Failure`
(``docs/protocol.md`` §12) that the session pool acts on. :data:`CLIENT_ERRORS` is the one
place that decides how a failure (or the lack of any usable account) reads to a client: before
the commit point, in a late stream error frame, after failover, or when no session is left.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from claude2api.core.limits import MessageLimit

#: Longest client-supplied value quoted in an error message (see :func:`clip`).
MAX_QUOTED_CHARS = 100
#: Longest error message: whatever a message quotes, an error body stays small.
MAX_MESSAGE_CHARS = 1000


def clip(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``value`` cut to at most ``limit`` characters (ending in "…" if cut), to quote client input."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


class APIError(Exception):
    """A client-facing error: HTTP status (before the commit point) or in-band error (after it).

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


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str, suggestions: Sequence[str] = ()) -> APIError:
    """The one 404 for a model id nobody serves here, in every dialect and route; ``suggestions``
    (the catalogue's closest ids) become a "did you mean" hint."""
    hint = f" Did you mean {' or '.join(f'`{s}`' for s in suggestions)}?" if suggestions else ""
    return APIError(
        404,
        f"The model `{clip(model)}` does not exist or you do not have access to it.{hint}",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


class Failure(enum.Enum):
    """Classes of upstream failure, each with its meaning for the account that hit it."""

    DEAD = "dead"  # 401 / account_session_invalid: the cookie is expired or revoked
    DISABLED = "disabled"  # organization disabled / banned: permanent
    RATE_LIMITED = "rate_limited"  # quota exhausted until a reset time
    REQUEST_RATE = "request_rate"  # 429 without reset: a short burst limit
    BLOCKED = "blocked"  # Cloudflare challenge / 302 / region: the egress IP, not the account
    MODEL_NOT_ALLOWED = "model_not_allowed"  # plan lacks the model: exclude for that model only
    OVERLOADED = "overloaded"  # claude.ai said overloaded_error / 529: busy, try again soon
    TRANSIENT = "transient"  # 5xx, timeouts, resets
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
        limit: MessageLimit | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.status = status
        self.reset_at = reset_at
        #: A usage limit's windows (429 body): which ones are exhausted, for all models or one.
        self.limit = limit

    def __repr__(self) -> str:
        return f"UpstreamError({self.failure.value}, {self.message!r}, status={self.status})"


class Refusal(enum.Enum):
    """Why the daemon itself answers instead of claude.ai: no account could take the request, or the
    request ran out of time. Together with :class:`Failure` these are the keys of :data:`CLIENT_ERRORS`."""

    NO_SESSION_CONFIGURED = "no_session_configured"
    SESSIONS_BUSY = "sessions_busy"  # every usable session at its concurrency cap
    ALL_SESSIONS_FAILED = "all_sessions_failed"  # healthy sessions exist, none served this request
    NO_USABLE_SESSION = "no_usable_session"  # every session dead, disabled (or parked for good)
    MIRROR_KEY_REJECTED = "mirror_key_rejected"  # mirror mode: claude.ai rejected the caller's key
    SHUTTING_DOWN = "shutting_down"
    DEADLINE = "deadline"  # REQUEST_DEADLINE passed before any content


@dataclass(frozen=True, slots=True)
class ClientError:
    """How one kind of failure reads to a client. ``type`` is OpenAI's vocabulary (the Anthropic
    dialect derives its own from ``status``); ``retry=False`` tells SDKs not to retry at once
    (``x-should-retry: false``): the condition lasts (a quota hours away, a blocked IP, dead keys)."""

    status: int
    type: str
    code: str | None
    retry: bool = True

    def error(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> APIError:
        all_headers = {} if self.retry else {"x-should-retry": "false"}
        all_headers.update(headers or {})
        return APIError(self.status, message, type=self.type, code=self.code, param=param, headers=all_headers)


_UPSTREAM = ClientError(502, "server_error", "upstream_error")
_RATE_LIMITED = ClientError(429, "rate_limit_error", "rate_limit_exceeded", retry=False)
_UNAVAILABLE = "service_unavailable_error"

#: THE table: every upstream failure and every refusal, as the client hears it.
CLIENT_ERRORS: dict[Failure | Refusal, ClientError] = {
    Failure.OVERLOADED: ClientError(529, "overloaded_error", "overloaded"),
    Failure.RATE_LIMITED: _RATE_LIMITED,
    Failure.REQUEST_RATE: _RATE_LIMITED,
    Failure.BLOCKED: ClientError(503, _UNAVAILABLE, "upstream_blocked", retry=False),
    Failure.MODEL_NOT_ALLOWED: ClientError(403, "permission_error", "model_not_allowed"),
    # An account that died or failed mid-request: the pool parks it; for this client it is claude.ai's failure.
    Failure.DEAD: _UPSTREAM,
    Failure.DISABLED: _UPSTREAM,
    Failure.TRANSIENT: _UPSTREAM,
    Failure.UNKNOWN: _UPSTREAM,
    Refusal.NO_SESSION_CONFIGURED: ClientError(503, _UNAVAILABLE, None),
    Refusal.SESSIONS_BUSY: ClientError(503, _UNAVAILABLE, "sessions_busy"),
    Refusal.ALL_SESSIONS_FAILED: ClientError(503, _UNAVAILABLE, None),
    Refusal.NO_USABLE_SESSION: ClientError(503, _UNAVAILABLE, "no_usable_session", retry=False),
    Refusal.MIRROR_KEY_REJECTED: ClientError(401, "authentication_error", "invalid_session_key"),
    Refusal.SHUTTING_DOWN: ClientError(503, _UNAVAILABLE, "shutting_down"),
    Refusal.DEADLINE: ClientError(504, "server_error", "request_timeout"),
}


def upstream_api_error(exc: UpstreamError) -> APIError:
    """``exc`` as the client hears it (:data:`CLIENT_ERRORS`), with its own message."""
    return CLIENT_ERRORS[exc.failure].error(exc.message)


def rate_limited_error(reset_at: float, now: float) -> APIError:
    """429 for every account rate-limited: tell the reset time; SDKs sleep on it only when it is a minute away."""
    wait = max(0, int(reset_at - now))
    message = (
        f"all claude.ai sessions are rate-limited; the earliest resets at {iso_time(reset_at)} (in {_human(wait)})"
    )
    if wait <= 60:
        return APIError(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                        headers={"retry-after": str(max(1, wait))})
    return CLIENT_ERRORS[Failure.RATE_LIMITED].error(message)


def iso_time(ts: float) -> str:
    """Epoch seconds as an RFC 3339 UTC time, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
