"""The four scenarios. Each runs the same load direct and proxied and returns a result dict whose
``summary`` holds the headline numbers (the table and the smoke test read those).

1. ``latency``: added time to first token and total latency at concurrency 1 (one stream after
   another) and 64 (open-loop arrivals keeping 64 streams in flight). Streams are paced so that the
   shared core (fake + client) stays well below saturation, where queueing in the harness would
   swamp the hop cost (notes D.4); the measured load is reported.
2. ``burst``: one unpaced stream of many deltas: the daemon's CPU per relayed event (from /proc,
   valid whatever the other core does) and the relayed rate as a ratio to the direct rate.
3. ``hold``: many open streams. Three steps: memory (1,000 slow streams on a fresh daemon: RSS and
   fds per open stream), gaps (streams paced at 20 ms at a load the harness sustains: added
   inter-event gap and proof that frames are not re-batched) and saturation (1,000 streams at
   20 ms: delivered events/s, proxied vs direct, where the 2-core harness is the limit).
4. ``failure``: client disconnect -> ``stop_response`` at the fake; upstream stall -> the client
   sees the error (a second daemon with a short ``UPSTREAM_READ_TIMEOUT``).
5. ``tools``: streamed replies that end in client tool calls (OpenAI chat with ``tools``): the
   daemon's CPU per relayed argument fragment, and the time from the first tool-call event to the
   client's finish (direct: the upstream ping that tells the turn is paused; proxied: ``[DONE]``).

Every phase records the machine's load (``procs.LoadMeter``), including CPU used by processes
that are not ours: on a shared box that is what makes a figure unreliable.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .clients import DirectClient, ProxiedClient, StreamResult, directive, new_session
from .stats import median, p50_p99, rnd

Client = DirectClient | ProxiedClient


@dataclass
class Context:
    """What every scenario needs: the processes, a client of each kind, the sizes."""

    fake: procs.Proc
    daemon: procs.Proc
    direct: DirectClient
    proxied: ProxiedClient
    sizes: dict
    results_dir: Path
    pin: dict
    uvloop: bool
    #: The daemon's ``UPSTREAM_TRANSPORT``, for every daemon a scenario starts (left to ``auto``,
    #: a venv with curl_cffi would measure the impersonate transport in those steps only).
    transport: str = "aiohttp"
    loads: list[dict] = field(default_factory=list)  # every phase's load, for the report
    #: ``--floor``: the minimal relay (``bare_relay.py``) and the direct client pointed at it.
    floor_proc: procs.Proc | None = None
    floor: DirectClient | None = None

    def sides(self) -> tuple[str, ...]:
        return ("direct", "proxied", "floor") if self.floor else ("direct", "proxied")

    def client(self, side: str) -> Client:
        return {"direct": self.direct, "proxied": self.proxied, "floor": self.floor}[side]

    def relay(self, side: str) -> procs.Proc | None:
        """The relay process a side goes through (None for direct)."""
        return {"direct": None, "proxied": self.daemon, "floor": self.floor_proc}[side]

    def meter(self, daemon: procs.Proc | None = None) -> procs.LoadMeter:
        pids = [(daemon or self.daemon).pid, self.fake.pid, os.getpid()]
        if self.floor_proc is not None:
            pids.append(self.floor_proc.pid)
        return procs.LoadMeter(pids)

    def record(self, phase: str, load: dict) -> dict:
        self.loads.append({"phase": phase, **load})
        return load


async def run_batch(
    client: Client, count: int, concurrency: int, content: str, **kwargs
) -> list[StreamResult]:
    """``count`` streams, ``concurrency`` at a time (closed loop)."""
    results: list[StreamResult] = []
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            results.append(await client.stream(content, **kwargs))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    await client.idle()
    return results


async def run_open(client: Client, count: int, rate: float, content: str) -> tuple[list[StreamResult], float]:
    """Open loop: stream ``i`` starts at ``i / rate`` seconds whether or not earlier ones finished.

    Unlike a closed loop (N workers in lockstep) it neither hides queueing nor sends synchronized
    herds of requests. Returns the results in start order and the mean number of streams in
    flight seen by each arrival.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    in_flight = 0
    seen: list[int] = []

    async def one() -> StreamResult:
        nonlocal in_flight
        in_flight += 1
        seen.append(in_flight)
        try:
            return await client.stream(content)
        finally:
            in_flight -= 1

    tasks = []
    for i in range(count):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    results = list(await asyncio.gather(*tasks))
    await client.idle()
    return results, sum(seen) / max(1, len(seen))


