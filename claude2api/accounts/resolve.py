"""Which claude.ai organization an account chats in, and whether claude.ai flagged it: one set of
rules, used by the session pool and by the ``claude2api sessions`` report alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from claude2api.core.failures import Failure, UpstreamError
from claude2api.core.resets import parse_instant, reset_time
from claude2api.upstream.client import ClaudeWebClient, canonical_org_id


@dataclass(frozen=True, slots=True)
class ResolvedAccount:
    org_id: str
    plan: str
    #: What the org's live ``active_flags`` mean (banned, restricted), if anything.
    flagged: UpstreamError | None


async def resolve_account(client: ClaudeWebClient, key: str, org_id: str | None, now: float) -> ResolvedAccount:
    """Look the account's organizations up and judge them (:func:`resolve_organization`)."""
    org, flagged = resolve_organization(await client.organizations(key), org_id, now)
    return ResolvedAccount(str(canonical_org_id(org["uuid"])), plan_of(org), flagged)


def resolve_organization(
    orgs: list[dict[str, Any]], org_id: str | None, now: float
) -> tuple[dict[str, Any], UpstreamError | None]:
    """The account's chat organization by the pool's rules, and the failure its ``active_flags``
    mean (banned, restricted) if any; the pool and ``claude2api sessions`` both judge accounts so.

    ``org_id`` (configured) picks that org; else :func:`choose_organization`. Raises
    :class:`UpstreamError` when there is none (orgs without a UUID id do not count).
    """
    if org_id is not None:
        org = next((o for o in orgs if isinstance(o, dict) and canonical_org_id(o.get("uuid")) == org_id), None)
    else:
        org = choose_organization(orgs)
    if org is None:
        raise UpstreamError(Failure.DISABLED, "the account has no organization that can chat")
    return org, account_flag_error(org, now)


def choose_organization(orgs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chat organization of an account.

    Orgs that can chat win, and among them the one with the most capabilities (clewdr's rule), so
    an API-only console org or a Max account's extra orgs do not break the lookup as they did in
    the original (yushangxiao/claude2api#18).
    """
    valid = [o for o in orgs if isinstance(o, dict) and canonical_org_id(o.get("uuid")) is not None]
    chat = [o for o in valid if "chat" in (o.get("capabilities") or [])]
    pool = chat or [o for o in valid if o.get("rate_limit_tier") == "default_claude_ai"] or valid
    if not pool:
        return None
    return max(pool, key=lambda o: len(o.get("capabilities") or []))


def account_flag_error(org: dict[str, Any], now: float) -> UpstreamError | None:
    """The org's live ``active_flags`` as a failure: banned is permanent, restricted lasts until its
    ``expires_at`` (docs/protocol.md §2.2 and §12). Warnings and expired flags change nothing."""
    for flag in org.get("active_flags") or []:
        if not isinstance(flag, dict):
            continue
        kind = str(flag.get("type") or "")
        expires = parse_instant(flag.get("expires_at"))
        if expires is not None and expires <= now:
            continue
        if "banned" in kind:
            return UpstreamError(Failure.DISABLED, f"claude.ai flagged the account ({kind})")
        if "restricted" in kind:
            return UpstreamError(
                Failure.RATE_LIMITED,
                f"claude.ai restricted the account ({kind})",
                reset_at=reset_time(flag.get("expires_at"), now),
            )
    return None


def plan_of(org: dict[str, Any]) -> str:
    caps = " ".join(str(c) for c in org.get("capabilities") or [])
    for marker in ("max", "enterprise", "raven", "pro"):
        if marker in caps:
            return marker
    return "free"
