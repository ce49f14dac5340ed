"""The chat middleware chain and its two built-in ends: session failover and the claude.ai call.

A middleware is an async generator ``mw(ctx, call_next)`` that may change ``ctx`` and re-yields
(or rewrites) the events of ``call_next(ctx)``. The chain is, outermost first: plugins, prompt
building (role prefixes, artifacts instruction), history-to-file, image fetching,
retry-over-sessions, and finally :func:`claude_web`, which talks to claude.ai.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from claude2api.accounts.pool import NoSessionAvailable, blocked_error, rate_limited_error
from claude2api.core.failures import APIError, Failure, UpstreamError
from claude2api.core.types import ChatContext, ChatHandler, ChatMiddleware, Event, Limit
from claude2api.logs import get_logger

log = get_logger(__name__)

# Which failure a client hears about when several accounts failed differently: the one that says
# most about what to do next (an IP block beats everything; a dead key is the last resort).
_FAILURE_PRIORITY = (
    Failure.BLOCKED,
    Failure.TRANSIENT,
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
        services = ctx.services
        pool = services.pool
        model = ctx.request.upstream_model
        failures: list[UpstreamError] = []
        tried: set[Any] = set()
        mirror = ctx.mirror_session is not None
        deadline = asyncio.timeout(services.settings.request_deadline)
        try:
            async with deadline:
                for _ in range(1 if mirror else attempts_max):
                    if mirror:
                        session = ctx.mirror_session
                    else:
                        try:
                            session = await pool.acquire(model, tried, services.settings.session_wait_timeout)
                        except NoSessionAvailable as exc:
                            if failures:
                                break
                            raise exc.error from None
                    tried.add(session)
                    ctx.session = session
                    committed = False
                    try:
                        async for event in call_next(ctx):
                            if isinstance(event, Limit):
                                if not mirror:
                                    pool.record_limit(session, event)
                            elif not committed:
                                committed = True
                                deadline.reschedule(None)
                            yield event
                        if not mirror:
                            pool.record_success(session)
                        return
                    except UpstreamError as exc:
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
            raise APIError(
                504,
                f"claude.ai sent no reply within {services.settings.request_deadline:g} s (REQUEST_DEADLINE)",
                code="request_timeout",
            ) from None

    return retry_over_sessions


def shutting_down_error() -> APIError:
    return APIError(
        503, "claude2api is shutting down; try again", type="service_unavailable_error", code="shutting_down"
    )


def final_error(failures: list[UpstreamError], ctx: ChatContext, model: str | None) -> APIError:
    """The one error a client gets after every attempt failed before any content."""
    now = ctx.services.clock()
    if not failures:
        return ctx.services.pool.unavailable_error(model, now)
    by_kind: dict[Failure, list[UpstreamError]] = {}
    for failure in failures:
        by_kind.setdefault(failure.failure, []).append(failure)
    kind = next(k for k in _FAILURE_PRIORITY if k in by_kind)
    last = by_kind[kind][-1]
    mirror = ctx.mirror_session is not None
    if kind is Failure.BLOCKED:
        return blocked_error(last.message)
    if kind is Failure.TRANSIENT:
        if "overloaded" in last.message:
            return APIError(529, last.message, type="overloaded_error", code="overloaded")
        return APIError(502, last.message, type="server_error", code="upstream_error")
    if kind is Failure.UNKNOWN:
        return APIError(502, last.message, type="server_error", code="upstream_error")
    if kind in (Failure.RATE_LIMITED, Failure.REQUEST_RATE):
        settings = ctx.services.settings
        resets = [f.reset_at or now + settings.cooldown_default_seconds for f in by_kind.get(Failure.RATE_LIMITED, [])]
        resets += [
            f.reset_at or now + settings.request_rate_cooldown_seconds for f in by_kind.get(Failure.REQUEST_RATE, [])
        ]
        return rate_limited_error(min(resets), now)
    if kind is Failure.MODEL_NOT_ALLOWED:
        return APIError(
            403,
            f"the model `{ctx.request.model}` is not available on "
            + ("this claude.ai account" if mirror else "any configured claude.ai account"),
            code="model_not_allowed",
            param="model",
        )
    if mirror:
        return APIError(401, f"claude.ai rejected the session key ({last.message})", code="invalid_session_key")
    return ctx.services.pool.unavailable_error(model, now)


