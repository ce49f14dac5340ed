"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aiohttp
import openai

from claude2api.testing.daemon import Daemon

MODEL = "claude-sonnet-4-6"

#: Where ``scripts/npm-tools`` installs the CLI clients the end-to-end tests drive.
NPM_TOOLS = Path(__file__).resolve().parent.parent / ".cache" / "npm-tools"


def npm_tool(name: str) -> Path | None:
    """The ``claude`` / ``codex`` binary ``scripts/npm-tools`` installed, or ``None`` when it is
    not there (no node/npm, or the script was not run: ``scripts/test`` runs it)."""
    binary = NPM_TOOLS / "node_modules" / ".bin" / name
    return binary if binary.exists() and shutil.which("node") else None


def sdk(daemon: Daemon, prefix: str = "/v1", api_key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=daemon.url + prefix, api_key=api_key or daemon.api_key, max_retries=0)


async def raw_post(daemon: Daemon, path: str, body: object | bytes, headers: dict[str, str] | None = None):
    hdrs = {"Authorization": f"Bearer {daemon.api_key}", "Content-Type": "application/json"}
    hdrs.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as http:
        async with http.post(daemon.url + path, data=data, headers=hdrs) as resp:
            return resp.status, resp.headers.copy(), await resp.read()


def sse_data(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, asserting there is no ``event:`` line."""
    payloads = []
    for frame in raw.decode().split("\n\n"):
        for line in frame.splitlines():
            assert not line.startswith("event:"), line
            if line.startswith("data: "):
                payloads.append(line[6:])
    return payloads
