"""Turn a failed claude.ai HTTP response into a classified :class:`UpstreamError`.

Follows the failure taxonomy of ``docs/protocol.md`` §12. Messages built here are
safe to log and to show to clients: they never contain the cookie or an HTML body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.limits import parse_message_limit
from claude2api.core.resets import reset_time, retry_after_time

_CHALLENGE_MARKERS = (b"Just a moment...", b"/cdn-cgi/challenge-platform/")
_RESET_KEYS = ("resetsAt", "resets_at", "reset_at", "resetAt")

BLOCKED_MESSAGE = (
    "claude.ai's Cloudflare front blocked this request ({detail}): the server's IP address or "
    "proxy is blocked, the session key is probably fine"
)


def classify_response(
    status: int, headers: Mapping[str, str], body: bytes, now: float, model: str | None = None
) -> UpstreamError:
    """Classify a non-success response of any claude.ai endpoint (``model``: the completion's model,
    which a usage limit's unnamed per-model window binds)."""
    if status == 407:  # a forwarding HTTP proxy answering for claude.ai (http:// base URLs)
        return UpstreamError(
            Failure.TRANSIENT,
            "the proxy refused the request (HTTP 407 Proxy Authentication Required): "
            "check the user name and password in PROXY",
            status=407,
        )
    if 300 <= status < 400:
        return UpstreamError(Failure.BLOCKED, BLOCKED_MESSAGE.format(detail=f"HTTP {status} redirect"), status=status)
    if headers.get("cf-mitigated", "").lower() == "challenge" or any(m in body for m in _CHALLENGE_MARKERS):
        return UpstreamError(Failure.BLOCKED, BLOCKED_MESSAGE.format(detail="challenge page"), status=status)

    error = _error_object(body)
    etype = str(error.get("type") or "")
    message = str(error.get("message") or "")
    raw_details = error.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    code = str(details.get("error_code") or error.get("code") or "")
    summary = _summary(status, etype, message)

    if status == 401 or code == "account_session_invalid" or (status == 403 and message == "Invalid authorization"):
        return UpstreamError(Failure.DEAD, f"session key rejected by claude.ai ({summary})", status=status)
    if "organization has been disabled" in message.lower():
        return UpstreamError(Failure.DISABLED, f"claude.ai organization disabled ({summary})", status=status)
    if code == "model_not_allowed" or message == "Invalid model" or _model_unavailable(status, etype, message):
        return UpstreamError(Failure.MODEL_NOT_ALLOWED, f"model not allowed on this account ({summary})", status=status)
    if status == 403 and "unable to serve your request" in message.lower():
        return UpstreamError(Failure.BLOCKED, BLOCKED_MESSAGE.format(detail="region or IP refused"), status=status)
    if status == 429:
        return _rate_limit(message, headers, now, summary, model)
    if status == 529 or etype == "overloaded_error":
        return UpstreamError(Failure.OVERLOADED, f"claude.ai is overloaded ({summary})", status=status)
    if status >= 500:
        return UpstreamError(Failure.TRANSIENT, f"claude.ai is unavailable ({summary})", status=status)
    return UpstreamError(Failure.UNKNOWN, f"claude.ai refused the request ({summary})", status=status)


def classify_stream_error(error: Any, now: float) -> UpstreamError:
    """Classify an in-stream ``event: error`` payload (docs/protocol.md §5.5)."""
    error = error if isinstance(error, dict) else {}
    etype = str(error.get("type") or "error")
    message = str(error.get("message") or "")
    if etype == "rate_limit_error":
        return _rate_limit(message, {}, now, _summary(None, etype, message))
    if etype == "overloaded_error":
        return UpstreamError(Failure.OVERLOADED, f"claude.ai stream failed ({_summary(None, etype, message)})")
    return UpstreamError(Failure.TRANSIENT, f"claude.ai stream failed ({_summary(None, etype, message)})")


def _model_unavailable(status: int, etype: str, message: str) -> bool:
    """``docs/protocol.md`` §11.5: a 403 ``permission_error`` saying the model is not available (on this
    plan). Matched on the words, not one literal: claude.ai has rephrased it before."""
    text = message.lower().replace("isn't", "not").replace("is not", "not")
    return status == 403 and etype in ("permission_error", "") and "model" in text and "not available" in text


def _rate_limit(
    message: str, headers: Mapping[str, str], now: float, summary: str, model: str | None = None
) -> UpstreamError:
    inner = _json_or_none(message)
    limit = parse_message_limit(inner, model) if isinstance(inner, dict) else None
    reset = reset_from_limit(inner, now) if isinstance(inner, dict) else None
    unified_reset = headers.get("anthropic-ratelimit-unified-reset")
    if reset is None:
        reset = reset_time(unified_reset, now)
    # A usage limit even when its reset time was unusable: the pool then parks for the default cool-down.
    if reset is not None or unified_reset or (isinstance(inner, dict) and inner.get("type") == "exceeded_limit"):
        return UpstreamError(
            Failure.RATE_LIMITED, "usage limit reached on this account", status=429, reset_at=reset, limit=limit
        )
    return UpstreamError(
        Failure.REQUEST_RATE,
        f"claude.ai is rate limiting requests ({summary})",
        status=429,
        reset_at=retry_after_time(headers.get("retry-after"), now),
    )


def reset_from_limit(limit: dict[str, Any], now: float) -> float | None:
    """The reset time of a ``message_limit``-shaped object (2026 additions 6.3): ``resetsAt`` (or
    another spelling), else the exceeded windows' latest ``resets_at``, else ``resolved.limit``'s.
    Only times :func:`~claude2api.core.resets.reset_time` accepts count."""
    for key in _RESET_KEYS:
        value = reset_time(limit.get(key), now)
        if value is not None:
            return value
    windows = limit.get("windows")
    if isinstance(windows, dict):
        resets = [
            reset_time(w.get("resets_at"), now)
            for w in windows.values()
            if isinstance(w, dict) and w.get("status") in ("exceeded_limit", "over_limit")
        ]
        found = [r for r in resets if r is not None]
        if found:
            return max(found)
    resolved = limit.get("resolved")
    resolved_limit = resolved.get("limit") if isinstance(resolved, dict) else None
    if isinstance(resolved_limit, dict):
        return reset_time(resolved_limit.get("resets_at"), now)
    return None


def _error_object(body: bytes) -> dict[str, Any]:
    parsed = _json_or_none(body)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            return error
    return {}


def _json_or_none(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError):
        return None


def _summary(status: int | None, etype: str, message: str) -> str:
    parts = [f"HTTP {status}"] if status is not None else []
    if etype:
        parts.append(etype)
    if message and not message.lstrip().startswith("{"):
        parts.append(message[:200])
    return ": ".join(parts) if parts else "no detail"
