"""claude.ai's usage limits, read into neutral windows (pure; docs/protocol.md §10).

Two sources say how much of an account's quota is used:

* the in-stream ``message_limit`` event (and the same object inside a 429's ``error.message``):
  :func:`parse_message_limit` → :class:`MessageLimit`;
* ``GET /api/organizations/{org}/usage``: :func:`parse_usage` → :class:`Usage`.

Both become :class:`Window` values: how long the window is, whether it binds every model or one,
whether it is exhausted, how much is used (always a fraction, 0.65 = 65 %) and when it resets (Unix
seconds). :meth:`Window.binds` says whether a window applies to a model id, so an exhausted
per-model window parks an account for that model only. Parsers never raise on any JSON value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from claude2api.core.resets import parse_instant

#: Window periods (``Window.period``).
SESSION = "session"  # the 5-hour window
WEEKLY = "weekly"  # the 7-day windows
OVERAGE = "overage"  # extra-usage spend
OTHER = "other"

#: Window scopes (``Window.scope``).
ALL_MODELS = "all"  # binds every model
ONE_MODEL = "model"  # binds the model in ``Window.model``
NOT_CHAT = "other"  # another surface (Cowork, Design, OAuth apps) or spend: shown, never parks

#: Most windows read from one body (bounded work for any input).
MAX_WINDOWS = 32

#: ``windows.*.status`` / ``type`` values that mean exhausted. Only ``exceeded_limit`` is captured;
#: one client's code spells it ``hit_limit`` / ``over_limit`` (docs/protocol.md §10.2).
_EXCEEDED = frozenset({"exceeded_limit", "exceeded", "hit_limit", "over_limit"})

#: ``message_limit.windows`` keys and ``representativeClaim`` values of the all-model windows.
_STREAM_WINDOWS = {"5h": SESSION, "7d": WEEKLY}
_CLAIMS = {"five_hour": "5h", "seven_day": "7d"}

#: ``/usage`` top-level keys we know. ``seven_day_opus`` / ``seven_day_sonnet`` are the old
#: per-model weeks; the others are surfaces that do not limit web chat.
_USAGE_KEYS: dict[str, tuple[str, str, str | None]] = {
    "five_hour": (SESSION, ALL_MODELS, None),
    "seven_day": (WEEKLY, ALL_MODELS, None),
    "seven_day_opus": (WEEKLY, ONE_MODEL, "opus"),
    "seven_day_sonnet": (WEEKLY, ONE_MODEL, "sonnet"),
}
#: ``/usage`` ``limits[].kind`` → (period, scope when no model is named).
_LIMIT_KINDS = {
    "session": (SESSION, ALL_MODELS),
    "weekly_all": (WEEKLY, ALL_MODELS),
    "weekly_scoped": (WEEKLY, ONE_MODEL),
    "session_scoped": (SESSION, ONE_MODEL),
    "spend": (OVERAGE, NOT_CHAT),
}


@dataclass(frozen=True, slots=True)
class Window:
    """One usage window, whichever source it came from.

    ``key`` names it as claude.ai did (``5h``, ``7d_oi``, ``five_hour``, ``limits.weekly_scoped``).
    ``model`` is the model a ``ONE_MODEL`` window binds, as claude.ai names it (an id, or a display
    name such as ``Fable``); ``None`` when claude.ai did not say and the caller gave no model.
    ``active`` marks the window claude.ai calls the binding one (``representativeClaim``, ``is_active``).
    """

    key: str
    period: str
    scope: str
    model: str | None
    exceeded: bool
    utilization: float | None  # fraction of the window used; may exceed 1
    resets_at: float | None  # Unix seconds
    active: bool = False
    severity: str | None = None  # ``limits[]``: normal / warning / critical

    def binds(self, model_id: str | None) -> bool:
        """Whether this window limits requests for ``model_id`` (``None``: a request of any model)."""
        if self.scope == ALL_MODELS:
            return True
        if self.scope != ONE_MODEL or self.model is None or model_id is None:
            return False
        return model_matches(self.model, model_id)


@dataclass(frozen=True, slots=True)
class MessageLimit:
    """A ``message_limit`` object: every window, and which are exhausted.

    ``exhausted`` lists the windows that park the account — for every model (``scope`` ``all``) or
    for ``Window.model`` only. ``resets_at`` is the top-level ``resetsAt`` (Unix seconds).
    """

    exceeded: bool
    windows: tuple[Window, ...]
    resets_at: float | None = None
    representative: str | None = None
    resolved: Window | None = None

    @property
    def exhausted(self) -> tuple[Window, ...]:
        return tuple(w for w in self.windows if w.exceeded and w.scope != NOT_CHAT)

    def blocked_until(self, model_id: str | None) -> float | None:
        """Until when (Unix seconds) the account cannot serve ``model_id``; ``None`` when it can.

        An exhausted window without a reset time yields ``math.inf``: the caller picks its default
        park time.
        """
        times = [w.resets_at if w.resets_at is not None else math.inf for w in self.exhausted if w.binds(model_id)]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class ExtraUsage:
    """``/usage`` ``extra_usage``: paid usage beyond the plan."""

    enabled: bool
    utilization: float | None  # fraction
    monthly_limit: float | None
    used_credits: float | None
    currency: str | None
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Usage:
    """A ``/usage`` body: every window (the top-level ones, then ``limits[]``) and extra usage."""

    windows: tuple[Window, ...]
    extra_usage: ExtraUsage | None = None

    def headroom(self, model_id: str | None) -> float | None:
        """What is left (fraction, ≥ 0) in the tightest window that binds ``model_id``; ``None``
        when no binding window reports its use (free plans report none)."""
        used = [w.utilization for w in self.windows if w.binds(model_id) and w.utilization is not None]
        return max(0.0, 1.0 - max(used)) if used else None


# ---------------------------------------------------------------------------------------------
# message_limit


def parse_message_limit(raw: object, model: str | None = None) -> MessageLimit | None:
    """Read a ``message_limit`` object (the event's ``message_limit`` member, or the decoded
    ``error.message`` of a 429); ``None`` if ``raw`` is not one.

    ``model`` is the model of the request it answered: a model-scoped window whose model claude.ai
    does not name (``7d_oi``), or a top-level ``perModelLimit: true``, binds that model. A window's
    ``status`` decides exhaustion, not its ``utilization`` (an exceeded window can report 0.98). When
    ``type`` says exceeded but no window does, the window named by ``representativeClaim`` (else a
    synthetic all-model one from ``resetsAt`` / ``resolved.limit``) is the exhausted one.
    """
    if not isinstance(raw, dict):
        return None
    top_exceeded = _status_exceeded(raw.get("type"))
    resets_at = parse_reset_time(raw.get("resetsAt"))
    claim = raw.get("representativeClaim") if isinstance(raw.get("representativeClaim"), str) else None
    claim_key = _CLAIMS.get(claim or "", claim)
    per_model = raw.get("perModelLimit") is True
    resolved = _resolved_window(raw.get("resolved"), model)

    windows: list[Window] = []
    raw_windows = raw.get("windows")
    if isinstance(raw_windows, dict):
        for key, entry in list(raw_windows.items())[:MAX_WINDOWS]:
            if isinstance(key, str) and isinstance(entry, dict):
                windows.append(_stream_window(key, entry, model, active=key == claim_key))
    if top_exceeded and not any(w.exceeded and w.scope != NOT_CHAT for w in windows):
        windows = _mark_exhausted(windows, claim_key, resets_at, resolved, model if per_model else None)
    elif per_model and model is not None:
        windows = [replace(w, scope=ONE_MODEL, model=model) if w.exceeded and w.scope == ALL_MODELS else w for w in windows]
    return MessageLimit(
        exceeded=top_exceeded or any(w.exceeded and w.scope != NOT_CHAT for w in windows),
        windows=tuple(windows),
        resets_at=resets_at,
        representative=claim,
        resolved=resolved,
    )


def _stream_window(key: str, entry: Mapping[str, Any], model: str | None, *, active: bool) -> Window:
    period, scope, scoped_model = _stream_key(key, model)
    return Window(
        key=key,
        period=period,
        scope=scope,
        model=scoped_model,
        exceeded=_status_exceeded(entry.get("status")),
        utilization=_number(entry.get("utilization")),
        resets_at=parse_reset_time(entry.get("resets_at")),
        active=active,
    )


def _stream_key(key: str, model: str | None) -> tuple[str, str, str | None]:
    """(period, scope, model) of a ``windows`` key: ``5h``/``7d`` bind all models, ``7d_<x>`` one
    (which one claude.ai does not say: the request's), ``overage`` is spend."""
    if key in _STREAM_WINDOWS:
        return _STREAM_WINDOWS[key], ALL_MODELS, None
    head, _, _rest = key.partition("_")
    if head in _STREAM_WINDOWS:
        return _STREAM_WINDOWS[head], ONE_MODEL, model
    if key == "overage":
        return OVERAGE, NOT_CHAT, None
    return OTHER, NOT_CHAT, None


def _mark_exhausted(
    windows: list[Window],
    claim_key: str | None,
    resets_at: float | None,
    resolved: Window | None,
    model: str | None,
) -> list[Window]:
    """``type`` says exceeded but no window does: exhaust the claimed window, or add one."""
    for i, window in enumerate(windows):
        if claim_key is not None and window.key == claim_key:
            reset = window.resets_at if window.resets_at is not None else resets_at
            windows[i] = replace(window, exceeded=True, resets_at=reset, active=True)
            return windows
    if resolved is not None and resolved.scope == ONE_MODEL:
        reset = resets_at if resets_at is not None else resolved.resets_at
        return [*windows, replace(resolved, exceeded=True, resets_at=reset, active=True)]
    period = _STREAM_WINDOWS.get(claim_key or "", resolved.period if resolved else OTHER)
    reset = resets_at if resets_at is not None else (resolved.resets_at if resolved else None)
    scope = ONE_MODEL if model is not None else ALL_MODELS
    utilization = resolved.utilization if resolved else None
    return [*windows, Window(claim_key or "resetsAt", period, scope, model, True, utilization, reset, True)]


def _resolved_window(raw: object, model: str | None) -> Window | None:
    """``resolved.limit`` (a ``/usage`` ``limits[]`` entry), exhausted when ``resolved.status`` says so."""
    if not isinstance(raw, dict) or not isinstance(raw.get("limit"), dict):
        return None
    window = _limit_window(raw["limit"], model)
    if window is not None and _status_exceeded(raw.get("status")) and not window.exceeded:
        window = replace(window, exceeded=True)
    return window


def _status_exceeded(raw: object) -> bool:
    return isinstance(raw, str) and raw.strip().lower() in _EXCEEDED


# ---------------------------------------------------------------------------------------------
# /usage


def parse_usage(raw: object) -> Usage:
    """Read a ``/usage`` body: every top-level object with a ``utilization`` (unknown codenames
    included, as windows that do not limit chat), the ``limits[]`` entries, and ``extra_usage``.
    ``utilization`` / ``percent`` there are percentages; the windows hold fractions."""
    if not isinstance(raw, dict):
        return Usage(())
    windows: list[Window] = []
    for key, entry in list(raw.items())[: MAX_WINDOWS * 2]:
        if not isinstance(key, str) or not isinstance(entry, dict) or "utilization" not in entry:
            continue
        if key == "extra_usage":
            continue
        period, scope, model = _USAGE_KEYS.get(key, (_usage_period(key), NOT_CHAT, None))
        percent = _number(entry.get("utilization"))
        windows.append(
            Window(
                key=key,
                period=period,
                scope=scope,
                model=model,
                exceeded=percent is not None and percent >= 100,
                utilization=None if percent is None else percent / 100,
                resets_at=parse_reset_time(entry.get("resets_at")),
            )
        )
    limits = raw.get("limits")
    for entry in limits[:MAX_WINDOWS] if isinstance(limits, list) else []:
        if (window := _limit_window(entry, None)) is not None:
            windows.append(window)
    return Usage(tuple(windows[:MAX_WINDOWS * 2]), _extra_usage(raw.get("extra_usage")))


def _usage_period(key: str) -> str:
    if key.startswith("five_hour"):
        return SESSION
    if key.startswith("seven_day"):
        return WEEKLY
    return OTHER


def _limit_window(entry: object, model: str | None) -> Window | None:
    """A ``limits[]`` entry (also ``message_limit.resolved.limit``)."""
    if not isinstance(entry, dict):
        return None
    kind = entry.get("kind") if isinstance(entry.get("kind"), str) else None
    period, scope = _LIMIT_KINDS.get(kind or "", (OTHER, NOT_CHAT))
    scope_obj = entry.get("scope")
    named: str | None = None
    if isinstance(scope_obj, dict):
        scoped = scope_obj.get("model")
        if isinstance(scoped, dict):
            named = _short_text(scoped.get("id")) or _short_text(scoped.get("display_name"))
        elif isinstance(scoped, str):
            named = _short_text(scoped)
        if named is None and scope_obj.get("surface") is not None:
            scope = NOT_CHAT
    if named is not None and scope != NOT_CHAT:
        scope = ONE_MODEL
    if scope == ONE_MODEL and named is None:
        named = model
    percent = _number(entry.get("percent"))
    severity = entry.get("severity") if isinstance(entry.get("severity"), str) else None
    return Window(
        key=f"limits.{kind or 'unknown'}",
        period=period,
        scope=scope,
        model=named,
        exceeded=percent is not None and percent >= 100,
        utilization=None if percent is None else percent / 100,
        resets_at=parse_reset_time(entry.get("resets_at")),
        active=entry.get("is_active") is True,
        severity=severity,
    )


def _extra_usage(raw: object) -> ExtraUsage | None:
    if not isinstance(raw, dict):
        return None
    percent = _number(raw.get("utilization"))
    return ExtraUsage(
        enabled=raw.get("is_enabled") is True,
        utilization=None if percent is None else percent / 100,
        monthly_limit=_number(raw.get("monthly_limit")),
        used_credits=_number(raw.get("used_credits")),
        currency=_short_text(raw.get("currency")),
        disabled_reason=_short_text(raw.get("disabled_reason")),
    )


# ---------------------------------------------------------------------------------------------
# Model names and values


def model_matches(scope_model: str, model_id: str) -> bool:
    """Whether a window's model (an id like ``claude-fable-5``, a display name like ``Fable`` or
    ``Opus 4.8``, or a family like ``sonnet``) covers the claude.ai model ``model_id``."""
    scope = _slug(scope_model)
    target = _slug(model_id)
    if not scope or not target:
        return False
    # Drop dates so ``claude-haiku-4-5`` and ``claude-haiku-4-5-20251001`` are one model.
    target = re.sub(r"-20\d{6}(?=$|-)", "", target)
    scope = re.sub(r"-20\d{6}(?=$|-)", "", scope)
    return target == scope or target.startswith(scope + "-")


def _slug(name: str) -> str:
    """``Claude Opus 4.8`` → ``opus-4-8``; ``claude-3-opus`` → ``opus-3``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-").removeprefix("claude-")
    if legacy := re.fullmatch(r"(\d+)(?:-(\d{1,2}))?-([a-z]+)(.*)", slug):
        major, minor, family, rest = legacy.groups()
        slug = f"{family}-{major}" + (f"-{minor}" if minor else "") + rest
    return slug


def _short_text(raw: object) -> str | None:
    return raw if isinstance(raw, str) and raw and len(raw) <= 200 else None


def _number(raw: object) -> float | None:
    """A finite number (``bool`` is not one); numeric strings are accepted."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw) if len(raw) <= 40 else None
        except ValueError:
            return None
    if isinstance(raw, int) and abs(raw) < 2**63:
        return float(raw)
    if isinstance(raw, float) and math.isfinite(raw):
        return raw
    return None


#: Plausible reset times: 2001-09-09 .. 2286-11-20 in Unix seconds.
_MIN_EPOCH = 1_000_000_000
_MAX_EPOCH = 9_999_999_999


def parse_reset_time(raw: object) -> float | None:
    """A window's reset time as Unix seconds (epoch s, epoch ms or ISO 8601), read by the one
    parser (:func:`claude2api.core.resets.parse_instant`); ``None`` outside 2001 .. 2286.

    Windows are shown and compared as they are; the pool clamps a time before parking on it.
    """
    seconds = parse_instant(raw)
    return seconds if seconds is not None and _MIN_EPOCH <= seconds <= _MAX_EPOCH else None