def _check(results: list[StreamResult], deltas: int) -> dict[str, int]:
    """Correctness: every stream complete, with exactly the scripted text, in order."""
    errors = sum(1 for r in results if not r.ok)
    wrong = sum(1 for r in results if r.ok and (r.events != deltas or not r.text_matches(deltas)))
    return {"streams": len(results), "errors": errors, "wrong_text": wrong}


def _added(direct: dict[str, float], proxied: dict[str, float]) -> dict[str, float]:
    return {k: rnd(proxied[k] - direct[k]) for k in direct}


def _max_foreign(loads: list[dict]) -> float:
    return max((load["foreign_cores"] for load in loads), default=0.0)


# -- 1 ---------------------------------------------------------------------------------------


async def latency(ctx: Context) -> dict:
    """Added TTFT and total latency at concurrency 1 and 64; direct and proxied rounds alternate."""
    s = ctx.sizes["latency"]
    out: dict = {"rounds": s["rounds"]}
    summary: dict = {}
    loads: list[dict] = []
    for concurrency in (1, 64):
        shape = s[f"c{concurrency}"]
        deltas, pace, per_round = shape["deltas"], shape["pace_ms"], shape["per_round"]
        content = directive(deltas, pace)
        # Concurrency 1: one stream after another (the pure hop cost). Concurrency 64: open-loop
        # arrivals at the rate that keeps 64 streams in flight, the first 64 of a round discarded.
        rate = concurrency / (deltas * pace / 1000) if concurrency > 1 else 0.0
        warmup = concurrency if concurrency > 1 else 0
        sides = ctx.sides()
        for side in sides:  # warm-up: connections, code paths, allocator; discarded
            await run_batch(ctx.client(side), max(concurrency, 4), concurrency, content)
        collected: dict[str, list[StreamResult]] = {side: [] for side in sides}
        round_added: list[float] = []
        phase_loads: dict[str, list[dict]] = {side: [] for side in sides}
        in_flight: list[float] = []
        cpu = dict.fromkeys(sides, 0.0)
        for n in range(s["rounds"]):
            this_round = {}
            for side in sides if n % 2 == 0 else sides[::-1]:
                meter = ctx.meter()
                relay = ctx.relay(side)
                c0 = procs.cpu_seconds(relay.pid) if relay else 0.0
                if rate:
                    results, mean_in_flight = await run_open(
                        ctx.client(side), warmup + per_round, rate, content
                    )
                    results = results[warmup:]
                    in_flight.append(mean_in_flight)
                else:
                    results = await run_batch(ctx.client(side), per_round, 1, content)
                if relay:
                    await asyncio.sleep(0.05)  # include the background DELETEs
                    cpu[side] += procs.cpu_seconds(relay.pid) - c0
                phase_loads[side].append(ctx.record(f"latency c={concurrency} {side}", meter.read()))
                collected[side] += results
                this_round[side] = median([r.ttft_ms() for r in results if r.ok])
            round_added.append(this_round["proxied"] - this_round["direct"])
        key = f"c{concurrency}"
        entry: dict = {
            "concurrency": concurrency,
            "deltas": deltas,
            "pace_ms": pace,
            "streams_per_side": len(collected["proxied"]),
            "offered": (
                f"open loop, {rate:.1f} streams/s of {deltas} deltas {pace:g} ms apart "
                f"(~{concurrency} in flight, ~{concurrency * 1000 / pace:.0f} events/s)"
                if rate
                else f"one stream at a time, {deltas} deltas {pace:g} ms apart"
            ),
            "mean_in_flight": rnd(sum(in_flight) / len(in_flight), 1) if in_flight else 1.0,
        }
        for metric, fn in (("ttft_ms", StreamResult.ttft_ms), ("total_ms", StreamResult.total_ms)):
            d = p50_p99([fn(r) for r in collected["direct"] if r.ok])
            p = p50_p99([fn(r) for r in collected["proxied"] if r.ok])
            entry[metric] = {"direct": d, "proxied": p, "added": _added(d, p)}
            name = metric.removesuffix("_ms")
            summary[f"{key}_added_{name}_p50_ms"] = entry[metric]["added"]["p50"]
            summary[f"{key}_added_{name}_p99_ms"] = entry[metric]["added"]["p99"]
            if "floor" in collected:
                f = p50_p99([fn(r) for r in collected["floor"] if r.ok])
                entry[metric].update(floor=f, floor_added=_added(d, f))
        entry["added_ttft_p50_per_round_ms"] = [rnd(x) for x in round_added]
        entry["checks"] = {side: _check(collected[side], deltas) for side in collected}
        entry["daemon_cpu_ms_per_request"] = rnd(cpu["proxied"] * 1000 / max(1, len(collected["proxied"])))
        if "floor" in cpu:
            entry["floor_cpu_ms_per_request"] = rnd(cpu["floor"] * 1000 / max(1, len(collected["floor"])))
        entry["load"] = phase_loads
        loads += [load for side in sides for load in phase_loads[side]]
        out[key] = entry
    summary["max_foreign_cores"] = _max_foreign(loads)
    out["summary"] = summary
    return out


