"""Processes of the benchmark and what /proc says about them.

The daemon runs alone on CPU0; the fake claude.ai and the load client share CPU1 (engineering
notes D.4: two cores cannot isolate three processes, so the proxy gets its own core and its CPU
time is accounted from /proc, which stays valid even when CPU1 is saturated).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
API_KEY = "sk-bench-claude2api"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def pinning() -> dict[str, list[int] | None]:
    """CPU sets: daemon alone on the first CPU, fake and client on the second (None = no pinning)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {"daemon": None, "fake": None, "client": None}
    return {"daemon": [cpus[0]], "fake": [cpus[1]], "client": [cpus[1]]}


def raise_nofile() -> tuple[int, int]:
    """Raise this process's open-file soft limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pinned(cpus: list[int] | None):
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@dataclass
class Proc:
    """A child process with its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    info: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_fake(results: Path, cpus: list[int] | None) -> Proc:
    """Start ``bench/fake_server.py``; its first stdout line says where it listens."""
    log_path = results / "fake.log"
    popen = subprocess.Popen(
        [sys.executable, str(BENCH / "fake_server.py")],
        stdout=subprocess.PIPE,
        stderr=log_path.open("wb"),
        preexec_fn=_pinned(cpus),
        cwd=results,
    )
    line = popen.stdout.readline() if popen.stdout else b""
    if not line:
        popen.wait(5)
        raise RuntimeError(f"the fake claude.ai did not start; see {log_path}")
    return Proc("fake", popen, log_path, json.loads(line))


def start_daemon(
    results: Path,
    fake: Proc,
    cpus: list[int] | None,
    *,
    name: str = "daemon",
    uvloop: bool = False,
    env: dict[str, str] | None = None,
) -> Proc:
    """Start the daemon as production does (``python -m claude2api``), configured by env vars.

    ``SESSIONS=key:org`` skips the organization lookup; ``LOG_LEVEL=info`` keeps the per-request
    access line, so logging cost is counted. ``uvloop`` picks the daemon's ``EVENT_LOOP``.
    """
    port = free_port()
    daemon_env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    }
    daemon_env.update(
        {
            "SESSIONS": f"{fake.info['session_key']}:{fake.info['org_id']}",
            "CLAUDE_BASE_URL": fake.info["base_url"],
            "APIKEY": API_KEY,
            "ADDRESS": f"127.0.0.1:{port}",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
            "EVENT_LOOP": "uvloop" if uvloop else "asyncio",
        }
    )
    daemon_env.update(env or {})
    command = [sys.executable, "-m", "claude2api"]
    log_path = results / f"{name}.log"
    popen = subprocess.Popen(
        command,
        env=daemon_env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_pinned(cpus),
        cwd=results,  # no config.yaml or .env here
    )
    proc = Proc(name, popen, log_path, {"url": f"http://127.0.0.1:{port}", "uvloop": uvloop})
    _wait_healthy(proc)
    return proc


def start_floor(
    results: Path, fake: Proc, cpus: list[int] | None, *, name: str = "floor", uvloop: bool = False
) -> Proc:
    """Start ``bench/bare_relay.py``, the minimal relay that measures this machine's floor."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env.update({"CLAUDE_BASE_URL": fake.info["base_url"], "ADDRESS": f"127.0.0.1:{port}"})
    log_path = results / f"{name}.log"
    popen = subprocess.Popen(
        [sys.executable, str(BENCH / "bare_relay.py"), *(["--uvloop"] if uvloop else [])],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_pinned(cpus),
        cwd=results,
    )
    proc = Proc(name, popen, log_path, {"url": f"http://127.0.0.1:{port}"})
    _wait_healthy(proc)
    return proc


def _wait_healthy(proc: Proc, timeout: float = 20.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; see {proc.log_path}")
        try:
            with urllib.request.urlopen(proc.info["url"] + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not become healthy in {timeout:.0f} s; see {proc.log_path}")


# -- /proc readers ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` in seconds.

    From ``/proc/PID/task/*/schedstat`` (nanoseconds on CPU) where the kernel has it, else utime +
    stime from ``/proc/PID/stat`` (clock ticks, usually 10 ms).
    """
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return stat_cpu_seconds(pid)


def stat_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def cpu_source() -> str:
    return "schedstat" if Path(f"/proc/{os.getpid()}/schedstat").exists() else "stat utime+stime"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class LoadMeter:
    """CPU load between two calls, from /proc/stat and the processes' own CPU time.

    ``busy`` is each CPU's busy share; ``ours_cores`` the CPU our processes (daemon, fake, this
    client) used, in cores; ``foreign_cores`` what everything else on the machine used. A shared
    machine runs other work too: a foreign load well above zero means the figures of that phase
    are disturbed, and the report says so.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._last = self._read()

    def _read(self) -> tuple[float, dict[str, tuple[int, int]], float]:
        cpus = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *values = line.split()
                    ticks = [int(v) for v in values]
                    cpus[name] = (sum(ticks[:8]), ticks[3] + ticks[4])  # total, idle + iowait
        ours = 0.0
        for pid in self.pids:
            try:
                ours += cpu_seconds(pid)
            except OSError:
                pass
        return time.monotonic(), cpus, ours

    def read(self) -> dict:
        """The load since the previous call (or construction)."""
        (t0, cpus0, ours0), (t1, cpus1, ours1) = self._last, self._read()
        self._last = (t1, cpus1, ours1)
        busy, busy_s = {}, 0.0
        for name, (total, idle) in cpus1.items():
            total0, idle0 = cpus0.get(name, (0, 0))
            dt = total - total0
            busy[name] = round(1 - (idle - idle0) / dt, 3) if dt > 0 else 0.0
            busy_s += ((total - total0) - (idle - idle0)) / CLK_TCK
        elapsed = max(t1 - t0, 1e-9)
        ours = (ours1 - ours0) / elapsed
        return {
            "busy": busy,
            "ours_cores": round(ours, 3),
            "foreign_cores": round(max(0.0, busy_s / elapsed - ours), 3),
        }


async def control_get(session: aiohttp.ClientSession, fake: Proc, path: str) -> dict | None:
    async with session.get(fake.info["control_url"] + path) as resp:
        return await resp.json() if resp.status == 200 else None
