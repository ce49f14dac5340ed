"""Plugins: loaded from PLUGINS / ``plugins:`` (with options) or entry points, they see the neutral
request and may rewrite the reply; the plugin API (:mod:`claude2api.plugin`) and its test helper."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import sys
from pathlib import Path

import aiohttp
import anthropic
import pytest

from claude2api.config import ConfigError, PluginSpec, Settings, load_settings
from claude2api.http.app import apply_settings
from claude2api.plugin import PLUGIN_API_VERSION, ChatRequest, Message, Stop, TextDelta, TextPart
from claude2api.testing import FakeClaude
from claude2api.testing.daemon import TEST_API_KEY, run_daemon, settings_for
from claude2api.testing.plugins import plugin_context, run_middleware

from support import MODEL, sdk
from test_cli import clean_env, run_cli

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
HI = [{"role": "user", "content": "Hi"}]


def yaml_settings(fake: FakeClaude, tmp_path: Path, plugins_yaml: str, **env: str) -> Settings:
    """Settings from a real YAML file holding ``plugins_yaml``, pointed at ``fake``."""
    if not fake.accounts:
        fake.add_account()
    config = tmp_path / "config.yaml"
    config.write_text(plugins_yaml)
    environ = {
        "SESSIONS": fake.accounts[0].session_key,
        "CLAUDE_BASE_URL": fake.base_url,
        "APIKEY": TEST_API_KEY,
        "ADDRESS": "127.0.0.1:0",
        **env,
    }
    return load_settings(config, environ)


async def test_system_prompt_plugin_takes_its_prompt_from_options(fake: FakeClaude, tmp_path: Path) -> None:
    settings = yaml_settings(
        fake,
        tmp_path,
        f"plugins:\n  - module: {PLUGINS / 'system_prompt.py'}\n    options: {{prompt: Answer in French.}}\n",
    )
    async with run_daemon(settings) as daemon, sdk(daemon) as client:
        await client.chat.completions.create(model=MODEL, messages=HI)
    assert fake.calls_to("/completion")[-1].json["prompt"] == "System: Answer in French.\n\nHuman: Hi\n\n"


async def test_plugin_without_options_stays_out(fake: FakeClaude, make_daemon) -> None:
    daemon = await make_daemon(env={"PLUGINS": str(PLUGINS / "system_prompt.py")})
    async with sdk(daemon) as client:
        await client.chat.completions.create(model=MODEL, messages=HI)
    assert fake.calls_to("/completion")[-1].json["prompt"] == "Human: Hi\n\n"


def test_plugins_section_forms(tmp_path: Path) -> None:
    def load(text: str, **env: str) -> tuple[PluginSpec, ...]:
        config = tmp_path / "c.yaml"
        config.write_text(text)
        return load_settings(config, {"SESSIONS": "sk-ant-sid01-abc", "ADDRESS": "127.0.0.1:0", **env}).plugins

    assert load("plugins: [a.b, {module: c.py, options: {x: 1}}, {entry_point: ep}]") == (
        PluginSpec("a.b"),
        PluginSpec("c.py", {"x": 1}),
        PluginSpec("ep", {}, entry_point=True),
    )
    assert load("plugins: {a.b: {x: [1, 2]}, c.d: null}") == (PluginSpec("a.b", {"x": [1, 2]}), PluginSpec("c.d"))
    assert load("plugins: [a.b]", PLUGINS="x.y, z.py") == (PluginSpec("x.y"), PluginSpec("z.py"))
    for bad, words in [
        ("plugins: [{module: a, opts: {}}]", "unknown field(s) 'opts'"),
        ("plugins: [{module: a, entry_point: b}]", "exactly one of module: or entry_point:"),
        ("plugins: [{module: a, options: [1]}]", "options must be a mapping"),
        ("plugins: 3", "must be a list"),
    ]:
        with pytest.raises(ConfigError, match="plugins") as caught:
            load(bad)
        assert words in str(caught.value)


def test_plugin_option_values_are_not_shown() -> None:
    settings = Settings(plugins=(PluginSpec("p.mod", {"api_key": "hunter2-secret"}),))
    assert settings.redacted()["plugins"] == [{"module": "p.mod", "options": ["api_key"]}]
    assert "hunter2-secret" not in repr(settings)


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


async def test_options_reach_a_module_plugin_and_one_argument_factories_still_work(
    fake: FakeClaude, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tagger.py").write_text(
        "from claude2api.plugin import TextDelta\n"
        "requires_api = 1\n"
        "def chat_middleware(settings, options):\n"
        "    async def tag(ctx, call_next):\n"
        "        ctx.log.info('tagging', dialect=ctx.dialect)\n"
        "        async for event in call_next(ctx):\n"
        "            yield TextDelta(options['tag'] + event.text) if isinstance(event, TextDelta) else event\n"
        "    return tag\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fake.reply("x")
    settings = yaml_settings(
        fake, tmp_path, "plugins: {tagger: {tag: '>'}, " + str(PLUGINS / "redact_emails.py") + ": {}}\n"
    )
    async with run_daemon(settings) as daemon, sdk(daemon) as client:
        result = await client.chat.completions.create(model=MODEL, messages=HI)
    assert result.choices[0].message.content == ">x"


async def test_options_for_a_plugin_without_an_options_parameter_is_a_start_error(
    fake: FakeClaude, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plain_plugin.py").write_text("def chat_middleware(settings):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = yaml_settings(fake, tmp_path, "plugins: {plain_plugin: {x: 1}}\n")
    with pytest.raises(ConfigError, match="plugin plain_plugin failed to start: TypeError: it was given options"):
        async with run_daemon(settings):
            pass


async def test_a_plugin_requiring_another_api_version_is_a_clear_start_error(tmp_path: Path) -> None:
    (tmp_path / "future.py").write_text("requires_api = 99\ndef chat_middleware(settings, options):\n    return None\n")
    env = clean_env(SESSIONS="sk-ant-sid01-abc", ADDRESS="127.0.0.1:0", PLUGINS="future.py")
    code, _, err = await run_cli(env=env, cwd=tmp_path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"plugin future.py requires plugin API 99, this claude2api provides {PLUGIN_API_VERSION}" in err


def _install_entry_points(site: Path, entries: dict[str, str]) -> None:
    """A fake installed distribution announcing ``entries`` in the ``claude2api.plugins`` group."""
    info = site / "c2a_test_plugins-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: c2a-test-plugins\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[claude2api.plugins]\n{lines}")


async def test_entry_point_plugins_load_only_when_enabled(
    fake: FakeClaude, make_daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ep_plugins.py").write_text(
        "from claude2api.plugin import TextDelta\n"
        "def bang(settings, options):\n"
        "    async def bang(ctx, call_next):\n"
        "        async for event in call_next(ctx):\n"
        "            yield TextDelta(event.text + options.get('mark', '!')) if isinstance(event, TextDelta) else event\n"
        "    return bang\n"
        "def chat_middleware(settings):\n"
        "    async def star(ctx, call_next):\n"
        "        async for event in call_next(ctx):\n"
        "            yield TextDelta('*' + event.text) if isinstance(event, TextDelta) else event\n"
        "    return star\n"
    )
    _install_entry_points(tmp_path, {"bang": "ep_plugins:bang", "star": "ep_plugins"})
    monkeypatch.syspath_prepend(str(tmp_path))
    fake.reply("hi")

    async def reply(env: dict[str, str]) -> str:
        settings = settings_for(fake.base_url, [fake.accounts[0].session_key], env)
        async with run_daemon(settings) as daemon, sdk(daemon) as client:
            result = await client.chat.completions.create(model=MODEL, messages=HI)
        return result.choices[0].message.content or ""

    fake.add_account()
    assert await reply({}) == "hi"  # off by default
    assert await reply({"PLUGINS_ENTRY_POINTS": "true"}) == "*hi!"  # all, by name: bang then star
    assert await reply({"PLUGINS_ENTRY_POINTS": "star"}) == "*hi"
    with pytest.raises(ConfigError, match=r"no installed claude2api\.plugins entry point nope"):
        await reply({"PLUGINS_ENTRY_POINTS": "nope"})
    # Listed in the plugins section, an entry point gets options (and is not loaded twice).
    settings = yaml_settings(fake, tmp_path, "plugins: [{entry_point: bang, options: {mark: '?'}}]\n")
    settings = dataclasses.replace(settings, plugins_entry_points=("*",))
    async with run_daemon(settings) as daemon, sdk(daemon) as client:
        result = await client.chat.completions.create(model=MODEL, messages=HI)
    assert result.choices[0].message.content == "*hi?"


async def test_plugin_failing_mid_stream_ends_with_the_dialects_error_frame(
    fake: FakeClaude, make_daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flaky.py").write_text(
        "def chat_middleware(settings):\n"
        "    async def flaky(ctx, call_next):\n"
        "        seen = 0\n"
        "        async for event in call_next(ctx):\n"
        "            yield event\n"
        "            seen += 1\n"
        "            if seen == 2:\n"
        "                raise KeyError('plugin bug')\n"
        "    return flaky\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fake.reply(deltas=["one ", "two ", "three"])
    daemon = await make_daemon(env={"PLUGINS": "flaky"})
    headers = {"Authorization": f"Bearer {daemon.api_key}"}
    async with aiohttp.ClientSession() as http:
        body = {"model": MODEL, "stream": True, "messages": HI}
        async with http.post(daemon.url + "/v1/chat/completions", json=body, headers=headers) as resp:
            assert resp.status == 200
            raw = (await resp.read()).decode()  # the stream ends cleanly: no ClientPayloadError
    payloads = [line[6:] for line in raw.splitlines() if line.startswith("data: ")]
    assert "one " in raw and "three" not in raw
    error = json.loads(next(p for p in payloads if '"error"' in p))["error"]
    assert error["type"] == "server_error" and "chat middleware failed" in error["message"]
    assert "plugin bug" not in raw  # the exception text stays in the log

    client = anthropic.AsyncAnthropic(base_url=daemon.url, api_key=daemon.api_key, max_retries=0)
    with pytest.raises(anthropic.APIStatusError, match="chat middleware failed"):
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            async for _ in stream:
                pass


async def test_reload_reimports_an_edited_module_plugin(
    fake: FakeClaude, make_daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from claude2api.plugin import TextDelta\n"
        "def chat_middleware(settings):\n"
        "    async def edit(ctx, call_next):\n"
        "        async for event in call_next(ctx):\n"
        "            yield TextDelta({!r}) if isinstance(event, TextDelta) else event\n"
        "    return edit\n"
    )
    (tmp_path / "editable_plugin.py").write_text(source.format("before"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "editable_plugin", raising=False)
    fake.reply(deltas=["x"])
    daemon = await make_daemon(env={"PLUGINS": "editable_plugin"})
    async with sdk(daemon) as client:
        first = await client.chat.completions.create(model=MODEL, messages=HI)
        (tmp_path / "editable_plugin.py").write_text(source.format("after the edit"))
        importlib.invalidate_caches()
        apply_settings(daemon.services, daemon.services.settings)  # what SIGHUP runs
        second = await client.chat.completions.create(model=MODEL, messages=HI)
    assert (first.choices[0].message.content, second.choices[0].message.content) == ("before", "after the edit")


async def test_a_running_request_keeps_its_settings_through_a_reload(fake: FakeClaude, make_daemon) -> None:
    fake.reply(deltas=["a", "b", "c", "d"], delay=0.15)
    daemon = await make_daemon(env={"CHAT_DELETE": "true"})
    async with sdk(daemon) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=HI, stream=True)
        chunks = [await anext(aiter(stream))]
        apply_settings(daemon.services, dataclasses.replace(daemon.services.settings, chat_delete=False))
        chunks += [chunk async for chunk in stream]
        await daemon.idle()
        deleted_after_first = len([c for c in fake.calls if c.method == "DELETE"])
        await client.chat.completions.create(model=MODEL, messages=HI)  # starts after the reload
        await daemon.idle()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abcd"
    assert deleted_after_first == 1  # the running request deleted its chat, as CHAT_DELETE said when it began
    assert len([c for c in fake.calls if c.method == "DELETE"]) == 1  # the new one kept it


async def test_run_middleware_drives_a_plugin_without_sockets() -> None:
    redact = _load_example("redact_emails")
    middleware = redact.chat_middleware(Settings(), {"replacement": "<hidden>"})
    request = ChatRequest(model=MODEL, upstream_model=None, messages=[Message("user", [TextPart("hi")])])
    events = await run_middleware(middleware, request, [TextDelta("mail jo@exa"), TextDelta("mple.org now"), Stop()])
    assert events == [TextDelta("mail "), TextDelta("<hidden> "), TextDelta("now"), Stop()]
    with pytest.raises(RuntimeError, match="upstream broke"):
        await run_middleware(middleware, request, [TextDelta("x"), RuntimeError("upstream broke")])

    system = _load_example("system_prompt").chat_middleware(Settings(), {"prompt": "Be brief."})
    ctx = plugin_context(request, dialect="anthropic")
    assert await run_middleware(system, ctx, [TextDelta("ok"), Stop()]) == [TextDelta("ok"), Stop()]
    assert [m.role for m in ctx.request.messages] == ["system", "user"]
    assert ctx.settings == Settings() and ctx.dialect == "anthropic"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", PLUGINS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