# -- 2 ---------------------------------------------------------------------------------------


async def burst(ctx: Context) -> dict:
    """One unpaced stream of ``deltas`` text deltas, ``reps`` times each way, alternating."""
    s = ctx.sizes["burst"]
    deltas = s["deltas"]
    content = directive(deltas, 0)
    sides = ctx.sides()
    for side in sides:  # warm-up
        await ctx.client(side).stream(directive(500, 0))
    rates: dict[str, list[float]] = {side: [] for side in sides}
    cpu_per_k: dict[str, list[float]] = {side: [] for side in sides}
    results: dict[str, list[StreamResult]] = {side: [] for side in sides}
    loads: dict[str, list[dict]] = {side: [] for side in sides}
    for n in range(s["reps"]):
        for side in sides if n % 2 == 0 else sides[::-1]:
            client, relay = ctx.client(side), ctx.relay(side)
            meter = ctx.meter()
            c0 = procs.cpu_seconds(relay.pid) if relay else 0.0
            result = await client.stream(content)
            await client.idle()
            if relay:
                await asyncio.sleep(0.1)  # include the background DELETE and the access-log line
                cpu_per_k[side].append((procs.cpu_seconds(relay.pid) - c0) * 1000 / max(1, result.events))
            loads[side].append(ctx.record(f"burst {side}", meter.read()))
            results[side].append(result)
            if result.ok:
                rates[side].append(result.events / (result.t_end - result.t_start) * 1e9)
    direct_rate, proxied_rate = median(rates["direct"]), median(rates["proxied"])
    cpu_k = median(cpu_per_k["proxied"])
    floor = {}
    if "floor" in sides:
        floor_rate = median(rates["floor"])
        floor = {
            "cpu_us_per_event": rnd(median(cpu_per_k["floor"]) * 1000, 2),
            "events_per_s": rnd(floor_rate, 1),
            "relayed_ratio": rnd(floor_rate / direct_rate, 3) if direct_rate else math.nan,
        }
    return {
        "deltas": deltas,
        "reps": s["reps"],
        "floor": floor,
        "events_per_s_runs": {k: [rnd(v, 1) for v in vs] for k, vs in rates.items()},
        "cpu_s_per_1000_events_runs": {k: [rnd(v, 5) for v in vs] for k, vs in cpu_per_k.items() if vs},
        "events_per_read": {
            side: rnd(sum(r.events for r in rs) / max(1, sum(r.reads for r in rs)), 2)
            for side, rs in results.items()
        },
        "checks": {side: _check(rs, deltas) for side, rs in results.items()},
        "load": loads,
        "summary": {
            "daemon_cpu_s_per_1000_events": rnd(cpu_k, 5),
            "daemon_cpu_us_per_event": rnd(cpu_k * 1000, 2),
            "direct_events_per_s": rnd(direct_rate, 1),
            "proxied_events_per_s": rnd(proxied_rate, 1),
            "relayed_ratio": rnd(proxied_rate / direct_rate, 3) if direct_rate else math.nan,
            "max_foreign_cores": _max_foreign([load for side in sides for load in loads[side]]),
        },
    }


