"""claude2api benchmark: what the daemon adds between a client and claude.ai.

    .venv/bin/python bench/run.py [--quick] [--scenarios 1,2,3,4,5] [--json PATH] [--loop uvloop|asyncio]
        [--transport aiohttp|impersonate]

Starts the fake claude.ai (``bench/fake_server.py``) and the daemon (``python -m claude2api``) as
separate processes, the daemon pinned alone to the first CPU and the fake plus this client to
the second; runs every scenario direct (client -> fake) and proxied (client -> daemon -> fake);
prints one table and writes a JSON result with the conditions (default
``bench/results/latest.json``). ``--quick`` runs tiny sizes in a few seconds (the CI smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import procs, report
from bench.clients import DirectClient, ProxiedClient, new_session
from bench.scenarios import FULL_SIZES, QUICK_SIZES, SCENARIOS, Context

#: Foreign CPU use (cores) above which the run is flagged as disturbed.
FOREIGN_WARNING = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (CI smoke)")
    parser.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated subset of 1,2,3,4,5")
    parser.add_argument("--json", default=str(procs.BENCH / "results" / "latest.json"), help="result file")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        help="the daemon's event loop (EVENT_LOOP); default: uvloop when installed, as the daemon does",
    )
    parser.add_argument(
        "--transport",
        choices=("aiohttp", "impersonate"),
        default="aiohttp",
        help="the daemon's UPSTREAM_TRANSPORT (impersonate needs curl_cffi); default aiohttp, the baseline",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run scenarios 1-3 through bench/bare_relay.py, a minimal aiohttp relay: this machine's floor",
    )
    parser.add_argument(
        "--streams", type=int, help="scenario 3: streams held open (memory, saturation steps)"
    )
    parser.add_argument("--pace-ms", type=float, help="scenario 3: pace between deltas in the gaps step")
    parser.add_argument("--deltas", type=int, help="scenario 2: deltas in the burst stream")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each scenario wait up to S seconds for other processes to leave the CPUs idle",
    )
    args = parser.parse_args(argv)
    args.uvloop = args.loop == "uvloop"
    return args


def _sizes(args: argparse.Namespace, nofile: int) -> tuple[dict, list[str]]:
    sizes = copy.deepcopy(QUICK_SIZES if args.quick else FULL_SIZES)
    notes = []
    hold = sizes["hold"]
    if args.streams:
        hold["memory"]["streams"] = hold["saturation"]["streams"] = args.streams
    if args.pace_ms is not None:
        hold["gaps"]["pace_ms"] = args.pace_ms
    if args.deltas:
        sizes["burst"]["deltas"] = args.deltas
    # Each open stream holds two sockets in the daemon (the fake and the client hold one each).
    ceiling = (nofile - 100) // 2
    for step in ("memory", "saturation"):
        if hold[step]["streams"] > ceiling:
            notes.append(
                f"scenario 3 {step}: scaled down from {hold[step]['streams']} to {ceiling} streams "
                f"(open-file limit {nofile})"
            )
            hold[step]["streams"] = ceiling
    return sizes, notes


async def run(args: argparse.Namespace, results_dir: Path) -> dict:
    nofile = procs.raise_nofile()
    pin = procs.pinning()
    if pin["client"]:
        os.sched_setaffinity(0, pin["client"])
    sizes, notes = _sizes(args, nofile[0])
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; expected some of {sorted(SCENARIOS)}")
    fake = procs.start_fake(results_dir, pin["fake"])
    daemon = floor = None
    loads: list[dict] = []
    try:
        daemon = procs.start_daemon(
            results_dir, fake, pin["daemon"], uvloop=args.uvloop, env={"UPSTREAM_TRANSPORT": args.transport}
        )
        if args.floor:  # idle while the daemon is measured, and the other way round
            floor = procs.start_floor(results_dir, fake, pin["daemon"], uvloop=args.uvloop)
        async with new_session() as direct_http, new_session() as proxied_http, new_session() as floor_http:
            ctx = Context(
                fake=fake,
                daemon=daemon,
                direct=DirectClient(direct_http, fake.info),
                proxied=ProxiedClient(proxied_http, daemon.info["url"], procs.API_KEY),
                sizes=sizes,
                results_dir=results_dir,
                pin=pin,
                uvloop=args.uvloop,
                transport=args.transport,
                floor_proc=floor,
                floor=DirectClient(floor_http, {**fake.info, "base_url": floor.info["url"]})
                if floor
                else None,
            )
            out: dict = {}
            for number in wanted:
                name, scenario = SCENARIOS[number]
                if args.wait_quiet:
                    await _wait_quiet(ctx, args.wait_quiet)
                started = time.monotonic()
                print(f"scenario {number} ({name}) ...", file=sys.stderr, flush=True)
                out[name] = await scenario(ctx)
                out[name]["seconds"] = round(time.monotonic() - started, 1)
            out["daemon_access_lines"] = _count_access_lines(daemon.log_path)
            loads = ctx.loads
    finally:
        for proc in (daemon, floor):
            if proc is not None:
                proc.stop()
        fake.stop()
    cond = report.conditions(pin=pin, sizes=sizes, uvloop=args.uvloop, quick=args.quick, nofile=nofile)
    cond["transport"] = args.transport
    cond["floor"] = "bench/bare_relay.py (minimal aiohttp relay), same pinning" if args.floor else None
    foreign = max((load["foreign_cores"] for load in loads), default=0.0)
    cond["max_foreign_cores"] = foreign
    if foreign > FOREIGN_WARNING:
        notes.append(
            f"other processes used up to {foreign:.2f} cores during a phase (see loads in the JSON): "
            "figures of those phases are disturbed; rerun on a quiet machine"
        )
    cond["notes"] = notes
    return {"conditions": cond, "scenarios": out, "loads": loads}


async def _wait_quiet(ctx: Context, limit: float) -> None:
    """Wait (at most ``limit`` s) for a 1-second window in which other processes used < 0.05 cores."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        meter = ctx.meter()
        await asyncio.sleep(1.0)
        if meter.read()["foreign_cores"] < 0.05:
            return
    print("machine not quiet; going on", file=sys.stderr, flush=True)


def _count_access_lines(path: Path) -> int:
    """Requests the daemon logged (sanity check that the access line was on)."""
    count = 0
    with path.open("rb") as f:
        for line in f:
            if b'"event": "request"' in line:
                count += 1
    return count


def _clean(obj):
    """JSON has no NaN/Infinity: write null instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.uvloop and importlib.util.find_spec("uvloop") is None:
        raise SystemExit("--loop uvloop: uvloop is not installed")
    results_dir = Path(args.json).resolve().parent
    results_dir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args, results_dir))
    result["table"] = report.rows(result["scenarios"])
    Path(args.json).write_text(json.dumps(_clean(result), indent=2) + "\n")
    print(report.table(result["scenarios"]))
    print()
    print("Conditions: " + report.conditions_line(result["conditions"]))
    for note in result["conditions"]["notes"]:
        print("Note: " + note)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
