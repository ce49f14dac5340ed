"""The pool of claude.ai accounts and what we know of each one's health.

Every session (one ``sessionKey``) has a state with a reason and, where it applies, a time
(``docs/protocol.md`` §12): healthy; cooling down until T (usage limit); dead (the
cookie was rejected); disabled (organization disabled); blocked (Cloudflare refused our IP: the
account is probably fine, so it comes back after a short pause). A model the account's plan lacks
excludes the session for that model only, and so does an exhausted per-model usage window (until
its reset: ``model_until``). Transient failures only push a session to the back of the queue for a
moment.

Selection is least-busy first, then the most headroom in the usage window that binds the model
(``/usage`` and the stream's ``message_limit``), then least recently used, which rotates evenly over
equal sessions; sessions whose quota windows are nearly used up go last, before the 429 arrives. With a cap on
concurrent requests per session, a request waits a bounded time for a free slot. States are saved
to a state file, when one is configured, so a parked session stays parked across a restart; what
is read back from it is checked like any outside input (:meth:`Session.restore`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude2api.accounts import statefile
from claude2api.accounts.resolve import resolve_account
from claude2api.core.catalog import ModelCapabilities
from claude2api.core.failures import Failure, Refusal, UpstreamError, iso_time
from claude2api.core.limits import ALL_MODELS, MessageLimit, Usage, Window
from claude2api.core.resets import clamp_reset, parse_instant, reset_time
from claude2api.logs import fingerprint, get_logger
from claude2api.upstream.browser import new_device_id
from claude2api.upstream.client import Account, ClaudeWebClient, canonical_org_id

log = get_logger(__name__)

#: Quota utilization (fraction of a window) above which a session is used only as a last resort.
PRESSURE_THRESHOLD = 0.9
TRANSIENT_BACKOFF_SECONDS = 10.0
#: Headroom differences smaller than this do not reorder sessions (equal ones keep rotating).
HEADROOM_STEP = 0.1
#: Bounds on what a state file may hand back.
_MAX_REASON = 500
_MAX_DENIED_MODELS = 200
_MAX_NAME = 200


class State(enum.StrEnum):
    HEALTHY = "healthy"
    COOLING = "cooling"
    BLOCKED = "blocked"
    DEAD = "dead"
    DISABLED = "disabled"


@dataclass(eq=False)
class Session:
    key: str
    org_id: str | None = None
    state: State = State.HEALTHY
    reason: str = ""
    until: float | None = None
    denied_models: set[str] = field(default_factory=set)
    in_flight: int = 0
    last_used: float = 0.0
    backoff_until: float = 0.0
    pressure: float = 0.0
    plan: str | None = None
    #: Exhausted per-model windows: claude.ai model id -> until when (Unix seconds) it is parked for it.
    model_until: dict[str, float] = field(default_factory=dict)
    #: The account's live model list (``app_start``); ``None``: not read (the static list stands in).
    models: tuple[ModelCapabilities, ...] | None = None
    #: When the list was last read or tried, and whether its failure was already logged.
    models_read_at: float = 0.0
    models_failure_logged: bool = False
    #: The last ``/usage`` read, and when.
    usage: Usage | None = None
    usage_read_at: float = 0.0
    #: The windows of the last ``message_limit`` claude.ai streamed to this account.
    stream_windows: tuple[Window, ...] = ()
    #: The ``anthropic-device-id`` this account shows claude.ai: made once, kept in the state file.
    device_id: str = field(default_factory=new_device_id)
    #: Transport and egress the account goes through (set by the app), for the operator's view.
    egress: str = ""
    #: Held while the organization is looked up, so concurrent first requests look it up once.
    org_lookup: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def refresh(self, now: float) -> bool:
        """Bring a parked session back once its time has come; ``True`` when it leaves cooling."""
        for model in [m for m, until in self.model_until.items() if until <= now]:
            del self.model_until[model]
        if self.state in (State.COOLING, State.BLOCKED) and self.until is not None and self.until <= now:
            was_cooling = self.state is State.COOLING
            self.state, self.reason, self.until = State.HEALTHY, "", None
            return was_cooling
        return False

    def usable_for(self, model: str | None) -> bool:
        return self.state is State.HEALTHY and (
            model is None or (model not in self.denied_models and model not in self.model_until)
        )

    def headroom(self, model: str | None) -> float:
        """What is left (fraction) in the tightest window binding ``model``: ``/usage`` and the
        stream's last ``message_limit``; 1.0 when nothing reports a use."""
        used = [w.utilization for w in self.windows() if w.binds(model) and w.utilization is not None]
        return max(0.0, 1.0 - max(used)) if used else 1.0

    def windows(self) -> tuple[Window, ...]:
        """Every usage window known of the account: ``/usage`` first, then the stream's."""
        return (self.usage.windows if self.usage else ()) + self.stream_windows

    def record(self) -> dict[str, Any]:
        """What the state file keeps of this session."""
        return {
            "state": self.state.value,
            "reason": self.reason,
            "until": self.until,
            "denied_models": sorted(self.denied_models),
            "model_until": dict(self.model_until),
            "org_id": self.org_id,
            "plan": self.plan,
            "device_id": self.device_id,
        }

    def restore(self, record: dict[str, Any], now: float, cooldown: float) -> bool:
        """Take a state-file record; ``False`` (nothing changed) when it is not one we wrote.

        The file is outside input: only known states, strings of sane length, a UUID org id and a
        reset time within the window pass (a time beyond it parks for ``cooldown``, one past ends
        the parking); anything else drops the whole record.
        """
        try:
            state = State(record.get("state", "healthy"))
        except (ValueError, TypeError):
            return False
        reason, org_id, plan = record.get("reason") or "", record.get("org_id"), record.get("plan")
        denied = record.get("denied_models") or []
        model_until = record.get("model_until") or {}
        if (
            not isinstance(model_until, dict)
            or len(model_until) > _MAX_DENIED_MODELS
            or not all(isinstance(m, str) and len(m) <= _MAX_NAME for m in model_until)
        ):
            return False
        if (
            not isinstance(reason, str)
            or not (org_id is None or canonical_org_id(org_id) is not None)
            or not (plan is None or (isinstance(plan, str) and len(plan) <= _MAX_NAME))
            or not isinstance(denied, list)
            or len(denied) > _MAX_DENIED_MODELS
            or not all(isinstance(m, str) and len(m) <= _MAX_NAME for m in denied)
        ):
            return False
        until: float | None = None
        if state in (State.COOLING, State.BLOCKED):
            saved_until = parse_instant(record.get("until"))
            if saved_until is not None and saved_until <= now:
                state, reason = State.HEALTHY, ""
            else:
                until = reset_time(saved_until, now) or now + cooldown
        self.state, self.reason, self.until = state, reason[:_MAX_REASON], until
        self.denied_models = set(denied)
        self.model_until = {m: t for m, v in model_until.items() if (t := reset_time(v, now)) is not None}
        self.org_id = self.org_id or canonical_org_id(org_id)
        self.plan = plan
        device_id = canonical_org_id(record.get("device_id"))  # a UUID, like an org id
        if device_id is not None:
            self.device_id = device_id
        return True

    def describe(self, pending_cleanup: int = 0) -> dict[str, Any]:
        """Operator view; never contains the key itself."""
        return {
            "fingerprint": self.fingerprint,
            "org_id": self.org_id,
            "plan": self.plan,
            "state": self.state.value,
            "reason": self.reason,
            "until": iso_time(self.until) if self.until else None,
            "denied_models": sorted(self.denied_models),
            "model_cooling": {m: iso_time(t) for m, t in sorted(self.model_until.items())},
            "models": "live" if self.models is not None else "fallback",
            "in_flight": self.in_flight,
            "utilization": round(self.pressure, 3),
            "windows": [describe_window(w) for w in self.windows()],
            "pending_cleanup": pending_cleanup,
            "egress": self.egress,
        }