# -- 3 ---------------------------------------------------------------------------------------


def _stream_stats(results: list[StreamResult], pace: float, deltas: int, elapsed: float) -> dict:
    """Gap distribution and the re-batching evidence of one set of paced streams."""
    gaps = [g for r in results if r.ok for g in r.gaps_ms()]
    ok = [r for r in results if r.ok]
    delivered = sum(r.events for r in results)
    reads = sum(r.reads for r in results)
    return {
        "gap_ms": p50_p99(gaps),
        # A relay that buffers shows many near-zero gaps (frames released together).
        "bunched_share": rnd(sum(1 for g in gaps if g < pace / 2) / len(gaps), 4) if gaps else math.nan,
        "events_per_read": rnd(delivered / reads, 3) if reads else math.nan,
        # Fake streaming (everything at the end) shows TTFT close to the total time.
        "ttft_over_total_p50": rnd(median([r.ttft_ms() / r.total_ms() for r in ok]), 3) if ok else math.nan,
        "events_per_s": rnd(delivered / elapsed, 1),
        "checks": _check(results, deltas),
    }


async def _memory(ctx: Context, s: dict, side: str = "proxied") -> dict:
    """RSS and fds per open stream, on a fresh relay (a used heap would hide the growth)."""
    n, pace, events = s["streams"], s["pace_ms"], s["events"]
    if side == "floor":
        daemon = procs.start_floor(
            ctx.results_dir, ctx.fake, ctx.pin["daemon"], name="floor-memory", uvloop=ctx.uvloop
        )
    else:
        daemon = procs.start_daemon(
            ctx.results_dir,
            ctx.fake,
            ctx.pin["daemon"],
            name="daemon-memory",
            uvloop=ctx.uvloop,
            env={"UPSTREAM_TRANSPORT": ctx.transport},
        )
    try:
        async with new_session() as http:
            if side == "floor":
                client: Client = DirectClient(http, dict(ctx.fake.info, base_url=daemon.info["url"]))
            else:
                client = ProxiedClient(http, daemon.info["url"], procs.API_KEY)
            await run_batch(client, 20, 10, directive(5, 0))  # warm-up
            await asyncio.sleep(0.5)
            idle_rss, idle_fds = procs.rss_kb(daemon.pid), procs.fd_count(daemon.pid)
            meter = ctx.meter(daemon)
            opened = 0
            all_open = asyncio.Event()

            def first() -> None:
                nonlocal opened
                opened += 1
                if opened == n:
                    all_open.set()

            started = time.monotonic()
            batch = asyncio.ensure_future(run_batch(client, n, n, directive(events, pace), on_first=first))
            hold_s = events * pace / 1000
            try:
                await asyncio.wait_for(all_open.wait(), timeout=hold_s * 0.6)
            except TimeoutError:
                pass
            ramp_s = time.monotonic() - started
            samples: list[tuple[int, int]] = []
            window_end = time.monotonic() + min(3.0, max(0.2, (hold_s - ramp_s) * 0.5))
            while not batch.done() and time.monotonic() < window_end:
                samples.append((procs.rss_kb(daemon.pid), procs.fd_count(daemon.pid)))
                await asyncio.sleep(0.1)
            results = await batch
            load = ctx.record(f"hold memory {side}", meter.read())
            await asyncio.sleep(1.0)
            after_rss = procs.rss_kb(daemon.pid)
    finally:
        daemon.stop()
    hold_rss = median([a for a, _ in samples]) if samples else math.nan
    hold_fds = max((f for _, f in samples), default=0)
    return {
        "streams": n,
        "pace_ms": pace,
        "events": events,
        "open_when_sampled": opened,
        "ramp_s": rnd(ramp_s, 2),
        "rss_samples": len(samples),
        "daemon_idle_rss_kb": idle_rss,
        "daemon_hold_rss_kb": rnd(hold_rss, 0),
        "daemon_after_rss_kb": after_rss,
        "daemon_idle_fds": idle_fds,
        "daemon_hold_fds": hold_fds,
        "rss_kb_per_stream": rnd((hold_rss - idle_rss) / max(1, opened), 2),
        "fds_per_stream": rnd((hold_fds - idle_fds) / max(1, opened), 3),
        "checks": _check(results, events),
        "load": load,
    }


