"""sd_notify and the systemd watchdog, against a fake NOTIFY_SOCKET (a unix datagram socket here).

The daemon runs as a subprocess, as systemd starts it: READY=1 once it listens, WATCHDOG=1 every half
WATCHDOG_USEC from its event loop (a loop blocked by a plugin stops the pings), STOPPING=1 on SIGTERM.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from claude2api.cli import watchdog_interval
from claude2api.testing import FakeClaude

from test_cli import API_KEY, clean_env, daemon_process, free_port

#: A plugin that blocks the event loop for a second on every chat request.
BLOCKING_PLUGIN = """
import time

def chat_middleware(settings):
    async def block_the_loop(ctx, call_next):
        time.sleep(1.0)
        async for event in call_next(ctx):
            yield event
    return block_the_loop
"""


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def receive(
    sock: socket.socket, seconds: float, received: list[tuple[float, str]] | None = None
) -> list[tuple[float, str]]:
    """Every datagram arriving within ``seconds``, with its arrival time (appended to ``received``)."""
    loop = asyncio.get_running_loop()
    received = [] if received is None else received
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), left)
        except TimeoutError:
            break
        received.append((time.monotonic(), data.decode()))
    return received


def test_the_interval_is_half_of_watchdog_usec_and_only_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


async def test_ready_then_watchdog_pings_from_the_event_loop_then_stopping(tmp_path: Path) -> None:
    (tmp_path / "block_plugin.py").write_text(BLOCKING_PLUGIN)
    async with FakeClaude() as fake:
        fake.add_account()
        with notify_socket(tmp_path) as sock:
            env = clean_env(
                SESSIONS=fake.accounts[0].session_key,
                APIKEY=API_KEY,
                ADDRESS=f"127.0.0.1:{free_port()}",
                CLAUDE_BASE_URL=fake.base_url,
                NOTIFY_SOCKET=str(tmp_path / "notify"),
                WATCHDOG_USEC="200000",  # pings every 0.1 s
                PLUGINS=str(tmp_path / "block_plugin.py"),
            )
            async with daemon_process(env, tmp_path) as (base, _, proc):
                steady = await receive(sock, 0.8)
                # A request whose plugin blocks the loop for a second: no ping meanwhile.
                async with aiohttp.ClientSession() as http:
                    request = asyncio.create_task(
                        http.post(
                            base + "/v1/chat/completions",
                            headers={"Authorization": f"Bearer {API_KEY}"},
                            json={"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hi"}]},
                        )
                    )
                    blocked: list[tuple[float, str]] = []
                    collector = asyncio.create_task(receive(sock, 30, blocked))
                    assert (await request).status == 200
                    await asyncio.sleep(0.5)
                # Still reading while the daemon stops: a full datagram queue would drop STOPPING=1.
                stopping_at = len(blocked)
                proc.terminate()
                assert await asyncio.wait_for(proc.wait(), 20) == 0
                await asyncio.sleep(0.2)
                collector.cancel()
            after = blocked[stopping_at:]
            del blocked[stopping_at:]

    states = [state for _, state in steady]
    assert states[0] == "READY=1"
    assert states[1:] and set(states[1:]) == {"WATCHDOG=1"}
    assert len(states[1:]) >= 4  # ~8 in 0.8 s
    pings = [at for at, state in steady + blocked if state == "WATCHDOG=1"]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) >= 0.9, str([round(a - pings[0], 2) for a in pings])  # the stalled loop stopped the pings...
    assert pings[-1] - pings[gaps.index(max(gaps))] >= 1.2  # ...and they resumed after it
    assert "STOPPING=1" in [state for _, state in after]


async def test_no_pings_when_the_watchdog_is_meant_for_another_process(tmp_path: Path) -> None:
    async with FakeClaude() as fake:
        fake.add_account()
        with notify_socket(tmp_path) as sock:
            env = clean_env(
                SESSIONS=fake.accounts[0].session_key,
                APIKEY=API_KEY,
                ADDRESS=f"127.0.0.1:{free_port()}",
                CLAUDE_BASE_URL=fake.base_url,
                NOTIFY_SOCKET=str(tmp_path / "notify"),
                WATCHDOG_USEC="200000",
                WATCHDOG_PID="1",
            )
            async with daemon_process(env, tmp_path):
                states = [state for _, state in await receive(sock, 0.6)]
    assert states == ["READY=1"]