def describe_window(window: Window) -> dict[str, Any]:
    """One usage window for operators (``/admin/sessions``, ``claude2api sessions``)."""
    return {
        "key": window.key,
        "period": window.period,
        "scope": window.scope,
        "model": window.model,
        "exceeded": window.exceeded,
        "utilization": None if window.utilization is None else round(window.utilization, 4),
        "resets_at": iso_time(window.resets_at) if window.resets_at else None,
    }


#: What a failure says about the account that hit it: the one table the pool (which adds how long)
#: and the ``sessions`` report read. Failures not listed (transient, unknown, a model the plan
#: lacks) leave the account's state alone.
STATE_OF_FAILURE: dict[Failure, State] = {
    Failure.DEAD: State.DEAD,
    Failure.DISABLED: State.DISABLED,
    Failure.BLOCKED: State.BLOCKED,
    Failure.RATE_LIMITED: State.COOLING,
    Failure.REQUEST_RATE: State.COOLING,
}


class NoSessionAvailable(Exception):
    """No session can take this request, and why: a :class:`Refusal`, or the :class:`Failure` that
    parked the sessions (``reset_at``: the earliest reset of a rate limit; ``detail``: what the
    sessions' states say). The failover middleware turns it into the client's error."""

    def __init__(self, reason: Failure | Refusal, detail: str = "", *, reset_at: float | None = None) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail
        self.reset_at = reset_at