async def _paced(ctx: Context, s: dict, phase: str, sides: tuple[str, ...] = ("direct", "proxied")) -> dict:
    """The same paced streams direct and proxied; per side the stream stats and the load."""
    n, pace, events = s["streams"], s["pace_ms"], s["events"]
    content = directive(events, pace)
    out: dict = {
        "streams": n,
        "pace_ms": pace,
        "events": events,
        "offered_events_per_s": rnd(n * 1000 / pace, 1),
    }
    for side in sides:
        await asyncio.sleep(0.3)
        meter = ctx.meter()
        relay = ctx.relay(side)
        c0 = procs.cpu_seconds(relay.pid) if relay else 0.0
        started = time.monotonic()
        results = await run_batch(ctx.client(side), n, n, content)
        elapsed = time.monotonic() - started
        entry = _stream_stats(results, pace, events, elapsed)
        entry["load"] = ctx.record(f"hold {phase} {side}", meter.read())
        if relay:
            cpu = procs.cpu_seconds(relay.pid) - c0
            entry["relay_cpu_us_per_event"] = rnd(cpu * 1e6 / max(1, sum(r.events for r in results)), 2)
        out[side] = entry
    return out


async def hold(ctx: Context) -> dict:
    s = ctx.sizes["hold"]
    memory = await _memory(ctx, s["memory"])
    if ctx.floor:
        memory["floor"] = await _memory(ctx, s["memory"], "floor")
    gaps = await _paced(ctx, s["gaps"], "gaps", ctx.sides())
    saturation = await _paced(ctx, s["saturation"], "saturation")
    d, p = gaps["direct"], gaps["proxied"]
    sd, sp = saturation["direct"]["events_per_s"], saturation["proxied"]["events_per_s"]
    loads = [
        memory["load"],
        d["load"],
        p["load"],
        saturation["direct"]["load"],
        saturation["proxied"]["load"],
    ]
    return {
        "memory": memory,
        "gaps": gaps,
        "saturation": saturation,
        "summary": {
            "daemon_rss_kb_per_stream": memory["rss_kb_per_stream"],
            "daemon_fds_per_stream": memory["fds_per_stream"],
            "added_gap_p50_ms": rnd(p["gap_ms"]["p50"] - d["gap_ms"]["p50"]),
            "added_gap_p99_ms": rnd(p["gap_ms"]["p99"] - d["gap_ms"]["p99"]),
            "direct_bunched_share": d["bunched_share"],
            "proxied_bunched_share": p["bunched_share"],
            "proxied_events_per_read": p["events_per_read"],
            "daemon_cpu_us_per_event_paced": p["relay_cpu_us_per_event"],
            **_floor_hold(memory, gaps),
            "saturation_direct_events_per_s": sd,
            "saturation_proxied_events_per_s": sp,
            "saturation_ratio": rnd(sp / sd, 3) if sd else math.nan,
            "max_foreign_cores": _max_foreign(loads),
        },
    }


def _floor_hold(memory: dict, gaps: dict) -> dict:
    """The floor's figures for the hold table rows (empty without ``--floor``)."""
    if "floor" not in memory:
        return {}
    d, f = gaps["direct"], gaps["floor"]
    return {
        "floor_rss_kb_per_stream": memory["floor"]["rss_kb_per_stream"],
        "floor_added_gap_p50_ms": rnd(f["gap_ms"]["p50"] - d["gap_ms"]["p50"]),
        "floor_added_gap_p99_ms": rnd(f["gap_ms"]["p99"] - d["gap_ms"]["p99"]),
        "floor_cpu_us_per_event_paced": f["relay_cpu_us_per_event"],
    }


# -- 4 ---------------------------------------------------------------------------------------


async def _trace(ctx: Context, tag: str, key: str, timeout: float = 10.0) -> int | None:
    """Wait until the fake's trace of ``tag`` has ``key`` set; its ``perf_counter_ns`` value."""
    deadline = time.monotonic() + timeout
    async with new_session() as http:
        while time.monotonic() < deadline:
            trace = await procs.control_get(http, ctx.fake, f"/trace/{tag}")
            if trace and trace.get(key):
                return int(trace[key])
            await asyncio.sleep(0.005)
    return None


