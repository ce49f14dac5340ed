"""``claude2api doctor``: for each account, which way to claude.ai gets through, and what to change.

Every path is tried with one cheap call (the organizations list): aiohttp and the impersonating
transport (when curl_cffi is installed), each direct and through the account's proxy (its own,
else ``PROXY``). Each path gets fresh transports and a fresh jar (seeded with the account's
configured browser cookie), so one path's Cloudflare cookies cannot help another. The advice
names the account by fingerprint and the proxy without its password. Exit status 1 when some
account has no working path at all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from claude2api.config import SessionSpec, Settings
from claude2api.core.failures import Failure, UpstreamError
from claude2api.upstream import impersonate
from claude2api.upstream.client import ClaudeWebClient
from claude2api.upstream.egress import AIOHTTP, IMPERSONATE, describe_egress, make_transport, transport_kind

OK = "ok"
INSTALL_HINT = "install the impersonate extra: pip install 'claude2api[impersonate]'"


@dataclass
class PathResult:
    account: str  # fingerprint
    transport: str  # aiohttp | impersonate
    egress: str  # direct | redacted proxy URL
    proxy: str | None
    outcome: str  # ok | blocked | dead | disabled | unreachable | error
    detail: str = ""
    configured: bool = False  # the path the daemon uses for this account


def _outcome(error: UpstreamError) -> str:
    return {
        Failure.BLOCKED: "blocked",
        Failure.DEAD: "dead",
        Failure.DISABLED: "disabled",
        Failure.TRANSIENT: "unreachable",
    }.get(error.failure, "error")


async def try_path(settings: Settings, spec: SessionSpec, kind: str, proxy: str | None) -> tuple[str, str]:
    """One organizations call for ``spec`` through ``kind`` and ``proxy``: (outcome, detail)."""
    transport = make_transport(settings, kind, proxy)
    try:
        client = ClaudeWebClient(transport, settings.claude_base_url)
        client.bind(spec.key, transport, cookie=spec.cookie, user_agent=spec.user_agent)
        async with asyncio.timeout(settings.upstream_first_byte_timeout):
            await client.organizations(spec.key)
    except TimeoutError:
        return "unreachable", "claude.ai did not answer in time"
    except UpstreamError as exc:
        return _outcome(exc), exc.message
    except ValueError as exc:  # a proxy scheme this transport cannot use
        return "error", str(exc)
    finally:
        await transport.close()
    return OK, ""


async def diagnose(settings: Settings) -> list[PathResult]:
    configured_kind = transport_kind(settings.upstream_transport)
    kinds = [AIOHTTP, IMPERSONATE] if impersonate.available() else [AIOHTTP]
    jobs: list[tuple[PathResult, asyncio.Task[tuple[str, str]]]] = []
    async with asyncio.TaskGroup() as group:
        for spec in settings.sessions:
            proxy = spec.proxy or settings.proxy
            egresses = [None, proxy] if proxy else [None]
            for kind in kinds:
                for egress in egresses:
                    result = PathResult(
                        spec.fingerprint,
                        kind,
                        describe_egress(egress),
                        egress,
                        "",
                        configured=kind == configured_kind and egress == proxy,
                    )
                    jobs.append((result, group.create_task(try_path(settings, spec, kind, egress))))
    for result, task in jobs:
        result.outcome, result.detail = task.result()
    return [result for result, _ in jobs]


def advice(settings: Settings, results: list[PathResult]) -> list[str]:
    """What to change, one line per account that needs something."""
    lines: list[str] = []
    for spec in settings.sessions:
        mine = [r for r in results if r.account == spec.fingerprint]
        working = [r for r in mine if r.outcome == OK]
        configured = next((r for r in mine if r.configured), None)
        name = f"account {spec.fingerprint}"
        if any(r.outcome in ("dead", "disabled") for r in mine) and not working:
            lines.append(f"{name}: the key is dead or the account disabled: copy a fresh sessionKey from the browser")
        elif not working:
            blocked = [r for r in mine if r.outcome == "blocked"]
            if blocked and not impersonate.available():
                lines.append(f"{name}: Cloudflare challenges plain TLS from here: {INSTALL_HINT}")
            if blocked:
                lines.append(
                    f"{name}: every path is challenged (your IP is): use a residential proxy for this account"
                    " (sessions: entry with proxy:, or key@proxy-url in SESSIONS)"
                )
            else:
                lines.append(f"{name}: claude.ai could not be reached at all: check the network and the proxy")
        elif configured is None or configured.outcome != OK:
            best = next((r for r in working if r.transport == IMPERSONATE), working[0])
            change = []
            if configured is None or best.transport != configured.transport:
                change.append(f"UPSTREAM_TRANSPORT={best.transport}")
            if configured is None or best.proxy != configured.proxy:
                change.append(f"egress {best.egress}" + (" (drop its proxy)" if best.proxy is None else ""))
            lines.append(f"{name}: the daemon's path fails; {', '.join(change)} works")
    if not impersonate.available() and not lines:
        lines.append(f"everything gets through; on a server, still consider: {INSTALL_HINT}")
    return lines


def render(results: list[PathResult]) -> str:
    header = ("SESSION", "TRANSPORT", "EGRESS", "RESULT", "DETAIL")
    rows = [
        (r.account, r.transport + ("*" if r.configured else ""), r.egress, r.outcome, r.detail or "-")
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    out = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in (header, *rows)]
    out.append("(* = the path the daemon uses now)")
    return "\n".join(out)


async def run_doctor(settings: Settings) -> int:
    """Print the table and the advice; 1 when some account has no working path."""
    results = await diagnose(settings)
    print(render(results))
    lines = advice(settings, results)
    if lines:
        print()
        print("\n".join(lines))
    stuck = {r.account for r in results} - {r.account for r in results if r.outcome == OK}
    return 1 if stuck else 0
