"""The real Claude Code CLI (from npm, installed by ``scripts/npm-tools``) answers through the daemon.

``claude -p`` with its default model (``claude-opus-4-8`` in 2.1.197) and with ``--model
sonnet|opus|haiku``, against the daemon over the fake claude.ai (strict about models and
thinking): the fake's reply text must come back on stdout. Claude Code runs with a temporary HOME
(it reads no user configuration) and with auto-update and non-essential traffic off.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from claude2api.testing import FakeClaude

from support import npm_tool

REPLY = "Pong from the fake claude.ai"
CLAUDE = npm_tool("claude")

pytestmark = [
    pytest.mark.skipif(
        CLAUDE is None,
        reason="Claude Code is not installed: needs node/npm and scripts/npm-tools (scripts/test runs it)",
    ),
    pytest.mark.timeout(180),
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeClaude]:
    async with FakeClaude(strict_models=True) as server:
        yield server


async def run_claude(daemon_url: str, api_key: str, home: Path, *args: str) -> tuple[int, str, str]:
    assert CLAUDE is not None
    node_dir = Path(shutil.which("node") or "node").parent
    env = {
        "PATH": f"{node_dir}:/usr/bin:/bin",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": daemon_url,
        "ANTHROPIC_API_KEY": api_key,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "TERM": "dumb",
    }
    if "LANG" in os.environ:
        env["LANG"] = os.environ["LANG"]
    proc = await asyncio.create_subprocess_exec(
        str(CLAUDE),
        "-p",
        "Say pong",
        *args,
        cwd=home,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 150)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "upstream"),
    [
        ((), "claude-opus-4-8"),
        (("--model", "sonnet"), "claude-sonnet-5"),
        (("--model", "opus"), "claude-opus-4-8"),  # Claude Code maps its aliases itself
        (("--model", "haiku"), "claude-haiku-4-5-20251001"),
    ],
    ids=["default", "sonnet", "opus", "haiku"],
)
async def test_claude_code_print_mode(fake: FakeClaude, make_daemon, tmp_path: Path, args: tuple[str, ...], upstream: str) -> None:
    fake.add_account(plan="max")
    fake.reply(REPLY)
    daemon = await make_daemon()
    code, out, err = await run_claude(daemon.url, daemon.api_key, tmp_path, *args)
    assert code == 0, f"claude exited {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert REPLY in out
    models = [c.json["model"] for c in fake.calls_to("/completion")]
    assert upstream in models, models
