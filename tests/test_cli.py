"""The daemon as users start it: a separate process, configured by environment variables."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from claude2api.testing import FakeClaude
from claude2api.testing.daemon import run_daemon, settings_for
from claude2api.testing.demo import DEMO_NOTE

from support import raw_post

API_KEY = "sk-cli-test-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT", "PYTHONPATH")}
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "claude2api", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


@asynccontextmanager
async def daemon_process(
    env: dict[str, str], cwd: Path, *args: str
) -> AsyncIterator[tuple[str, list[bytes], asyncio.subprocess.Process]]:
    """Start ``python -m claude2api``; yield its base URL once /health answers, its output, the process."""
    port = int(env["ADDRESS"].rsplit(":", 1)[1])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "claude2api", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output: list[bytes] = []

    async def pump() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line)

    reader = asyncio.create_task(pump())
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError(b"".join(output).decode())
        yield base, output, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await reader


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "SESSIONS"),
        ({"SESSIONS": "sk-ant-sid01-abc", "MAX_CHAT_HISTORY_LENGTH": "lots"}, "MAX_CHAT_HISTORY_LENGTH"),
        ({"ENABLE_MIRROR_API": "true"}, "MIRROR_API_PREFIX"),
        ({"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "mirror"}, "MIRROR_API_PREFIX"),
        ({"SESSIONS": "sk-ant-sid01-abc", "PROXY": "ftp://user:hunter22@proxy:21"}, "PROXY"),
        ({"SESSIONS": "sk-ant-sid01-abc", "ADDRESS": "0.0.0.0:8080"}, "APIKEY"),
    ],
)
async def test_bad_configuration_stops_startup_with_one_line(env, needle, tmp_path: Path) -> None:
    code, _out, err = await run_cli(env=clean_env(**env), cwd=tmp_path)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "hunter22" not in err and "Traceback" not in err


async def test_env_only_start_serves_requests_and_logs_no_secret(tmp_path: Path) -> None:
    async with FakeClaude() as fake:
        account = fake.add_account()
        env = clean_env(
            SESSIONS=f" {account.session_key} ",
            APIKEY=API_KEY,
            ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url,
        )
        async with daemon_process(env, tmp_path) as (base, output, _):
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0) as client:
                result = await client.chat.completions.create(
                    model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hi"}]
                )
            async with openai.AsyncOpenAI(
                base_url=base + "/v1", api_key=account.session_key, max_retries=0
            ) as wrong_key:
                with pytest.raises(openai.AuthenticationError):
                    await wrong_key.models.list()
            assert result.choices[0].message.content
        log = b"".join(output).decode()
    assert '"request_id"' in log  # JSON lines when not on a terminal
    assert account.session_key not in log
    assert account.session_key[20:40] not in log
    assert API_KEY not in log


def exported(banner: str, variable: str) -> str:
    """The value the banner's ``export A=... B=...`` lines give ``variable``."""
    for line in banner.splitlines():
        for word in line.split():
            if word.startswith(variable + "="):
                return word.split("=", 1)[1]
    raise AssertionError(f"{variable} not in the banner:\n{banner}")


async def test_demo_prints_a_base_url_and_key_that_work(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(ADDRESS=f"127.0.0.1:{port}")
    async with daemon_process(env, tmp_path, "--demo") as (base, output, _):
        banner = b"".join(output).decode()
        assert f"{base}/v1" in banner
        assert f"Base URL (Anthropic SDK): {base}\n" in banner
        key = next(line.split()[-1] for line in banner.splitlines() if "API key" in line)
        async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as client:
            result = await client.chat.completions.create(
                model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hello demo"}]
            )
        # The environment lines for Codex/OpenAI clients and for Claude Code, used as printed.
        async with openai.AsyncOpenAI(
            base_url=exported(banner, "OPENAI_BASE_URL"), api_key=exported(banner, "OPENAI_API_KEY"), max_retries=0
        ) as client:
            assert [m.id for m in (await client.models.list()).data]
        async with anthropic.AsyncAnthropic(
            base_url=exported(banner, "ANTHROPIC_BASE_URL"), api_key=exported(banner, "ANTHROPIC_API_KEY"),
            max_retries=0,
        ) as claude_code:
            message = await claude_code.messages.create(
                model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "Hello code"}]
            )
    assert "Hello demo" in result.choices[0].message.content
    assert "Hello code" in message.content[0].text
    # The demo's chain starts with the middleware that marks its errors (tested below).
    assert '"order": ["demo_errors", ' in b"".join(output).decode()


async def test_demo_errors_say_they_come_from_the_built_in_fake() -> None:
    async with FakeClaude() as fake:
        fake.add_account(behaviour="server_error")
        settings = settings_for(fake.base_url, [fake.accounts[0].session_key], {"PLUGINS": "claude2api.testing.demo"})
        async with run_daemon(settings) as daemon:
            async with openai.AsyncOpenAI(base_url=daemon.url + "/v1", api_key=daemon.api_key, max_retries=0) as client:
                with pytest.raises(openai.APIStatusError) as failed:
                    await client.chat.completions.create(
                        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "Hi"}]
                    )
                assert failed.value.status_code == 502
                message = failed.value.body["message"]  # type: ignore[index]
                assert message == "claude.ai is unavailable (HTTP 500: api_error: Internal server error)" + DEMO_NOTE

                # A client mistake stays the client's.
                with pytest.raises(openai.BadRequestError) as bad:
                    await client.chat.completions.create(model="claude-sonnet-4-6", messages=[])
                assert "demo" not in bad.value.message

    async with FakeClaude() as fake:
        fake.add_account()
        fake.reply(deltas=["one ", "two ", "three "], error_after=1)
        settings = settings_for(fake.base_url, [fake.accounts[0].session_key], {"PLUGINS": "claude2api.testing.demo"})
        async with run_daemon(settings) as daemon:
            status, _, body = await raw_post(
                daemon, "/v1/messages",
                {"model": "claude-sonnet-4-6", "max_tokens": 50, "stream": True,
                 "messages": [{"role": "user", "content": "Hi"}]},
            )
    assert status == 200
    error = next(json.loads(line[6:]) for line in body.decode().splitlines() if '"type":"error"' in line.replace(" ", ""))
    assert error["error"]["message"].endswith(DEMO_NOTE)  # mid-stream too


async def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("claude2api")
    proc = await asyncio.create_subprocess_exec(str(script), "--version", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.decode().startswith("claude2api ")


async def test_sigterm_lets_open_streams_finish_and_cleans_up(tmp_path: Path) -> None:
    async with FakeClaude() as fake:
        fake.add_account()
        fake.reply(deltas=[f"w{i} " for i in range(15)], delay=0.1)
        env = clean_env(
            SESSIONS=fake.accounts[0].session_key,
            APIKEY=API_KEY,
            ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url,
        )
        async with daemon_process(env, tmp_path) as (base, _, proc):
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    base + "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {API_KEY}"},
                    json={"model": "claude-sonnet-4-6", "stream": True,
                          "messages": [{"role": "user", "content": "Hi"}]},
                ) as resp:
                    await resp.content.readuntil(b"w1 ")
                    proc.terminate()
                    body = await resp.read()
            assert b"w14 " in body and body.rstrip().endswith(b"data: [DONE]")
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert fake.conversations == {}  # deleted before the process exited
