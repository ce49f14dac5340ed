"""Session failover: the last middleware before the claude.ai attempt (:mod:`claude2api.pipeline.attempt`).

It picks a session, tries the next on an account-level failure before any content, and turns
what went wrong into the one client error (:data:`~claude2api.core.failures.CLIENT_ERRORS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from claude2api.accounts.pool import NoSessionAvailable, Session
from claude2api.core.failures import (
    CLIENT_ERRORS,
    APIError,
    Failure,
    Refusal,
    UpstreamError,
    rate_limited_error,
    upstream_api_error,
)
from claude2api.core.types import ChatContext, ChatHandler, ChatMiddleware, Event, Limit
from claude2api.logs import get_logger

log = get_logger(__name__)

# Which failure a client hears about when several accounts failed differently: the one that says
# most about what to do next (an IP block beats everything; a dead key is the last resort).
_FAILURE_PRIORITY = (
    Failure.BLOCKED,
    Failure.TRANSIENT,
    Failure.OVERLOADED,
    Failure.UNKNOWN,
    Failure.RATE_LIMITED,
    Failure.REQUEST_RATE,
    Failure.MODEL_NOT_ALLOWED,
    Failure.DISABLED,
    Failure.DEAD,
)


def retry_over_sessions_factory(settings: Any) -> ChatMiddleware:
    """Pick a healthy session; on an account-level failure before any content, try the next.

    Once a content event has been passed on, the response is committed to that account: a later
    failure goes to the client as an in-band error, never as a second stream spliced onto the first.
    Everything before that (waiting for a session, every attempt) must fit in ``request_deadline``,
    else the client gets a 504. A mirror-mode request makes one attempt with the caller's own key
    and leaves the pool (and its state file) alone.
    """
    attempts_max = max(1, settings.retry_count)

    async def retry_over_sessions(ctx: ChatContext, call_next: ChatHandler) -> AsyncIterator[Event]:
        services = ctx.internal
        pool = services.pool
        model = ctx.request.upstream_model
        failures: list[UpstreamError] = []
        tried: set[Session] = set()
        mirror_session = ctx.mirror_session
        mirror = mirror_session is not None
        # Only the accounts whose model list has the model (None: any; the pool says when none does).
        allowed = None if mirror or model is None else services.catalog.accounts_for(model)
        deadline = asyncio.timeout(ctx.settings.request_deadline)
        try:
            async with deadline:
                for _ in range(1 if mirror else attempts_max):
                    if mirror_session is not None:
                        session = mirror_session
                    else:
                        try:
                            session = await pool.acquire(model, tried, ctx.settings.session_wait_timeout, allowed)
                        except NoSessionAvailable as exc:
                            if failures:
                                break
                            raise no_session_error(exc, ctx) from None
                    tried.add(session)
                    ctx.session = session
                    ctx.record.accounts_tried = len(tried)
                    ctx.record.account = session.fingerprint
                    committed = False
                    try:
                        async for event in call_next(ctx):
                            if isinstance(event, Limit):
                                if not mirror:
                                    pool.record_limit(session, event, model)
                            elif not committed:
                                committed = True
                                deadline.reschedule(None)
                            yield event
                        if not mirror:
                            pool.record_success(session)
                        return
                    except UpstreamError as exc:
                        ctx.record.upstream_failures.append(exc.failure.value)
                        log.warning(
                            "upstream_attempt_failed",
                            session=session.fingerprint,
                            failure=exc.failure.value,
                            error=exc.message,
                            committed=committed,
                        )
                        if mirror:
                            if exc.failure in (Failure.DEAD, Failure.DISABLED):
                                services.remember_rejected_mirror_key(session.key)
                        else:
                            pool.record_failure(session, exc, model)
                        if committed:
                            raise
                        if services.cutting:
                            raise shutting_down_error() from None
                        failures.append(exc)
                    finally:
                        if not mirror:
                            pool.release(session)
                raise final_error(failures, ctx, model) from None
        except TimeoutError:
            if not deadline.expired():
                raise
            raise CLIENT_ERRORS[Refusal.DEADLINE].error(
                f"claude.ai sent no reply within {ctx.settings.request_deadline:g} s (REQUEST_DEADLINE)"
            ) from None

    return retry_over_sessions


def shutting_down_error() -> APIError:
    return CLIENT_ERRORS[Refusal.SHUTTING_DOWN].error("claude2api is shutting down; try again")


def final_error(failures: list[UpstreamError], ctx: ChatContext, model: str | None) -> APIError:
    """The one error a client gets after every attempt failed before any content: the failure
    that says most (:data:`_FAILURE_PRIORITY`), as :data:`CLIENT_ERRORS` words it."""
    if not failures:
        return no_session_error(ctx.internal.pool.unavailable(model, _allowed(ctx, model)), ctx)
    by_kind: dict[Failure, list[UpstreamError]] = {}
    for failure in failures:
        by_kind.setdefault(failure.failure, []).append(failure)
    kind = next(k for k in _FAILURE_PRIORITY if k in by_kind)
    last = by_kind[kind][-1]
    if kind in (Failure.RATE_LIMITED, Failure.REQUEST_RATE):
        now = ctx.internal.clock()
        settings = ctx.settings
        resets = [f.reset_at or now + settings.cooldown_default_seconds for f in by_kind.get(Failure.RATE_LIMITED, [])]
        resets += [
            f.reset_at or now + settings.request_rate_cooldown_seconds for f in by_kind.get(Failure.REQUEST_RATE, [])
        ]
        return rate_limited_error(min(resets), now)
    if kind is Failure.MODEL_NOT_ALLOWED:
        return _model_not_allowed(ctx)
    if kind in (Failure.DEAD, Failure.DISABLED):
        if ctx.mirror_session is not None:
            return CLIENT_ERRORS[Refusal.MIRROR_KEY_REJECTED].error(f"claude.ai rejected the session key ({last.message})")
        return no_session_error(ctx.internal.pool.unavailable(model, _allowed(ctx, model)), ctx)
    return upstream_api_error(last)


def _allowed(ctx: ChatContext, model: str | None) -> frozenset[str] | None:
    return None if model is None else ctx.internal.catalog.accounts_for(model)


def no_session_error(exc: NoSessionAvailable, ctx: ChatContext) -> APIError:
    """What the client hears when the pool has no session for it (the pool says why, not how)."""
    reason = exc.reason
    if reason is Failure.RATE_LIMITED:
        return rate_limited_error(exc.reset_at or ctx.internal.clock(), ctx.internal.clock())
    if reason is Failure.MODEL_NOT_ALLOWED:
        return _model_not_allowed(ctx)
    kind = CLIENT_ERRORS[reason]
    if reason is Failure.BLOCKED:
        return kind.error(exc.detail)
    if reason is Refusal.SESSIONS_BUSY:
        message = f"every claude.ai session is busy ({exc.detail}); try again shortly"
        return kind.error(message, headers={"retry-after": "2"})
    if reason is Refusal.NO_USABLE_SESSION:
        return kind.error(f"no usable claude.ai session ({exc.detail})")
    if reason is Refusal.NO_SESSION_CONFIGURED:
        return kind.error("no claude.ai session is configured")
    return kind.error("every claude.ai session failed this request")


def _model_not_allowed(ctx: ChatContext) -> APIError:
    where = "this claude.ai account" if ctx.mirror_session is not None else "any configured claude.ai account"
    return CLIENT_ERRORS[Failure.MODEL_NOT_ALLOWED].error(
        f"the model `{ctx.request.model}` is not available on {where}", param="model"
    )