async def failure(ctx: Context) -> dict:
    """Client disconnect -> upstream stop; upstream stall -> client error."""
    s = ctx.sizes["failure"]
    meter = ctx.meter()
    drop: dict[str, list[float]] = {"direct": [], "proxied": []}
    for _ in range(s["reps"]):
        for side in ("direct", "proxied"):
            tag = f"drop-{uuid.uuid4().hex[:12]}"
            client = ctx.client(side)
            # The direct client, having dropped its connection, sends stop_response itself.
            result = await client.stream(directive(500, 20, tag=tag), disconnect_after=5)
            stop_ns = await _trace(ctx, tag, "stop_ns")
            if stop_ns and result.t_error:
                drop[side].append((stop_ns - result.t_error) / 1e6)
            await client.idle()
    drop_load = ctx.record("failure disconnect", meter.read())

    timeout = s["read_timeout_s"]
    stall_daemon = procs.start_daemon(
        ctx.results_dir,
        ctx.fake,
        ctx.pin["daemon"],
        name="daemon-stall",
        uvloop=ctx.uvloop,
        env={"UPSTREAM_READ_TIMEOUT": f"{timeout:g}", "UPSTREAM_TRANSPORT": ctx.transport},
    )
    stall: dict[str, list[float]] = {"direct": [], "proxied": []}
    errors: dict[str, list[str]] = {"direct": [], "proxied": []}
    meter = ctx.meter(stall_daemon)
    try:
        # The direct client gets the daemon's read timeout, so both notice the stall the same way.
        async with new_session(sock_read=timeout) as direct_http, new_session() as proxied_http:
            clients = {
                "direct": DirectClient(direct_http, ctx.fake.info),
                "proxied": ProxiedClient(proxied_http, stall_daemon.info["url"], procs.API_KEY),
            }
            for _ in range(s["reps"]):
                for side, client in clients.items():
                    tag = f"stall-{uuid.uuid4().hex[:12]}"
                    result = await client.stream(
                        directive(10, 20, stall_after=5, stall_s=timeout + 5, tag=tag)
                    )
                    stall_ns = await _trace(ctx, tag, "stall_ns")
                    errors[side].append(result.error or "no error")
                    if stall_ns and result.t_error:
                        stall[side].append((result.t_error - stall_ns) / 1e6)
                    await client.idle()
        stall_load = ctx.record("failure stall", meter.read())
    finally:
        stall_daemon.stop()

    def med(values: list[float]) -> float:
        return rnd(median(values), 3)

    return {
        "reps": s["reps"],
        "disconnect_to_stop_ms": {k: [rnd(v, 3) for v in vs] for k, vs in drop.items()},
        "stall_to_error_ms": {k: [rnd(v, 3) for v in vs] for k, vs in stall.items()},
        "stall_errors_seen": {k: sorted(set(v)) for k, v in errors.items()},
        "read_timeout_s": timeout,
        "load": {"disconnect": drop_load, "stall": stall_load},
        "summary": {
            "direct_disconnect_to_stop_ms": med(drop["direct"]),
            "proxied_disconnect_to_stop_ms": med(drop["proxied"]),
            "added_disconnect_to_stop_ms": rnd(med(drop["proxied"]) - med(drop["direct"]), 3),
            "max_proxied_disconnect_to_stop_ms": rnd(max(drop["proxied"], default=math.nan), 3),
            "direct_stall_to_error_ms": med(stall["direct"]),
            "proxied_stall_to_error_ms": med(stall["proxied"]),
            "added_stall_to_error_ms": rnd(med(stall["proxied"]) - med(stall["direct"]), 3),
            "max_foreign_cores": _max_foreign([drop_load, stall_load]),
        },
    }


# -- 5 ---------------------------------------------------------------------------------------


