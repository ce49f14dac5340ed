"""Secrets from files (``*_FILE``, systemd credentials), their precedence, and rotation by SIGHUP.

The loading rules are checked on :func:`load_settings` directly; rotation runs the real daemon as a
subprocess: its API key file is rewritten, SIGHUP is sent, and the old key stops working.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from claude2api.config import ConfigError, Settings, load_settings, secret_settings
from claude2api.testing import FakeClaude

from test_cli import clean_env, daemon_process, free_port

KEY_A = "sk-ant-sid01-" + "a" * 86 + "-abcdefAA"
KEY_B = "sk-ant-sid01-" + "b" * 86 + "-abcdefAA"
KEY_C = "sk-ant-sid01-" + "c" * 86 + "-abcdefAA"
LOCAL = {"ADDRESS": "127.0.0.1:8080"}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def keys(settings: Settings) -> list[str]:
    return [s.key for s in settings.sessions]


def test_the_secret_settings_are_the_declared_ones() -> None:
    # Derived from the declarations (secret=True), so a new secret setting gets *_FILE too.
    assert set(secret_settings()) == {"sessions", "api_keys", "proxy", "admin_key", "metrics_key"}


def test_file_content_is_the_value(tmp_path: Path) -> None:
    environ = {
        **LOCAL,
        "SESSIONS_FILE": str(write(tmp_path / "sessions", f"{KEY_A}\n\n{KEY_B},{KEY_C}\n")),
        "APIKEY_FILE": str(write(tmp_path / "apikey", "sk-one\nsk-two\n")),
        "ADMIN_KEY_FILE": str(write(tmp_path / "admin", "  admin-secret\n")),
        "PROXY_FILE": str(write(tmp_path / "proxy", "socks5h://user:pw@127.0.0.1:1080\n")),
    }
    settings = load_settings(None, environ)
    assert keys(settings) == [KEY_A, KEY_B, KEY_C]  # one per line, or comma-separated
    assert settings.api_keys == ("sk-one", "sk-two")
    assert settings.admin_key == "admin-secret"
    assert settings.proxy == "socks5h://user:pw@127.0.0.1:1080"
    assert "pw" in settings.secret_values()  # a proxy password from a file is masked in logs too


def test_precedence_variable_then_file_then_credential_then_yaml(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", "api_key: from-yaml\naddress: 127.0.0.1:8080\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "apikey", "from-credential\n")
    write(credentials / "sessions", KEY_C)
    apikey_file = write(tmp_path / "apikey", "from-file\n")
    base = {"SESSIONS": KEY_A}

    assert load_settings(config, base).api_keys == ("from-yaml",)
    with_credentials = {**base, "CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_settings(config, with_credentials).api_keys == ("from-credential",)
    with_file = {**with_credentials, "APIKEY_FILE": str(apikey_file)}
    assert load_settings(config, with_file).api_keys == ("from-file",)
    assert load_settings(config, {**with_credentials, "APIKEY": "from-env"}).api_keys == ("from-env",)
    # SESSIONS in the environment beats the credential; without it, the credential is read.
    assert keys(load_settings(config, with_credentials)) == [KEY_A]
    assert keys(load_settings(config, {"CREDENTIALS_DIRECTORY": str(credentials)})) == [KEY_C]


def test_an_empty_file_counts_as_unset(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "admin_key", "")  # as install-service creates it
    write(credentials / "apikey", "from-credential")
    environ = {
        **LOCAL,
        "SESSIONS": KEY_A,
        "CREDENTIALS_DIRECTORY": str(credentials),
        "APIKEY_FILE": str(write(tmp_path / "apikey", "\n")),
    }
    settings = load_settings(None, environ)
    assert settings.admin_key is None
    assert settings.api_keys == ("from-credential",)  # the empty APIKEY_FILE falls through
    # A credential the unit does not load is simply absent.
    assert load_settings(None, {**environ, "CREDENTIALS_DIRECTORY": str(tmp_path / "none")}).api_keys == ()


def test_variable_and_file_together_is_an_error_naming_both(tmp_path: Path) -> None:
    environ = {**LOCAL, "SESSIONS": KEY_A, "APIKEY": "k", "APIKEY_FILE": str(write(tmp_path / "k", "k2"))}
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ)
    assert "APIKEY and APIKEY_FILE are both set" in str(error.value)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing", None, "No such file or directory"),
        ("directory", "<dir>", "Is a directory"),
        ("binary", b"\xff\xfe" + KEY_B.encode(), "is not UTF-8 text"),
        ("two-lines", f"admin-{KEY_B}\nsecond-{KEY_B}\n", "must hold a single line"),
        ("huge", "x" * (1 << 20) + KEY_B, "is larger than"),
    ],
)
def test_an_unusable_file_is_one_line_naming_variable_and_path_not_content(
    tmp_path: Path, name: str, content: str | bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content == "<dir>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings(None, {**LOCAL, "SESSIONS": KEY_A, "ADMIN_KEY_FILE": str(path)})
    message = str(error.value)
    assert message.startswith(f"cannot read ADMIN_KEY_FILE ({path})") or message.startswith(
        f"ADMIN_KEY_FILE ({path})"
    ), message
    assert needle in message
    assert "\n" not in message and "bbbb" not in message


def test_a_bad_value_in_a_file_is_reported_without_the_secret(tmp_path: Path) -> None:
    sessions = write(tmp_path / "sessions", f"{KEY_A}\nsessionKey={KEY_B}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(None, {**LOCAL, "SESSIONS_FILE": str(sessions)})
    assert f"SESSIONS_FILE ({sessions}) entry 2" in str(error.value)
    assert "bbbb" not in str(error.value) and "aaaa" not in str(error.value)

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials / "proxy", "ftp://user:hunter2@proxy.example:21")
    with pytest.raises(ConfigError) as error:
        load_settings(None, {**LOCAL, "SESSIONS": KEY_A, "CREDENTIALS_DIRECTORY": str(credentials)})
    assert f"credential proxy ({credentials / 'proxy'})" in str(error.value)
    assert "hunter2" not in str(error.value)


async def status_with(http: aiohttp.ClientSession, base: str, key: str) -> int:
    async with http.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}) as resp:
        return resp.status


async def session_count(http: aiohttp.ClientSession, base: str, key: str) -> int:
    async with http.get(base + "/health", headers={"Authorization": f"Bearer {key}"}) as resp:
        return sum((await resp.json())["sessions"].values())


async def test_sighup_rereads_the_files_and_a_rotated_api_key_works_without_restart(tmp_path: Path) -> None:
    async with FakeClaude() as fake:
        first, second = fake.add_account(), fake.add_account()
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        apikey = write(secrets / "apikey", "sk-old-key-0123456789\n")
        sessions = write(secrets / "sessions", first.session_key + "\n")
        env = clean_env(
            APIKEY_FILE=str(apikey),
            SESSIONS_FILE=str(sessions),
            ADDRESS=f"127.0.0.1:{free_port()}",
            CLAUDE_BASE_URL=fake.base_url,
        )
        async with daemon_process(env, tmp_path) as (base, output, proc), aiohttp.ClientSession() as http:
            assert await status_with(http, base, "sk-old-key-0123456789") == 200
            assert await status_with(http, base, "sk-new-key-9876543210") == 401
            assert await session_count(http, base, "sk-old-key-0123456789") == 1

            # Rotate: a new key (the way an editor replaces a file) and a second account.
            write(secrets / "apikey.tmp", "sk-new-key-9876543210\n").replace(apikey)
            write(sessions, f"{first.session_key}\n{second.session_key}\n")
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if await status_with(http, base, "sk-old-key-0123456789") == 401:
                    break
                await asyncio.sleep(0.05)
            assert await status_with(http, base, "sk-old-key-0123456789") == 401
            assert await status_with(http, base, "sk-new-key-9876543210") == 200
            assert await session_count(http, base, "sk-new-key-9876543210") == 2

            # A file that cannot be read on reload keeps the running configuration.
            apikey.unlink()
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if b"config_reload_failed" in b"".join(output):
                    break
                await asyncio.sleep(0.05)
            assert await status_with(http, base, "sk-new-key-9876543210") == 200
        log = b"".join(output).decode()
    assert f"cannot read APIKEY_FILE ({apikey})" in log
    for secret in ("sk-old-key-0123456789", "sk-new-key-9876543210", first.session_key, second.session_key):
        assert secret not in log
