"""Codex CLI (npm ``@openai/codex``) against the daemon's Responses API, end to end.

Codex is configured with a custom provider (``wire_api = "responses"``) pointing at the daemon, in a
throwaway ``HOME`` / ``CODEX_HOME``. The fake's ``[[tool:exec_command {...}]]`` directive makes the
"model" call Codex's own ``exec_command`` tool, so Codex runs a command and sends its output back.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import Daemon

from support import MODEL, npm_tool


def codex_binary() -> str | None:
    """The Codex CLI binary scripts/npm-tools installed (the test command runs it), or ``None``."""
    binary = npm_tool("codex")
    return None if binary is None else str(binary)


async def run_codex(daemon: Daemon, tmp_path: Path, prompt: str) -> tuple[str, str]:
    binary = codex_binary()
    if binary is None:
        pytest.skip("Codex CLI is not installed: needs node/npm and scripts/npm-tools (run by scripts/test)")
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    provider = f'{{name="c2a",base_url="{daemon.url}/v1",env_key="C2A_KEY",wire_api="responses"}}'
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "C2A_KEY": daemon.api_key or "none",
        "RUST_LOG": "error",
    }
    proc = await asyncio.create_subprocess_exec(
        binary, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
        "-c", "model_provider=c2a", "-c", f"model_providers.c2a={provider}", "-m", MODEL, prompt,
        cwd=work, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-3000:])
    return out.decode(), err.decode()


def read_by_the_model(body: dict[str, Any]) -> str:
    """The completion's prompt and its inline attachments (the transcript may be in ``context.txt``)."""
    return body["prompt"] + "".join(a.get("extracted_content", "") for a in body.get("attachments", []))


async def test_codex_exec_answers_a_prompt(fake: FakeClaude, daemon: Daemon, tmp_path: Path) -> None:
    fake.reply("Hello from claude2api")
    out, err = await run_codex(daemon, tmp_path, "say hi")
    assert "Hello from claude2api" in out, (out, err[-2000:])
    body = fake.calls_to("/completion")[-1].json
    assert "say hi" in read_by_the_model(body)  # Codex's long instructions send the transcript to context.txt
    assert "exec_command" in [t["name"] for t in body["tools"]]


async def test_codex_exec_runs_a_command_in_a_tool_loop(fake: FakeClaude, daemon: Daemon, tmp_path: Path) -> None:
    fake.ping_interval = 0.2
    out, err = await run_codex(daemon, tmp_path, 'Run it. [[tool:exec_command {"cmd": "echo codex-loop-$((40+2))"}]]')
    assert [call.name for call in fake.tool_calls.values()] == ["exec_command"]
    assert "codex-loop-42" in read_by_the_model(fake.calls_to("/completion")[-1].json)  # the output went back
    assert "codex-loop-42" in out, (out, err[-2000:])  # and reached the final answer