async def tools(ctx: Context) -> dict:
    """Tool turns one at a time, direct and proxied rounds alternating: ``calls`` parallel calls of
    ``deltas`` argument fragments each. The daemon ends the client's turn at the fake's first ping."""
    s = ctx.sizes["tools"]
    calls, deltas = s["calls"], s["deltas"]
    content = directive(deltas, s["pace_ms"], calls=calls)
    for side in ("direct", "proxied"):  # warm-up
        await ctx.client(side).tool_stream(content, calls)
    collected: dict[str, list[StreamResult]] = {"direct": [], "proxied": []}
    cpu = {"direct": 0.0, "proxied": 0.0}
    loads: list[dict] = []
    for n in range(s["rounds"]):
        for side in ("direct", "proxied") if n % 2 == 0 else ("proxied", "direct"):
            client, relay = ctx.client(side), ctx.relay(side)
            meter = ctx.meter()
            c0 = procs.cpu_seconds(relay.pid) if relay else 0.0
            for _ in range(s["per_round"]):
                collected[side].append(await client.tool_stream(content, calls))
            await client.idle()
            if relay:
                await asyncio.sleep(0.1)  # include the background stop_response, DELETE and access line
                cpu[side] += procs.cpu_seconds(relay.pid) - c0
            loads.append(ctx.record(f"tools {side}", meter.read()))

    def finish_ms(r: StreamResult) -> float:
        return (r.t_end - r.t_first) / 1e6

    d = p50_p99([finish_ms(r) for r in collected["direct"] if r.ok])
    p = p50_p99([finish_ms(r) for r in collected["proxied"] if r.ok])
    events = sum(r.events for r in collected["proxied"])
    checks = {
        side: {
            "streams": len(rs),
            "errors": sum(1 for r in rs if not r.ok),
            "wrong_calls": sum(1 for r in rs if r.ok and not r.calls_match(calls, deltas)),
            "wrong_finish": sum(1 for r in rs if r.ok and r.finish != ("tool_use" if side == "direct" else "tool_calls")),
        }
        for side, rs in collected.items()
    }
    cpu_us = cpu["proxied"] * 1e6 / max(1, events)
    return {
        "calls": calls,
        "deltas": deltas,
        "pace_ms": s["pace_ms"],
        "streams_per_side": len(collected["proxied"]),
        "first_call_to_finish_ms": {"direct": d, "proxied": p, "added": _added(d, p)},
        "checks": checks,
        "load": loads,
        "summary": {
            "daemon_cpu_us_per_event": rnd(cpu_us, 2),
            "daemon_cpu_ms_per_request": rnd(cpu["proxied"] * 1000 / max(1, len(collected["proxied"]))),
            "direct_first_call_to_finish_p50_ms": d["p50"],
            "proxied_first_call_to_finish_p50_ms": p["p50"],
            "added_first_call_to_finish_p50_ms": rnd(p["p50"] - d["p50"]),
            "added_first_call_to_finish_p99_ms": rnd(p["p99"] - d["p99"]),
            "max_foreign_cores": _max_foreign(loads),
        },
    }


SCENARIOS = {
    "1": ("latency", latency),
    "2": ("burst", burst),
    "3": ("hold", hold),
    "4": ("failure", failure),
    "5": ("tools", tools),
}

FULL_SIZES = {
    "latency": {
        "rounds": 5,
        "c1": {"deltas": 20, "pace_ms": 10, "per_round": 30},
        "c64": {"deltas": 20, "pace_ms": 50, "per_round": 256},
    },
    "burst": {"deltas": 50_000, "reps": 3},
    "hold": {
        "memory": {"streams": 1000, "pace_ms": 500, "events": 30},
        "gaps": {"streams": 50, "pace_ms": 20, "events": 200},
        "saturation": {"streams": 1000, "pace_ms": 20, "events": 50},
    },
    "failure": {"reps": 5, "read_timeout_s": 2.0},
    "tools": {"rounds": 4, "per_round": 50, "calls": 2, "deltas": 50, "pace_ms": 0},
}
QUICK_SIZES = {
    "latency": {
        "rounds": 2,
        "c1": {"deltas": 5, "pace_ms": 2, "per_round": 3},
        "c64": {"deltas": 4, "pace_ms": 50, "per_round": 32},
    },
    "burst": {"deltas": 2_000, "reps": 1},
    "hold": {
        "memory": {"streams": 20, "pace_ms": 50, "events": 10},
        "gaps": {"streams": 10, "pace_ms": 10, "events": 20},
        "saturation": {"streams": 20, "pace_ms": 10, "events": 10},
    },
    "failure": {"reps": 1, "read_timeout_s": 0.5},
    "tools": {"rounds": 2, "per_round": 5, "calls": 2, "deltas": 20, "pace_ms": 0},
}
