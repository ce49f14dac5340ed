"""The pool of claude.ai accounts and what we know of each one's health.

Every session (one ``sessionKey``) has a state with a reason and, where it applies, a time
(``docs/protocol.md`` §12): healthy; cooling down until T (usage limit); dead (the
cookie was rejected); disabled (organization disabled); blocked (Cloudflare refused our IP: the
account is probably fine, so it comes back after a short pause). A model the account's plan lacks
excludes the session for that model only. Transient failures only push a session to the back of
the queue for a moment.

Selection is least-busy first, then least recently used, which rotates evenly over equal sessions;
sessions whose quota windows are nearly used up go last, before the 429 arrives. With a cap on
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
from claude2api.core.failures import Failure, Refusal, UpstreamError, iso_time
from claude2api.core.types import Limit
from claude2api.logs import fingerprint, get_logger
from claude2api.upstream.browser import new_device_id
from claude2api.upstream.client import Account, ClaudeWebClient, canonical_org_id
from claude2api.upstream.resets import clamp_reset, parse_instant, reset_time

log = get_logger(__name__)

#: Quota utilization (fraction of a window) above which a session is used only as a last resort.
PRESSURE_THRESHOLD = 0.9
TRANSIENT_BACKOFF_SECONDS = 10.0
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
    #: The ``anthropic-device-id`` this account shows claude.ai: made once, kept in the state file.
    device_id: str = field(default_factory=new_device_id)
    #: Transport and egress the account goes through (set by the app), for the operator's view.
    egress: str = ""
    #: Held while the organization is looked up, so concurrent first requests look it up once.
    org_lookup: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def refresh(self, now: float) -> None:
        """Bring a parked session back once its time has come."""
        if self.state in (State.COOLING, State.BLOCKED) and self.until is not None and self.until <= now:
            self.state, self.reason, self.until = State.HEALTHY, "", None

    def usable_for(self, model: str | None) -> bool:
        return self.state is State.HEALTHY and (model is None or model not in self.denied_models)

    def record(self) -> dict[str, Any]:
        """What the state file keeps of this session."""
        return {
            "state": self.state.value,
            "reason": self.reason,
            "until": self.until,
            "denied_models": sorted(self.denied_models),
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
            "in_flight": self.in_flight,
            "utilization": round(self.pressure, 3),
            "pending_cleanup": pending_cleanup,
            "egress": self.egress,
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

    async def acquire(self, model: str | None, exclude: set[Session], wait: float) -> Session:
        """A session for ``model``, waiting up to ``wait`` seconds when all usable ones are at their cap."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            session = self.pick(model, exclude)
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

    def pick(self, model: str | None, exclude: set[Session] = frozenset()) -> Session | None:  # type: ignore[assignment]
        """The best usable session now, ``None`` if all usable ones are at their cap.

        Raises :class:`NoSessionAvailable` when no session could serve ``model`` even if idle.
        """
        now = self.clock()
        for s in self.sessions:
            s.refresh(now)
        candidates = [s for s in self.sessions if s not in exclude and s.usable_for(model)]
        if not candidates:
            raise self.unavailable(model)
        if self.max_concurrency:
            candidates = [s for s in candidates if s.in_flight < self.max_concurrency]
            if not candidates:
                return None
        best = min(
            candidates,
            key=lambda s: (s.pressure >= PRESSURE_THRESHOLD, s.backoff_until > now, s.in_flight, s.last_used),
        )
        best.in_flight += 1
        best.last_used = now
        return best

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
        if failure is Failure.DEAD:
            self._park(session, State.DEAD, error.message, None)
        elif failure is Failure.DISABLED:
            self._park(session, State.DISABLED, error.message, None)
        elif failure is Failure.RATE_LIMITED:
            until = clamp_reset(error.reset_at, now) or now + self.cooldown_default
            self._park(session, State.COOLING, error.message, until)
        elif failure is Failure.REQUEST_RATE:
            until = clamp_reset(error.reset_at, now) or now + self.request_rate_cooldown
            self._park(session, State.COOLING, error.message, until)
        elif failure is Failure.BLOCKED:
            self._park(session, State.BLOCKED, error.message, now + self.blocked_cooldown)
        elif failure is Failure.MODEL_NOT_ALLOWED and model:
            session.denied_models.add(model)
            log.warning("session_model_denied", session=session.fingerprint, model=model)
            self.save()
        else:
            session.backoff_until = now + TRANSIENT_BACKOFF_SECONDS
            log.warning("session_transient_failure", session=session.fingerprint, error=error.message)

    def record_limit(self, session: Session, limit: Limit) -> None:
        """Act on the stream's ``message_limit``: park at once when exceeded, else note pressure."""
        if limit.exceeded:
            now = self.clock()
            until = clamp_reset(limit.resets_at, now) or now + self.cooldown_default
            self._park(session, State.COOLING, "usage limit reached", until)
            return
        utilizations = [w.utilization for w in limit.windows if w.utilization is not None]
        session.pressure = max(utilizations, default=0.0)

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

    def unavailable(self, model: str | None) -> NoSessionAvailable:
        """Why no session can serve ``model`` right now (the facts; the client's error is the failover's)."""
        if not self.sessions:
            return NoSessionAvailable(Refusal.NO_SESSION_CONFIGURED)
        cooling = [s.until for s in self.sessions if s.state is State.COOLING and s.until]
        if cooling:
            return NoSessionAvailable(Failure.RATE_LIMITED, reset_at=min(cooling))
        blocked = [s.reason for s in self.sessions if s.state is State.BLOCKED]
        if blocked:
            return NoSessionAvailable(Failure.BLOCKED, blocked[0])
        healthy = [s for s in self.sessions if s.state is State.HEALTHY]
        if model and healthy and all(model in s.denied_models for s in healthy):
            return NoSessionAvailable(Failure.MODEL_NOT_ALLOWED)
        if healthy:
            return NoSessionAvailable(Refusal.ALL_SESSIONS_FAILED)
        reasons = sorted({f"{s.state.value}: {s.reason}" for s in self.sessions})
        return NoSessionAvailable(Refusal.NO_USABLE_SESSION, f"{len(self.sessions)} configured; " + "; ".join(reasons))

    def snapshot(self) -> list[dict[str, Any]]:
        now = self.clock()
        for s in self.sessions:
            s.refresh(now)
        pending = self.pending_cleanup()
        return [s.describe(pending.get(statefile.state_id(s.key), 0)) for s in self.sessions]
