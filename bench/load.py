"""Bounded load test: does the daemon hold up under a crowd, without 5xx and without leaks?

    .venv/bin/python bench/load.py                  # 1,000 clients for 60 s + 5,000 slow streams
    .venv/bin/python bench/load.py --quick          # 50 clients for 5 s + 200 slow streams (CI smoke)
    .venv/bin/python bench/load.py --clients 500 --duration 30 --slow-streams 2000 --json /tmp/load.json

Starts the fake claude.ai (this file with ``--serve-fake``: ``bench/fake_server.py``'s scripted
fake plus a control route that counts the conversations left in the account) and the daemon
(``python -m claude2api``) as separate processes, on loopback only. Then, at once:

* ``--slow-streams`` streams that stay open the whole run (one token, then silence), each two sockets
  in the daemon (client side and claude.ai side);
* ``--clients`` concurrent clients for ``--duration`` seconds, each looping over a mix of
  streamed and plain chats in both dialects, streams abandoned after the first token, bad input
  and wrong keys.

Reports the daemon's RSS and open fds (start, peak, end), latency p50/p99 per kind of request,
the status counts, the 5xx count (must be 0) and the conversations left in the account after
cleanup (must be 0), as a printed table and JSON (``--json``, default
``bench/results/load.json``). Exit status 1 when either must-be-0 figure is not 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench import procs
from bench.stats import percentile

MODEL = "claude-sonnet-4-6"
#: Request kinds and their weights in the client mix.
MIX = {
    "openai_stream": 3,
    "openai_json": 2,
    "anthropic_stream": 2,
    "anthropic_json": 1,
    "abandon": 2,
    "bad_input": 2,
    "wrong_key": 1,
}
#: Bodies that must be refused with a 4xx (path, raw body).
BAD_INPUTS: list[tuple[str, bytes]] = [
    ("/v1/chat/completions", b"{not json"),
    ("/v1/chat/completions", b"[]"),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": "hi"}).encode()),
    ("/v1/chat/completions", json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode()),
    ("/v1/chat/completions", json.dumps({"model": "x" * 10_000, "messages": [{"role": "user", "content": "x"}]}).encode()),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 3}).encode()),
    ("/v1/messages", json.dumps({"model": MODEL, "max_tokens": -1, "messages": []}).encode()),
    ("/v1/messages", json.dumps({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "nope"}]}]}).encode()),
    ("/v1/messages/count_tokens", b"\xff\xfe not utf-8"),
]


# -- the fake claude.ai process -------------------------------------------------------------------


async def serve_fake() -> None:
    """The benchmark's scripted fake, plus ``GET /conversations`` on its control port."""
    import signal

    from aiohttp import web

    from claude2api.testing.fake_claude import FakeClaude

    from bench.fake_server import control_app, install

    fake = FakeClaude(protocol="both")
    recorder = install(fake)
    await fake.start("127.0.0.1", 0)
    account = fake.add_account()

    async def conversations(request: web.Request) -> web.Response:
        return web.json_response({"open": len(fake.conversations)})

    app = control_app(recorder)
    app.router.add_get("/conversations", conversations)
    control = web.AppRunner(app, access_log=None)
    await control.setup()
    await web.TCPSite(control, "127.0.0.1", 0).start()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    info = {
        "base_url": fake.base_url,
        "control_url": f"http://127.0.0.1:{control.addresses[0][1]}",
        "session_key": account.session_key,
        "org_id": account.org_id,
    }
    print(json.dumps(info), flush=True)
    try:
        await stop.wait()
    finally:
        await control.cleanup()
        await fake.close()


def start_fake(results: Path) -> procs.Proc:
    import subprocess

    log_path = results / "load-fake.log"
    popen = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-fake"],
        stdout=subprocess.PIPE,
        stderr=log_path.open("wb"),
        cwd=results,
    )
    line = popen.stdout.readline() if popen.stdout else b""
    if not line:
        popen.wait(5)
        raise RuntimeError(f"the fake claude.ai did not start; see {log_path}")
    return procs.Proc("fake", popen, log_path, json.loads(line))


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    wrong: Counter[str] = field(default_factory=Counter)  # answers of the wrong kind (e.g. 200 to bad input)
    transport_errors: Counter[str] = field(default_factory=Counter)

    def record(self, kind: str, status: int, seconds: float) -> None:
        self.statuses[f"{status}"] += 1
        self.latencies.setdefault(kind, []).append(seconds)


