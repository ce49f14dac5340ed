"""``claude2api sessions``: check every configured key against claude.ai, in parallel, and say
which account is healthy, dead, rate-limited until when, blocked by Cloudflare (an IP problem), or
could not be checked because claude.ai did not answer (``unreachable``). Accounts are judged by the
pool's own rules (:func:`~claude2api.accounts.resolve.resolve_account`: banned or restricted flags).

Each account is checked the way the daemon would reach claude.ai for it (transport, its egress,
its cookies and device id), and the report says which that was and what the state means: a
``blocked`` account's IP (or proxy) is challenged and its key is probably fine; a ``dead`` one's
key is no good wherever it goes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude2api.accounts import statefile
from claude2api.accounts.pool import STATE_OF_FAILURE, Session, State, describe_window
from claude2api.accounts.resolve import resolve_account
from claude2api.config import Settings
from claude2api.core.failures import UpstreamError, iso_time
from claude2api.core.limits import SESSION, parse_usage
from claude2api.logs import fingerprint
from claude2api.upstream.client import Account, ClaudeWebClient
from claude2api.upstream.egress import Egresses, describe_egress

#: Neither healthy nor a known failure: claude.ai (or the way to it) did not give an answer.
UNREACHABLE = "unreachable"



@dataclass
class SessionReport:
    fingerprint: str
    org_id: str | None = None
    plan: str | None = None
    state: str = State.HEALTHY.value
    reason: str = ""
    resets_at: str | None = None
    utilization: float | None = None  # five-hour window, percent
    #: Every usage window ``/usage`` reports (5-hour, 7-day, per-model, ``limits[]``, spend).
    windows: list[dict[str, Any]] = field(default_factory=list)
    transport: str = ""
    egress: str = ""

    @property
    def hint(self) -> str:
        """What the state means for the operator."""
        return HINTS.get(self.state, "")

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "hint": self.hint}


HINTS = {
    State.BLOCKED.value: "your IP (or proxy) is challenged by Cloudflare, the key is probably fine: see claude2api doctor",
    State.DEAD.value: "your key is dead: copy a fresh sessionKey from the browser",
    State.DISABLED.value: "the account or its organization is disabled",
    UNREACHABLE: "claude.ai could not be reached this way: see claude2api doctor",
}


async def check_sessions(settings: Settings, now: float) -> list[SessionReport]:
    """Every configured account, checked in parallel through its own egress."""
    saved = statefile.load(Path(settings.state_file)) if settings.state_file else statefile.SavedState()
    egresses = Egresses(settings)
    client = ClaudeWebClient(egresses.default(), settings.claude_base_url)
    parked = []
    for spec in settings.sessions:
        session = Session(key=spec.key)
        record = saved.sessions.get(statefile.state_id(spec.key))
        restored = record is not None and session.restore(record, now, settings.cooldown_default_seconds)
        parked.append(session if restored else None)
        client.bind(
            spec.key,
            egresses.for_account(spec),
            device_id=session.device_id,
            cookie=spec.cookie,
            user_agent=spec.user_agent,
        )
    try:
        reports = await asyncio.gather(
            *(
                check_one(client, spec.key, spec.org_id, saved_session, now)
                for spec, saved_session in zip(settings.sessions, parked, strict=True)
            )
        )
    finally:
        await egresses.close()
    for report, spec in zip(reports, settings.sessions, strict=True):
        transport = client.wire(spec.key).transport
        report.transport, report.egress = transport.name, describe_egress(transport.proxy)
    return list(reports)


async def check_one(
    client: ClaudeWebClient, key: str, org_id: str | None, saved: Session | None, now: float
) -> SessionReport:
    """One account's report; ``saved`` is its state-file view, which tells a still-running cool-down."""
    report = SessionReport(fingerprint(key), org_id=org_id)
    try:
        resolved = await resolve_account(client, key, org_id, now)
        report.org_id, report.plan = resolved.org_id, resolved.plan
        if resolved.flagged is not None:
            raise resolved.flagged
        usage = parse_usage(await client.usage(Account(key, report.org_id)))
        report.windows = [describe_window(w) for w in usage.windows]
        session_window = next((w for w in usage.windows if w.key == "five_hour" and w.period == SESSION), None)
        if session_window is not None and session_window.utilization is not None:
            report.utilization = round(session_window.utilization * 100, 2)
            resets_at = session_window.resets_at
            report.resets_at = iso_time(resets_at) if resets_at is not None and resets_at > now else None
    except UpstreamError as exc:
        state = STATE_OF_FAILURE.get(exc.failure)
        report.state = state.value if state is not None else UNREACHABLE
        report.reason = exc.message
        if exc.reset_at:
            report.resets_at = iso_time(exc.reset_at)
        return report
    if saved is not None and saved.state is State.COOLING and saved.until is not None:
        report.state, report.reason, report.resets_at = State.COOLING.value, saved.reason, iso_time(saved.until)
    return report


def render_table(reports: list[SessionReport]) -> str:
    header = ("SESSION", "ORG", "PLAN", "TRANSPORT", "EGRESS", "STATE", "5H USE", "RESETS", "WINDOWS", "REASON")
    rows = [
        (
            r.fingerprint,
            r.org_id or "-",
            r.plan or "-",
            r.transport or "-",
            r.egress or "-",
            r.state,
            f"{r.utilization:g}%" if r.utilization is not None else "-",
            r.resets_at or "-",
            window_summary(r.windows) or "-",
            f"{r.reason} -> {r.hint}" if r.reason and r.hint else r.reason or "-",
        )
        for r in reports
    ]
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def window_summary(windows: list[dict[str, Any]]) -> str:
    """``five_hour 12% · seven_day 40% · seven_day_opus(opus) 100%!``: every window that reports a use."""
    parts = []
    for window in windows:
        if window.get("utilization") is None:
            continue
        name = window["key"] + (f"({window['model']})" if window.get("model") else "")
        parts.append(f"{name} {window['utilization'] * 100:g}%" + ("!" if window.get("exceeded") else ""))
    return " · ".join(parts)
