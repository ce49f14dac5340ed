"""Plugins: loaded from PLUGINS, they see the neutral request and may rewrite the reply."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude2api.testing import FakeClaude

from support import MODEL, sdk
from test_cli import clean_env, run_cli

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


async def test_system_prompt_plugin(fake: FakeClaude, make_daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSTEM_PROMPT", "Answer in French.")
    daemon = await make_daemon(env={"PLUGINS": str(PLUGINS / "system_prompt.py")})
    async with sdk(daemon) as client:
        await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert fake.calls_to("/completion")[-1].json["prompt"] == "System: Answer in French.\n\nHuman: Hi\n\n"


async def test_plugin_rewrites_streamed_events(fake: FakeClaude, make_daemon) -> None:
    fake.reply(deltas=["write to jo", "hn.doe@exam", "ple.com today"])
    daemon = await make_daemon(env={"PLUGINS": str(PLUGINS / "redact_emails.py")})
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "Hi"}]
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "write to [email] today"


async def test_plugin_module_path_and_order(fake: FakeClaude, make_daemon, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "shout.py").write_text(
        "from claude2api.plugin import TextDelta\n"
        "def chat_middleware(settings):\n"
        "    async def shout(ctx, call_next):\n"
        "        async for event in call_next(ctx):\n"
        "            yield TextDelta(event.text.upper()) if isinstance(event, TextDelta) else event\n"
        "    return shout\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fake.reply("quiet words")
    daemon = await make_daemon(env={"PLUGINS": "shout"})
    async with sdk(daemon) as client:
        result = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert result.choices[0].message.content == "QUIET WORDS"


async def test_missing_plugin_is_a_startup_error(tmp_path: Path) -> None:
    env = clean_env(SESSIONS="sk-ant-sid01-abc", ADDRESS="127.0.0.1:0", PLUGINS="no_such_plugin_module")
    code, _, err = await run_cli(env=env, cwd=tmp_path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "no_such_plugin_module" in err
