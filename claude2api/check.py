"""``claude2api sessions``: check every configured key against claude.ai, in parallel, and say
which account is healthy, dead, rate-limited until when, or blocked by Cloudflare (an IP problem)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import statefile
from .config import Settings
from .errors import Failure, UpstreamError
from .logs import fingerprint
from .sessions import State, iso_time, plan_of
from .upstream.client import Account, ClaudeWebClient, as_float, choose_organization

_FAILURE_STATES = {
    Failure.DEAD: State.DEAD,
    Failure.DISABLED: State.DISABLED,
    Failure.BLOCKED: State.BLOCKED,
    Failure.RATE_LIMITED: State.COOLING,
    Failure.REQUEST_RATE: State.COOLING,
}


@dataclass
class SessionReport:
    fingerprint: str
    org_id: str | None = None
    plan: str | None = None
    state: str = State.HEALTHY.value
    reason: str = ""
    resets_at: str | None = None
    utilization: float | None = None  # five-hour window, percent

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def check_sessions(settings: Settings, client: ClaudeWebClient, now: float) -> list[SessionReport]:
    saved = statefile.load(Path(settings.state_file)) if settings.state_file else {}
    return list(
        await asyncio.gather(
            *(
                check_one(client, spec.key, spec.org_id, saved.get(statefile.state_id(spec.key)), now)
                for spec in settings.sessions
            )
        )
    )


async def check_one(
    client: ClaudeWebClient, key: str, org_id: str | None, saved: dict[str, Any] | None, now: float
) -> SessionReport:
    report = SessionReport(fingerprint(key), org_id=org_id)
    try:
        orgs = await client.organizations(key)
        org = next((o for o in orgs if o.get("uuid") == org_id), None) if org_id else choose_organization(orgs)
        if org is None:
            report.state, report.reason = State.DISABLED.value, "no organization that can chat"
            return report
        report.org_id, report.plan = str(org["uuid"]), plan_of(org)
        usage = await client.usage(Account(key, report.org_id))
        five_hour = usage.get("five_hour") if isinstance(usage, dict) else None
        if isinstance(five_hour, dict):
            report.utilization = as_float(five_hour.get("utilization"))
            report.resets_at = five_hour.get("resets_at")
    except UpstreamError as exc:
        report.state = _FAILURE_STATES.get(exc.failure, State.HEALTHY).value
        report.reason = exc.message
        if exc.reset_at:
            report.resets_at = iso_time(exc.reset_at)
        return report
    until = saved.get("until") if saved else None
    if saved and saved.get("state") == State.COOLING.value and isinstance(until, (int, float)) and until > now:
        report.state, report.reason, report.resets_at = State.COOLING.value, saved.get("reason", ""), iso_time(until)
    return report


def render_table(reports: list[SessionReport]) -> str:
    header = ("SESSION", "ORG", "PLAN", "STATE", "5H USE", "RESETS", "REASON")
    rows = [
        (
            r.fingerprint,
            r.org_id or "-",
            r.plan or "-",
            r.state,
            f"{r.utilization:g}%" if r.utilization is not None else "-",
            r.resets_at or "-",
            r.reason or "-",
        )
        for r in reports
    ]
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)