class SessionPool:
    def __init__(
        self,
        keys: Iterable[tuple[str, str | None]],
        *,
        clock: Callable[[], float] = time.time,
        cooldown_default: float = 3600.0,
        request_rate_cooldown: float = 60.0,
        blocked_cooldown: float = 60.0,
        max_concurrency: int = 0,
        state_path: Path | None = None,
    ) -> None:
        self.clock = clock
        self.cooldown_default = cooldown_default
        self.request_rate_cooldown = request_rate_cooldown
        self.blocked_cooldown = blocked_cooldown
        self.max_concurrency = max_concurrency
        self.state = statefile.StateFile(state_path) if state_path is not None else None
        self.sessions: list[Session] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Pending conversation clean-ups by session :func:`~claude2api.accounts.statefile.state_id` (set by the janitor).
        self.pending_cleanup: Callable[[], Mapping[str, int]] = dict
        #: Called with a session that just came back from cooling (the usage reader re-reads it).
        self.on_recovered: Callable[[Session], None] = lambda session: None
        self.saved = self.state.load() if self.state is not None else statefile.SavedState()
        if self.state is not None:
            self.state.sources["sessions"] = self.records
        self.update_sessions(keys, self.saved)

    def update_sessions(
        self, keys: Iterable[tuple[str, str | None]], saved: statefile.SavedState | None = None
    ) -> None:
        """Set the configured keys (start-up, reload): known sessions keep their state, new ones
        take theirs from the state file (``saved``, else read now)."""
        known = {s.key: s for s in self.sessions}
        if saved is None:
            saved = self.state.load() if self.state is not None else statefile.SavedState()
        now = self.clock()
        sessions = []
        new_devices = False
        for key, configured_org in keys:
            org_id = canonical_org_id(configured_org)  # config checked it already; a path must never get less
            session = known.get(key)
            if session is None:
                session = Session(key=key, org_id=org_id)
                record = saved.sessions.get(statefile.state_id(key))
                if record is not None and not session.restore(record, now, self.cooldown_default):
                    log.warning("state_file_entry_dropped", session=session.fingerprint, part="sessions")
                new_devices = new_devices or record is None or record.get("device_id") != session.device_id
            elif org_id and session.org_id != org_id:
                session.org_id = org_id
            sessions.append(session)
        self.sessions = sessions
        if new_devices:
            self.save()  # a device id is made once: keep it before claude.ai sees it

    def by_state_id(self, sid: str) -> Session | None:
        """The configured session whose key hashes to ``sid`` (state file entries name sessions so)."""
        return next((s for s in self.sessions if statefile.state_id(s.key) == sid), None)

    # -- selection --------------------------------------------------------------------------

    async def acquire(
        self, model: str | None, exclude: set[Session], wait: float, allowed: frozenset[str] | None = None
    ) -> Session:
        """A session for ``model``, waiting up to ``wait`` seconds when all usable ones are at their cap.
        ``allowed`` (state ids, from the catalogue's ``accounts_for``) limits the pick to the
        accounts whose model list has the model; ``None``: any."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            session = self.pick(model, exclude, allowed)
            if session is not None:
                return session
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoSessionAvailable(Refusal.SESSIONS_BUSY, f"{self.max_concurrency} concurrent requests each")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def pick(
        self,
        model: str | None,
        exclude: set[Session] = frozenset(),  # type: ignore[assignment]
        allowed: frozenset[str] | None = None,
    ) -> Session | None:
        """The best usable session now, ``None`` if all usable ones are at their cap.

        Raises :class:`NoSessionAvailable` when no session could serve ``model`` even if idle.
        """
        now = self.clock()
        self.refresh_all(now)
        holders = self.sessions if allowed is None else [s for s in self.sessions if statefile.state_id(s.key) in allowed]
        candidates = [s for s in holders if s not in exclude and s.usable_for(model)]
        if not candidates:
            raise self.unavailable(model, allowed)
        if self.max_concurrency:
            candidates = [s for s in candidates if s.in_flight < self.max_concurrency]
            if not candidates:
                return None
        best = min(
            candidates,
            key=lambda s: (
                s.pressure >= PRESSURE_THRESHOLD,
                s.backoff_until > now,
                s.in_flight,
                -round(s.headroom(model) / HEADROOM_STEP),
                s.last_used,
            ),
        )
        best.in_flight += 1
        best.last_used = now
        return best

    def refresh_all(self, now: float) -> None:
        """Bring back every session whose parking ended; those leaving cooling go to ``on_recovered``."""
        for s in self.sessions:
            if s.refresh(now):
                self.on_recovered(s)

    def release(self, session: Session) -> None:
        session.in_flight = max(0, session.in_flight - 1)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def account(self, session: Session, client: ClaudeWebClient) -> Account:
        """The session's :class:`Account`, looking its organization up once and caching it."""
        if session.org_id is None:
            async with session.org_lookup:
                if session.org_id is None:
                    resolved = await resolve_account(client, session.key, None, self.clock())
                    session.org_id, session.plan = resolved.org_id, resolved.plan
                    self.save()
                    if resolved.flagged is not None:
                        raise resolved.flagged
        return Account(session.key, session.org_id)

    # -- outcomes ---------------------------------------------------------------------------

    def record_failure(self, session: Session, error: UpstreamError, model: str | None) -> None:
        now = self.clock()
        failure = error.failure
        if failure in (Failure.DEAD, Failure.DISABLED):
            self._park(session, STATE_OF_FAILURE[failure], error.message, None)
        elif failure is Failure.RATE_LIMITED:
            if error.limit is not None and self._park_for_model(session, error.limit, model):
                return
            until = clamp_reset(error.reset_at, now) or now + self.cooldown_default
            self._park(session, STATE_OF_FAILURE[failure], error.message, until)
        elif failure is Failure.REQUEST_RATE:
            until = clamp_reset(error.reset_at, now) or now + self.request_rate_cooldown
            self._park(session, STATE_OF_FAILURE[failure], error.message, until)
        elif failure is Failure.BLOCKED:
            self._park(session, STATE_OF_FAILURE[failure], error.message, now + self.blocked_cooldown)
        elif failure is Failure.MODEL_NOT_ALLOWED and model:
            session.denied_models.add(model)
            log.warning("session_model_denied", session=session.fingerprint, model=model)
            self.save()
        else:
            session.backoff_until = now + TRANSIENT_BACKOFF_SECONDS
            log.warning("session_transient_failure", session=session.fingerprint, error=error.message)

    def record_limit(self, session: Session, limit: MessageLimit, model: str | None) -> None:
        """Act on the stream's ``message_limit``: park at once when a window binding every model is
        exhausted, for ``model`` only when a per-model one binding it is (one binding another model
        is only shown); else note the pressure."""
        session.stream_windows = limit.windows
        now = self.clock()
        until = limit.blocked_until(None)  # only all-model windows bind "any model"
        if until is not None:
            until = clamp_reset(until, now) or clamp_reset(limit.resets_at, now) or now + self.cooldown_default
            self._park(session, State.COOLING, "usage limit reached", until)
            return
        self._park_for_model(session, limit, model)
        utilizations = [w.utilization for w in limit.windows if w.scope == ALL_MODELS and w.utilization is not None]
        session.pressure = max(utilizations, default=0.0)

    def _park_for_model(self, session: Session, limit: MessageLimit, model: str | None) -> bool:
        """Park ``session`` for ``model`` only when only per-model windows binding it are exhausted;
        ``False`` when an all-model window is (or nothing binds ``model``): the caller parks it all."""
        exhausted = limit.exhausted
        if not exhausted or any(w.scope == ALL_MODELS for w in exhausted) or model is None:
            return False
        until = limit.blocked_until(model)
        if until is None:
            return False
        now = self.clock()
        session.model_until[model] = clamp_reset(until, now) or now + self.cooldown_default
        self.save()
        log.warning(
            "session_parked_for_model",
            session=session.fingerprint,
            model=model,
            until=iso_time(session.model_until[model]),
        )
        return True

    def record_success(self, session: Session) -> None:
        session.backoff_until = 0.0

    def _park(self, session: Session, state: State, reason: str, until: float | None) -> None:
        session.state, session.reason, session.until = state, reason, until
        self.save()
        log.warning(
            "session_parked",
            session=session.fingerprint,
            state=state.value,
            reason=reason,
            until=iso_time(until) if until else None,
        )

    def save(self) -> None:
        """Note a change for the state file (written soon, off the event loop)."""
        if self.state is not None:
            self.state.changed()

    def records(self) -> dict[str, dict[str, Any]]:
        return {statefile.state_id(s.key): s.record() for s in self.sessions}

    async def close(self) -> None:
        """Write what is still unwritten (shutdown)."""
        if self.state is not None:
            await self.state.flush()

    # -- reporting --------------------------------------------------------------------------

    def unavailable(self, model: str | None, allowed: frozenset[str] | None = None) -> NoSessionAvailable:
        """Why no session can serve ``model`` right now (the facts; the client's error is the failover's).
        ``allowed``: the accounts whose model list has it (``None``: any)."""
        if not self.sessions:
            return NoSessionAvailable(Refusal.NO_SESSION_CONFIGURED)
        sessions = self.sessions if allowed is None else [s for s in self.sessions if statefile.state_id(s.key) in allowed]
        if not sessions:
            return NoSessionAvailable(Failure.MODEL_NOT_ALLOWED)
        cooling = [s.until for s in sessions if s.state is State.COOLING and s.until]
        healthy = [s for s in sessions if s.state is State.HEALTHY]
        if model and healthy and all(model in s.model_until or model in s.denied_models for s in healthy):
            cooling += [s.model_until[model] for s in healthy if model in s.model_until]
        if cooling:
            return NoSessionAvailable(Failure.RATE_LIMITED, reset_at=min(cooling))
        blocked = [s.reason for s in sessions if s.state is State.BLOCKED]
        if blocked:
            return NoSessionAvailable(Failure.BLOCKED, blocked[0])
        if model and healthy and all(model in s.denied_models for s in healthy):
            return NoSessionAvailable(Failure.MODEL_NOT_ALLOWED)
        if healthy:
            return NoSessionAvailable(Refusal.ALL_SESSIONS_FAILED)
        reasons = sorted({f"{s.state.value}: {s.reason}" for s in sessions})
        return NoSessionAvailable(Refusal.NO_USABLE_SESSION, f"{len(sessions)} configured; " + "; ".join(reasons))

    def snapshot(self) -> list[dict[str, Any]]:
        self.refresh_all(self.clock())
        pending = self.pending_cleanup()
        return [s.describe(pending.get(statefile.state_id(s.key), 0)) for s in self.sessions]
