"""The result: conditions of the run, one table (metric | direct | proxied | added | target | met?)
and the JSON file with everything."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import resource
import sys
from pathlib import Path

from . import procs


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str | None:
    """The checked-out commit, read from .git (best effort, no git command)."""
    git = procs.ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def conditions(*, pin: dict, sizes: dict, uvloop: bool, quick: bool, nofile: tuple[int, int]) -> dict:
    import aiohttp.http_parser

    c_parser = aiohttp.http_parser.HttpResponseParser.__module__ == "aiohttp._http_parser"
    return {
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "aiohttp_c_parser": c_parser,
        "uvloop": _version("uvloop") if uvloop else None,
        "claude2api": _version("claude2api"),
        "commit": _commit(),
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "cpus_usable": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "pinning": pin,
        "nofile_limit": list(nofile),
        "cpu_time_source": procs.cpu_source(),
        "daemon": "python -m claude2api, EVENT_LOOP=" + ("uvloop" if uvloop else "asyncio")
        + ", LOG_LEVEL=info (access line per request, JSON to a file), CHAT_DELETE=true",
        "mode": "quick" if quick else "full",
        "sizes": sizes,
        "executable": sys.executable,
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


# -- the table -----------------------------------------------------------------------------------


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _met(value: object, ok) -> str:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return "yes" if ok(value) else "NO"


def rows(results: dict) -> list[list[str]]:
    """Table rows from the scenarios that ran: metric, direct, proxied, added, floor, target, met?

    ``floor`` is what the minimal relay adds (``--floor``), "-" when it did not run.
    """
    out: list[list[str]] = []

    def add(metric, direct, proxied, added, target="-", met="", floor="-") -> None:
        out.append([metric, direct, proxied, added, floor, target, met])

    lat = results.get("latency")
    if lat:
        for key in ("c1", "c64"):
            e = lat[key]
            for metric, label in (("ttft_ms", "first token"), ("total_ms", "total")):
                for q in ("p50", "p99"):
                    m = e[metric]
                    added = m["added"][q]
                    target, met = "-", ""
                    if metric == "ttft_ms" and q == "p50":
                        target, met = "< 1 ms", _met(added, lambda v: v < 1.0)
                    floor = _fmt(m["floor_added"][q]) if "floor_added" in m else "-"
                    label_q = f"{label} {q}, c={e['concurrency']} (ms)"
                    add(label_q, _fmt(m["direct"][q]), _fmt(m["proxied"][q]), _fmt(added), target, met, floor)
    b = results.get("burst")
    if b:
        sm, fl = b["summary"], b.get("floor") or {}
        cpu = sm["daemon_cpu_us_per_event"]
        add(
            f"burst {b['deltas']} deltas: relay CPU per event (us)",
            "0",
            _fmt(cpu, 1),
            _fmt(cpu, 1),
            "< 50 us",
            _met(cpu, lambda v: v < 50),
            _fmt(fl.get("cpu_us_per_event"), 1),
        )
        ratio = sm["relayed_ratio"]
        add(
            "burst: relayed events/s (added = ratio)",
            _fmt(sm["direct_events_per_s"], 0),
            _fmt(sm["proxied_events_per_s"], 0),
            _fmt(ratio, 2) + "x",
            ">= 0.8x",
            _met(ratio, lambda v: v >= 0.8),
            _fmt(fl["relayed_ratio"], 2) + "x" if fl else "-",
        )
    h = results.get("hold")
    if h:
        sm, m, g, sat = h["summary"], h["memory"], h["gaps"], h["saturation"]
        rss = sm["daemon_rss_kb_per_stream"]
        add(
            f"{m['streams']} open streams ({m['pace_ms']:g} ms pace): RSS per stream (KB)",
            "0",
            _fmt(rss, 1),
            _fmt(rss, 1),
            "< 40 KB",
            _met(rss, lambda v: v < 40),
            _fmt(sm.get("floor_rss_kb_per_stream"), 1),
        )
        label = f"{g['streams']} streams at {g['pace_ms']:g} ms"
        for q in ("p50", "p99"):
            added = sm[f"added_gap_{q}_ms"]
            add(
                f"{label}: inter-event gap {q} (ms)",
                _fmt(g["direct"]["gap_ms"][q]),
                _fmt(g["proxied"]["gap_ms"][q]),
                _fmt(added),
                "< 2 ms" if q == "p99" else "-",
                _met(added, lambda v: v < 2.0) if q == "p99" else "",
                _fmt(sm.get(f"floor_added_gap_{q}_ms")),
            )
        add(
            f"{label}: relay CPU per event (us)",
            "0",
            _fmt(sm["daemon_cpu_us_per_event_paced"], 1),
            _fmt(sm["daemon_cpu_us_per_event_paced"], 1),
            floor=_fmt(sm.get("floor_cpu_us_per_event_paced"), 1),
        )
        bunched = sm["proxied_bunched_share"] - sm["direct_bunched_share"]
        add(
            f"{label}: share of gaps < pace/2 (re-batching)",
            _fmt(sm["direct_bunched_share"], 4),
            _fmt(sm["proxied_bunched_share"], 4),
            _fmt(bunched, 4),
            "~ 0",
            _met(bunched, lambda v: v < 0.01),
        )
        add(
            f"{label}: events per client read",
            _fmt(g["direct"]["events_per_read"]),
            _fmt(sm["proxied_events_per_read"]),
            "-",
            "~ 1",
        )
        add(
            f"{sat['streams']} streams at {sat['pace_ms']:g} ms: delivered events/s (ratio)",
            _fmt(sm["saturation_direct_events_per_s"], 0),
            _fmt(sm["saturation_proxied_events_per_s"], 0),
            _fmt(sm["saturation_ratio"], 2) + "x",
            f"offered {sat['offered_events_per_s']:.0f}",
        )
    f = results.get("failure")
    if f:
        sm = f["summary"]
        add(
            "client disconnect -> stop_response at upstream (ms)",
            _fmt(sm["direct_disconnect_to_stop_ms"]),
            _fmt(sm["proxied_disconnect_to_stop_ms"]),
            _fmt(sm["added_disconnect_to_stop_ms"]),
        )
        add(
            f"upstream stall -> client error, read timeout {f['read_timeout_s']:g} s (ms)",
            _fmt(sm["direct_stall_to_error_ms"]),
            _fmt(sm["proxied_stall_to_error_ms"]),
            _fmt(sm["added_stall_to_error_ms"]),
        )
    t = results.get("tools")
    if t:
        sm, m = t["summary"], t["first_call_to_finish_ms"]
        label = f"tool turns, {t['calls']} calls x {t['deltas']} fragments"
        cpu = sm["daemon_cpu_us_per_event"]
        add(f"{label}: relay CPU per fragment (us)", "0", _fmt(cpu, 1), _fmt(cpu, 1))
        for q in ("p50", "p99"):
            add(
                f"{label}: first call -> finish {q} (ms)",
                _fmt(m["direct"][q]),
                _fmt(m["proxied"][q]),
                _fmt(m["added"][q]),
            )
    return out


HEADER = ["metric", "direct", "proxied", "added", "bare relay added", "target", "met?"]


def table(results: dict) -> str:
    """Markdown table, as printed and as pasted into the README (the floor column only with --floor)."""
    body = rows(results)
    header, align = HEADER, ["<", ">", ">", ">", ">", "<", "<"]
    if all(r[4] == "-" for r in body):
        header, align = header[:4] + header[5:], align[:4] + align[5:]
        body = [r[:4] + r[5:] for r in body]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths, strict=True)) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == ">" else ("-" * (w + 2)) for a, w in zip(align, widths, strict=True)
        )
        + "|"
    )
    return "\n".join([line(header), sep, *(line(r) for r in body)])


def conditions_line(cond: dict) -> str:
    pin = cond["pinning"]
    pinned = (
        f"daemon on CPU{pin['daemon'][0]}, fake + client on CPU{pin['fake'][0]}"
        if pin["daemon"]
        else "not pinned"
    )
    loop = f"uvloop {cond['uvloop']}" if cond["uvloop"] else "asyncio loop"
    return (
        f"{cond['cpu_model']}, {cond['nproc']} CPUs, Linux {cond['kernel']}; Python {cond['python']}, "
        f"aiohttp {cond['aiohttp']} (C parser: {cond['aiohttp_c_parser']}), {loop}; {pinned}; "
        f"{cond['mode']} mode; upstream transport {cond.get('transport', 'aiohttp')}"
    )