def chat_body(kind: str, deltas: int, pace_ms: int) -> tuple[str, dict[str, Any]]:
    directive = f"bench:deltas={deltas};pace_ms={pace_ms}"
    stream = kind.endswith("stream") or kind == "abandon"
    if kind.startswith("anthropic"):
        return "/v1/messages", {
            "model": MODEL,
            "max_tokens": 100_000,
            "stream": stream,
            "messages": [{"role": "user", "content": directive}],
        }
    return "/v1/chat/completions", {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": directive}]}


async def one_request(http: aiohttp.ClientSession, url: str, key: str, kind: str, rng: random.Random, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.perf_counter()
    if kind == "bad_input":
        path, data = rng.choice(BAD_INPUTS)
    elif kind == "wrong_key":
        headers["Authorization"] = "Bearer sk-wrong-" + str(rng.randrange(10**9))
        path, body = chat_body("openai_json", 5, 0)
        data = json.dumps(body).encode()
    else:
        path, body = chat_body(kind, rng.randint(5, 40), rng.choice([0, 2, 5]))
        data = json.dumps(body).encode()
    async with http.post(url + path, data=data, headers=headers) as resp:
        if kind == "abandon":
            await resp.content.readany()  # the first bytes, then the client goes away
            resp.close()
        else:
            raw = await resp.read()
            if kind.endswith("stream") and resp.status == 200 and not _stream_complete(kind, raw):
                tally.wrong[f"{kind}: incomplete stream"] += 1
        seconds = time.perf_counter() - started
        tally.record(kind, resp.status, seconds)
        expected = {"bad_input": range(400, 500), "wrong_key": range(401, 402)}.get(kind, range(200, 201))
        if resp.status not in expected:
            tally.wrong[f"{kind}: {resp.status}"] += 1


def _stream_complete(kind: str, raw: bytes) -> bool:
    if kind.startswith("anthropic"):
        return b"event: message_stop" in raw and b"event: error" not in raw
    return raw.rstrip().endswith(b"data: [DONE]") and b'"error"' not in raw


async def client_loop(http: aiohttp.ClientSession, url: str, key: str, seed: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        try:
            await one_request(http, url, key, kind, rng, tally)
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.transport_errors[f"{kind}: {type(exc).__name__}"] += 1


@dataclass
class SlowStreams:
    """Streams held open for the whole run; counts those that opened and those cut before the end."""

    opened: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    cut: int = 0
    open_seconds: float = 0.0


async def slow_stream(
    http: aiohttp.ClientSession,
    url: str,
    key: str,
    stop: asyncio.Event,
    slow: SlowStreams,
    seconds: int,
    answered: asyncio.Event,
) -> None:
    """One token at once, then silence for ``seconds`` (longer than the run, so the run's end
    closes it; the daemon's keep-alives flow meanwhile): a held stream costs memory and sockets,
    not CPU. ``answered`` is set once the stream is open (its first token came) or refused."""
    path, body = chat_body("openai_stream", 2, 0)
    body["messages"][0]["content"] += f";stall_after=1;stall_s={seconds}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with http.post(url + path, json=body, headers=headers) as resp:
            if resp.status != 200:
                slow.refused[str(resp.status)] += 1
                await resp.read()
                return
            await resp.content.readany()
            slow.opened += 1
            answered.set()
            while not stop.is_set():
                reader = asyncio.ensure_future(resp.content.readany())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if reader not in done:
                    reader.cancel()
                    break
                if not reader.result():
                    slow.cut += 1
                    return
    except (aiohttp.ClientError, TimeoutError) as exc:
        slow.refused[type(exc).__name__] += 1
    finally:
        answered.set()


async def open_slow_streams(
    http: aiohttp.ClientSession, url: str, key: str, count: int, stop: asyncio.Event, slow: SlowStreams, seconds: int
) -> list[asyncio.Task[None]]:
    """Open ``count`` slow streams, 500 at a time, and wait until each answered (or failed)."""
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    for start in range(0, count, 500):
        answered = [asyncio.Event() for _ in range(min(500, count - start))]
        tasks += [asyncio.create_task(slow_stream(http, url, key, stop, slow, seconds, a)) for a in answered]
        await asyncio.gather(*(a.wait() for a in answered))
    slow.open_seconds = time.monotonic() - started
    return tasks


class Sampler:
    """The daemon's RSS and open fds, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.rss_kb: list[int] = []
        self.fds: list[int] = []

    def sample(self) -> None:
        self.rss_kb.append(procs.rss_kb(self.pid))
        self.fds.append(procs.fd_count(self.pid))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass


async def wait_for_cleanup(http: aiohttp.ClientSession, fake: procs.Proc, timeout: float) -> tuple[int, int, float]:
    """(conversations open when the load ended, those still open once cleanup has settled or after
    ``timeout``, seconds it took to drain)."""
    started = time.monotonic()
    at_start: int | None = None
    while True:
        async with http.get(fake.info["control_url"] + "/conversations") as resp:
            left = int((await resp.json())["open"])
        at_start = left if at_start is None else at_start
        if left == 0 or time.monotonic() > started + timeout:
            return at_start, left, round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)


async def run_load(args: argparse.Namespace, daemon: procs.Proc, fake: procs.Proc) -> dict[str, Any]:
    url, key = daemon.info["url"], procs.API_KEY
    tally, slow, sampler = Tally(), SlowStreams(), Sampler(daemon.pid)
    sampler.sample()
    start_rss, start_fds = sampler.rss_kb[-1], sampler.fds[-1]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        stop_slow, stop_sampler = asyncio.Event(), asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop_sampler))
        lifetime = int(args.duration) + 600  # outlives opening them and the run
        slow_tasks = await open_slow_streams(http, url, key, args.slow_streams, stop_slow, slow, lifetime)
        sampler.sample()
        held_rss, held_fds = sampler.rss_kb[-1], sampler.fds[-1]
        deadline = time.monotonic() + args.duration
        clients = [
            asyncio.create_task(client_loop(http, url, key, args.seed + n, deadline, tally)) for n in range(args.clients)
        ]
        await asyncio.gather(*clients)
        stop_slow.set()
        await asyncio.gather(*slow_tasks)
    async with aiohttp.ClientSession() as http:
        open_at_end, leaked, drain_seconds = await wait_for_cleanup(http, fake, timeout=args.cleanup_timeout)
    await asyncio.sleep(1.0)  # let the daemon close what the clients left
    stop_sampler.set()
    await sampling
    sampler.sample()
    all_latencies = [s for values in tally.latencies.values() for s in values]
    five_xx = sum(n for status, n in tally.statuses.items() if status.startswith("5"))
    return {
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "slow_streams": args.slow_streams,
            "seed": args.seed,
            "mix": MIX,
        },
        "requests": sum(tally.statuses.values()),
        "requests_per_s": round(sum(tally.statuses.values()) / args.duration, 1),
        "statuses": dict(tally.statuses),
        "five_xx": five_xx,
        "wrong_answers": dict(tally.wrong),
        "transport_errors": dict(tally.transport_errors),
        "leaked_conversations": leaked,
        "cleanup": {"open_when_load_ended": open_at_end, "drain_seconds": drain_seconds},
        "latency_ms": {
            kind: {
                "count": len(values),
                "p50": round(percentile(values, 50) * 1000, 1),
                "p99": round(percentile(values, 99) * 1000, 1),
            }
            for kind, values in sorted(tally.latencies.items())
        }
        | {
            "all": {
                "count": len(all_latencies),
                "p50": round(percentile(all_latencies, 50) * 1000, 1) if all_latencies else 0.0,
                "p99": round(percentile(all_latencies, 99) * 1000, 1) if all_latencies else 0.0,
            }
        },
        "slow_streams": {
            "asked": args.slow_streams,
            "opened": slow.opened,
            "refused": dict(slow.refused),
            "cut_before_the_end": slow.cut,
            "open_seconds": round(slow.open_seconds, 2),
        },
        "daemon": {
            "rss_kb": {"start": start_rss, "with_slow_streams": held_rss, "peak": max(sampler.rss_kb), "end": sampler.rss_kb[-1]},
            "fds": {"start": start_fds, "with_slow_streams": held_fds, "peak": max(sampler.fds), "end": sampler.fds[-1]},
            "rss_kb_per_slow_stream": round((held_rss - start_rss) / slow.opened, 1) if slow.opened else None,
        },
    }


def print_table(result: dict[str, Any]) -> None:
    d, s = result["daemon"], result["slow_streams"]
    rows = [
        ("clients / duration", f"{result['settings']['clients']} / {result['settings']['duration_s']} s"),
        ("requests (per s)", f"{result['requests']} ({result['requests_per_s']})"),
        ("slow streams opened / asked", f"{s['opened']} / {s['asked']} in {s['open_seconds']} s"),
        ("daemon RSS start / slow / peak / end (MB)", " / ".join(f"{d['rss_kb'][k] / 1024:.0f}" for k in ("start", "with_slow_streams", "peak", "end"))),
        ("daemon fds start / slow / peak / end", " / ".join(str(d["fds"][k]) for k in ("start", "with_slow_streams", "peak", "end"))),
        ("RSS per slow stream (KB)", str(d["rss_kb_per_slow_stream"])),
        ("latency p50 / p99, all (ms)", f"{result['latency_ms']['all']['p50']} / {result['latency_ms']['all']['p99']}"),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items()))),
        ("5xx (must be 0)", str(result["five_xx"])),
        ("leaked conversations (must be 0)", str(result["leaked_conversations"])),
        ("cleanup: open at the end / drained in", f"{result['cleanup']['open_when_load_ended']} / {result['cleanup']['drain_seconds']} s"),
        ("wrong answers", json.dumps(result["wrong_answers"]) if result["wrong_answers"] else "none"),
        ("transport errors", json.dumps(result["transport_errors"]) if result["transport_errors"] else "none"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'metric':<{width}} | value")
    print(f"|{'-' * (width + 2)}|------")
    for name, value in rows:
        print(f"| {name:<{width}} | {value}")
    for kind, figures in result["latency_ms"].items():
        if kind != "all":
            print(f"| {'  ' + kind + ' p50 / p99 (ms)':<{width}} | {figures['p50']} / {figures['p99']} ({figures['count']})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 clients, 5 s, 200 slow streams (CI smoke)")
    parser.add_argument(
        "--transport",
        choices=("aiohttp", "impersonate"),
        default="aiohttp",
        help="the daemon's UPSTREAM_TRANSPORT (impersonate needs curl_cffi)",
    )
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (default 1000)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load (default 60)")
    parser.add_argument("--slow-streams", type=int, default=None, help="streams held open (default 5000)")
    parser.add_argument("--cleanup-timeout", type=float, default=30.0, help="seconds to wait for cleanup")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(procs.BENCH / "results" / "load.json"), help="result file")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    full, quick = (1000, 60.0, 5000), (50, 5.0, 200)
    defaults = quick if args.quick else full
    args.clients = defaults[0] if args.clients is None else args.clients
    args.duration = defaults[1] if args.duration is None else args.duration
    args.slow_streams = defaults[2] if args.slow_streams is None else args.slow_streams
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_fake:
        asyncio.run(serve_fake())
        return 0
    soft, hard = procs.raise_nofile()
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = out.parent
    fake = start_fake(results)
    daemon = None
    try:
        env = {
            "SESSIONS": f"{fake.info['session_key']}:{fake.info['org_id']}",
            "LOG_LEVEL": "warning",
            "UPSTREAM_TRANSPORT": args.transport,
        }
        daemon = procs.start_daemon(results, fake, None, name="load-daemon", uvloop=True, env=env)
        result = asyncio.run(run_load(args, daemon, fake))
    finally:
        if daemon is not None:
            result_exit = daemon.stop()
        fake.stop()
    result["daemon"]["exit_status"] = result_exit
    result["conditions"] = {"nofile_limit": [soft, hard], "python": sys.version.split()[0]}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nJSON: {out}")
    return 0 if result["five_xx"] == 0 and result["leaked_conversations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
