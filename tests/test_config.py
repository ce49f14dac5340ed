"""Settings loading: the original's environment variables, YAML in both spellings, precedence, errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from claude2api.config import (
    ConfigError,
    PluginSpec,
    SessionSpec,
    Settings,
    env_name,
    load_settings,
    read_dotenv,
)
from claude2api.logs import fingerprint

KEY_A = "sk-ant-sid01-" + "A1b2C3d4" * 10
KEY_B = "sk-ant-sid01-" + "Zy9Xw8Vu" * 10
ORG = "1c2d6a3e-5b4f-4a1e-9c8d-7e6f5a4b3c2d"
API_KEY = "c2a-apikey-5e1f0d9c"
PROXY_PASSWORD = "pr0xy-passw0rd-77"
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"

#: Enough for a valid configuration.
BASE_ENV = {"SESSIONS": KEY_A, "APIKEY": API_KEY}


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray config.yaml in the working directory."""
    monkeypatch.chdir(tmp_path)


def load(env: dict[str, str], config: str | None = None) -> Settings:
    if config is None:
        return load_settings(None, env)
    path = Path("test-config.yaml")
    path.write_text(config, encoding="utf-8")
    return load_settings(path, env)


def config_error(env: dict[str, str], config: str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(env, config)
    message = str(info.value)
    assert "\n" not in message
    for secret in (KEY_A, KEY_B, API_KEY, PROXY_PASSWORD):
        assert secret not in message
    return message


# --- environment only, as the original was configured -------------------------------------------


def test_env_only_defaults_match_the_original() -> None:
    settings = load(BASE_ENV)
    assert settings.sessions == (SessionSpec(KEY_A),)
    assert settings.api_keys == (API_KEY,)
    assert settings.address == "0.0.0.0:8080"
    assert settings.proxy is None
    assert settings.chat_delete is True
    assert settings.max_chat_history_length == 10000
    assert settings.no_role_prefix is False
    assert settings.prompt_disable_artifacts is False
    assert settings.enable_mirror_api is False
    assert settings.mirror_api_prefix == ""
    assert settings.retry_count == 5


def test_env_original_variables() -> None:
    settings = load(
        {
            "SESSIONS": f" {KEY_A} ,, {KEY_B} : {ORG.upper()} ,",
            "ADDRESS": "127.0.0.1:9000",
            "APIKEY": f"{API_KEY}, second-key",
            "PROXY": "http://127.0.0.1:2080",
            "CHAT_DELETE": "false",
            "MAX_CHAT_HISTORY_LENGTH": "500",
            "NO_ROLE_PREFIX": "true",
            "PROMPT_DISABLE_ARTIFACTS": "true",
            "ENABLE_MIRROR_API": "true",
            "MIRROR_API_PREFIX": "/mirror/",
        }
    )
    assert settings.sessions == (SessionSpec(KEY_A), SessionSpec(KEY_B, ORG))
    assert (settings.host, settings.port) == ("127.0.0.1", 9000)
    assert settings.api_keys == (API_KEY, "second-key")
    assert settings.proxy == "http://127.0.0.1:2080"
    assert settings.chat_delete is False
    assert settings.max_chat_history_length == 500
    assert settings.no_role_prefix is True
    assert settings.prompt_disable_artifacts is True
    assert settings.enable_mirror_api is True
    assert settings.mirror_api_prefix == "/mirror"


def test_env_new_settings() -> None:
    settings = load(
        BASE_ENV
        | {
            "CLAUDE_BASE_URL": "http://127.0.0.1:8999/",
            "UPSTREAM_PROTOCOL": "2025",
            "THINKING_OUTPUT": "Reasoning_Content",
            "MODELS": "claude-x-1, claude-y-2",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
            "UPSTREAM_READ_TIMEOUT": "120.5",
            "KEEPALIVE_INTERVAL": "0",
            "SESSION_MAX_CONCURRENCY": "2",
            "STATE_FILE": "/var/lib/claude2api/state.json",
            "ADMIN_KEY": "admin-key-123456",
            "RETRY_COUNT": "1",
            "PLUGINS": "plugins.a,plugins.b",
            "IMAGE_FETCH_ALLOW_PRIVATE": "on",
        }
    )
    assert settings.claude_base_url == "http://127.0.0.1:8999"
    assert settings.upstream_protocol == "2025"
    assert settings.thinking_output == "reasoning_content"
    assert settings.models == ("claude-x-1", "claude-y-2")
    assert (settings.log_level, settings.log_format) == ("debug", "json")
    assert settings.upstream_read_timeout == 120.5
    assert settings.keepalive_interval == 0
    assert settings.session_max_concurrency == 2
    assert settings.state_file == "/var/lib/claude2api/state.json"
    assert settings.admin_key == "admin-key-123456"
    assert settings.retry_count == 1
    assert settings.plugins == (PluginSpec("plugins.a"), PluginSpec("plugins.b"))
    assert settings.image_fetch_allow_private is True


def test_every_setting_has_an_env_variable_named_after_it() -> None:
    names = {f.name: env_name(f.name) for f in fields(Settings)}
    assert names["api_keys"] == "APIKEY"
    assert names["max_chat_history_length"] == "MAX_CHAT_HISTORY_LENGTH"
    assert all(var == name.upper() for name, var in names.items() if name != "api_keys")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
     ("false", False), ("False", False), ("0", False), ("no", False), ("OFF", False)],
)
def test_env_booleans(raw: str, expected: bool) -> None:
    assert load(BASE_ENV | {"CHAT_DELETE": raw}).chat_delete is expected


def test_empty_env_variable_counts_as_unset() -> None:
    settings = load(BASE_ENV | {"PROXY": "", "CHAT_DELETE": " ", "MAX_CHAT_HISTORY_LENGTH": ""})
    assert settings.proxy is None
    assert settings.chat_delete is True
    assert settings.max_chat_history_length == 10000


# --- YAML -----------------------------------------------------------------------------------------


def test_yaml_snake_case() -> None:
    settings = load(
        {},
        f"""
sessions:
  - "{KEY_A}"
  - "{KEY_B}:{ORG}"
address: "127.0.0.1:8081"
api_keys: ["{API_KEY}"]
proxy: socks5h://user:{PROXY_PASSWORD}@127.0.0.1:1080
chat_delete: false
max_chat_history_length: 0
upstream_protocol: 2025
models: claude-a, claude-b
upstream_connect_timeout: 5
retry_count: 2
""",
    )
    assert settings.sessions == (SessionSpec(KEY_A), SessionSpec(KEY_B, ORG))
    assert settings.port == 8081
    assert settings.api_keys == (API_KEY,)
    assert settings.proxy == f"socks5h://user:{PROXY_PASSWORD}@127.0.0.1:1080"
    assert settings.chat_delete is False
    assert settings.max_chat_history_length == 0
    assert settings.upstream_protocol == "2025"
    assert settings.models == ("claude-a", "claude-b")
    assert settings.upstream_connect_timeout == 5.0
    assert settings.retry_count == 2


def test_yaml_camel_case_as_in_the_original() -> None:
    settings = load(
        {},
        f"""
sessions:
  - sessionKey: {KEY_A}
    orgID: {ORG}
  - sessionKey: {KEY_B}
address: "0.0.0.0:8080"
apiKey: "{API_KEY}"
proxy: ""
chatDelete: true
maxChatHistoryLength: 20000
noRolePrefix: true
promptDisableArtifacts: true
enableMirrorApi: true
mirrorApiPrefix: "/mirror"
retryCount: 3
""",
    )
    assert settings.sessions == (SessionSpec(KEY_A, ORG), SessionSpec(KEY_B))
    assert settings.api_keys == (API_KEY,)
    assert settings.proxy is None
    assert settings.max_chat_history_length == 20000
    assert settings.no_role_prefix and settings.prompt_disable_artifacts and settings.enable_mirror_api
    assert settings.mirror_api_prefix == "/mirror"
    assert settings.retry_count == 3


def test_yaml_session_mappings_in_snake_case() -> None:
    settings = load({"APIKEY": API_KEY}, f"sessions:\n  - session_key: {KEY_A}\n    org_id: {ORG}\n")
    assert settings.sessions == (SessionSpec(KEY_A, ORG),)


def test_yaml_defaults_are_the_env_defaults() -> None:
    """The original's YAML left chatDelete false, maxChatHistoryLength and retryCount 0."""
    settings = load({}, f"sessions: [{KEY_A}]\napiKey: {API_KEY}\n")
    assert settings.chat_delete is True
    assert settings.max_chat_history_length == 10000
    assert settings.retry_count == 5


def test_yaml_null_means_default() -> None:
    assert load(BASE_ENV, "proxy:\nretry_count: null\n").retry_count == 5


def test_env_overrides_yaml() -> None:
    settings = load(
        {"SESSIONS": KEY_B, "CHAT_DELETE": "no", "RETRY_COUNT": "4"},
        f"sessions: [{KEY_A}]\napi_key: {API_KEY}\nchat_delete: true\nretryCount: 2\n",
    )
    assert settings.sessions == (SessionSpec(KEY_B),)
    assert settings.api_keys == (API_KEY,)
    assert settings.chat_delete is False
    assert settings.retry_count == 4


def test_config_yaml_in_cwd_is_found() -> None:
    Path("config.yaml").write_text(f"sessions: [{KEY_A}]\napiKey: {API_KEY}\n", encoding="utf-8")
    settings = load_settings(None, {})
    assert settings.config_file == Path("config.yaml")
    assert settings.sessions == (SessionSpec(KEY_A),)


def test_no_config_file() -> None:
    settings = load_settings(None, BASE_ENV)
    assert settings.config_file is None
    assert Settings().config_file is None


def test_explicit_config_file_must_exist() -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist"):
        load_settings("missing.yaml", BASE_ENV)


def test_example_config_documents_the_defaults() -> None:
    settings = load_settings(EXAMPLE, BASE_ENV)
    assert settings.config_file == EXAMPLE
    assert settings == Settings(sessions=(SessionSpec(KEY_A),), api_keys=(API_KEY,))


def test_yaml_unknown_key_names_it() -> None:
    message = config_error(BASE_ENV, "chat_delet: true\n")
    assert "'chat_delet'" in message
    assert "did you mean 'chat_delete'" in message


def test_yaml_parse_error_names_the_line() -> None:
    message = config_error(BASE_ENV, f"address: x\napi_key: {API_KEY}\nsessions: [a\n  b: c\n")
    assert "invalid YAML at line 4" in message


def test_yaml_top_level_must_be_a_mapping() -> None:
    assert "mapping" in config_error(BASE_ENV, "- a\n- b\n")


def test_yaml_alias_and_name_together() -> None:
    message = config_error({}, f"apiKey: {API_KEY}\napi_key: other-key-0000\nsessions: [{KEY_A}]\n")
    assert "'apiKey' and 'api_key'" in message


def test_yaml_error_names_the_key_and_file() -> None:
    message = config_error(BASE_ENV, "maxChatHistoryLength: lots\n")
    assert message.startswith("maxChatHistoryLength (test-config.yaml) must be an integer")


def test_yaml_unknown_session_field() -> None:
    message = config_error({"APIKEY": API_KEY}, f"sessions:\n  - cookies: {KEY_A}\n")
    assert "'cookies'" in message and KEY_A not in message


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MAX_CHAT_HISTORY_LENGTH": "lots"}, "MAX_CHAT_HISTORY_LENGTH must be an integer >= 0, got 'lots'"),
        ({"MAX_CHAT_HISTORY_LENGTH": "-1"}, "MAX_CHAT_HISTORY_LENGTH must be an integer >= 0"),
        ({"RETRY_COUNT": "0"}, "RETRY_COUNT must be an integer >= 1"),
        ({"IMAGE_MAX_BYTES": "1.5"}, "IMAGE_MAX_BYTES must be an integer"),
        ({"UPSTREAM_READ_TIMEOUT": "0"}, "UPSTREAM_READ_TIMEOUT must be a number > 0"),
        ({"UPSTREAM_CONNECT_TIMEOUT": "soon"}, "UPSTREAM_CONNECT_TIMEOUT must be a number > 0"),
        ({"IMAGE_FETCH_TIMEOUT": "nan"}, "IMAGE_FETCH_TIMEOUT must be a number > 0"),
        ({"KEEPALIVE_INTERVAL": "-5"}, "KEEPALIVE_INTERVAL must be a number >= 0"),
        ({"COOLDOWN_DEFAULT_SECONDS": "inf"}, "COOLDOWN_DEFAULT_SECONDS must be a number >= 0"),
        ({"CHAT_DELETE": "maybe"}, "CHAT_DELETE must be true or false"),
        ({"ENABLE_MIRROR_API": "enabled"}, "ENABLE_MIRROR_API must be true or false"),
        ({"UPSTREAM_PROTOCOL": "2024"}, "UPSTREAM_PROTOCOL must be one of 2026, 2025"),
        ({"THINKING_OUTPUT": "xml"}, "THINKING_OUTPUT must be one of think_tags, reasoning_content"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be one of debug, info, warning, error"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of auto, json, console"),
        ({"CLAUDE_BASE_URL": "claude.ai"}, "CLAUDE_BASE_URL must be an http(s) URL with a host"),
        ({"CLAUDE_BASE_URL": "ftp://claude.ai"}, "CLAUDE_BASE_URL must be an http(s) URL with a host"),
        ({"ADDRESS": "8080"}, "ADDRESS must be host:port"),
        ({"ADDRESS": "localhost:http"}, "ADDRESS must be host:port"),
        ({"ADDRESS": "::1:8080"}, "ADDRESS must be host:port"),
        ({"ADDRESS": "[not-ip]:8080"}, "ADDRESS must be host:port"),
        ({"ADDRESS": "0.0.0.0:70000"}, "ADDRESS must be host:port"),
    ],
)
def test_invalid_values(env: dict[str, str], expected: str) -> None:
    assert expected in config_error(BASE_ENV | env)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "MIRROR_API_PREFIX is empty or '/'"),
        ("/", "MIRROR_API_PREFIX is empty or '/'"),
        ("mirror", "MIRROR_API_PREFIX must be a path starting with '/'"),
        ("/mir ror", "MIRROR_API_PREFIX must be a path starting with '/'"),
        ("/v1", "would shadow"),
        ("/hf/x", "would shadow"),
    ],
)
def test_mirror_prefix(prefix: str, expected: str) -> None:
    assert expected in config_error(BASE_ENV | {"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": prefix})


def test_mirror_prefix_is_only_checked_when_mirror_mode_is_on() -> None:
    assert load(BASE_ENV | {"MIRROR_API_PREFIX": "mirror"}).mirror_api_prefix == "mirror"


def test_nothing_to_serve() -> None:
    message = config_error({"APIKEY": API_KEY})
    assert message == "no SESSIONS configured and mirror mode is off: nothing to serve"


def test_mirror_only_needs_no_sessions_nor_api_key() -> None:
    settings = load({"ENABLE_MIRROR_API": "true", "MIRROR_API_PREFIX": "/mirror"})
    assert settings.sessions == () and settings.api_keys == ()


@pytest.mark.parametrize(
    "address", ["0.0.0.0:8080", ":8080", "[::]:8080", "192.168.1.5:80", "example.com:80"]
)
def test_no_api_key_on_a_public_address_is_refused(address: str) -> None:
    message = config_error({"SESSIONS": KEY_A, "ADDRESS": address})
    assert message.startswith(f"APIKEY is empty and ADDRESS {address} is not a loopback address")
    assert "set APIKEY" in message


@pytest.mark.parametrize("address", ["127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "localhost:8080"])
def test_no_api_key_on_loopback_is_allowed(address: str) -> None:
    assert load({"SESSIONS": KEY_A, "ADDRESS": address}).api_keys == ()


@pytest.mark.parametrize(
    "sessions",
    [
        f"sessionKey={KEY_A}",
        f"{KEY_A}; lastActiveOrg={ORG}",
        f"sk-ant sid01 {KEY_A[12:]}",
    ],
)
def test_session_that_is_not_a_key(sessions: str) -> None:
    message = config_error({"SESSIONS": sessions, "APIKEY": API_KEY})
    assert message.startswith("SESSIONS entry 1 does not look like a session key")


def test_session_org_must_be_a_uuid() -> None:
    message = config_error({"SESSIONS": f"{KEY_B},{KEY_A}:my-org", "APIKEY": API_KEY})
    assert message == "SESSIONS entry 2: the org id after ':' is not a UUID"


def test_session_org_without_key() -> None:
    assert "has an org id but no session key" in config_error({"SESSIONS": f":{ORG}", "APIKEY": API_KEY})


def test_duplicate_session() -> None:
    message = config_error({"SESSIONS": f"{KEY_A},{KEY_B},{KEY_A}:{ORG}", "APIKEY": API_KEY})
    assert message == f"SESSIONS lists the same session key twice ({fingerprint(KEY_A)})"


# --- proxy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proxy",
    [
        "http://127.0.0.1:2080",
        "https://proxy.example:443",
        f"socks4://user:{PROXY_PASSWORD}@10.0.0.1:1080",
        "socks4a://10.0.0.1:1080",
        f"socks5://user:{PROXY_PASSWORD}@[::1]:1080",
        "SOCKS5H://proxy.example:1080",
    ],
)
def test_proxy_schemes(proxy: str) -> None:
    assert load(BASE_ENV | {"PROXY": proxy}).proxy == proxy


@pytest.mark.parametrize(
    ("proxy", "shown"),
    [
        (f"ftp://user:{PROXY_PASSWORD}@host:21", "ftp://user:***@host:21"),
        (f"socks5://user:{PROXY_PASSWORD}@host", "socks5://user:***@host"),
        (f"http://user:{PROXY_PASSWORD}@:8080", "http://user:***@:8080"),
        (f"http://user:{PROXY_PASSWORD}@host:port", "http://user:***@host:port"),
        (f"user:{PROXY_PASSWORD}@host:1080", "user:***@host:1080"),
        (f"http:/user:{PROXY_PASSWORD}@host:1080", "http:***@host:1080"),
        ("127.0.0.1:2080", "127.0.0.1:2080"),
    ],
)
def test_invalid_proxy_is_reported_without_its_password(proxy: str, shown: str) -> None:
    message = config_error(BASE_ENV | {"PROXY": proxy})
    assert message.startswith(f"PROXY is not a valid proxy URL: {shown} (")


def test_invalid_proxy_in_yaml() -> None:
    message = config_error(BASE_ENV, f"proxy: 'socks6://u:{PROXY_PASSWORD}@h:1'\n")
    assert message.startswith("proxy (test-config.yaml) is not a valid proxy URL: socks6://u:***@h:1")


# --- address --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("0.0.0.0:8080", "0.0.0.0", 8080),
        (":9000", "", 9000),
        ("[::1]:8080", "::1", 8080),
        ("[::]:0", "::", 0),
        ("localhost:65535", "localhost", 65535),
    ],
)
def test_address_parsing(address: str, host: str, port: int) -> None:
    settings = load(BASE_ENV | {"ADDRESS": address})
    assert (settings.host, settings.port) == (host, port)


# --- printing -------------------------------------------------------------------------------------


def test_redacted_and_repr_hold_no_secret() -> None:
    settings = load(
        BASE_ENV
        | {
            "SESSIONS": f"{KEY_A}:{ORG}",
            "ADMIN_KEY": "admin-secret-000",
            "PROXY": f"socks5://user:{PROXY_PASSWORD}@127.0.0.1:1080",
        }
    )
    shown = settings.redacted()
    assert shown["sessions"] == [{"session": fingerprint(KEY_A), "org_id": ORG}]
    assert shown["api_keys"] == ["***"]
    assert shown["admin_key"] == "***"
    assert shown["proxy"] == "socks5://user:***@127.0.0.1:1080"
    assert shown["retry_count"] == 5
    assert shown.keys() == {f.name for f in fields(Settings)}
    for text in (str(shown), repr(settings), repr(settings.sessions[0])):
        for secret in (KEY_A, API_KEY, "admin-secret-000", PROXY_PASSWORD):
            assert secret not in text


def test_secret_values() -> None:
    settings = load(
        BASE_ENV | {"ADMIN_KEY": "admin-secret-000", "PROXY": "http://u:p%40ss-word@127.0.0.1:3128"}
    )
    assert set(settings.secret_values()) == {API_KEY, "admin-secret-000", "p%40ss-word", "p@ss-word", KEY_A}


# --- .env -----------------------------------------------------------------------------------------


def test_read_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n"
        "\n"
        f"SESSIONS={KEY_A},{KEY_B}\n"
        "APIKEY = 123 # inline comment\n"
        "export PROXY=http://127.0.0.1:2080\n"
        "MIRROR_API_PREFIX='/mir # ror'\n"
        'MODELS="a,b\\n\\"c\\"" # quoted\n'
        "EMPTY=\n"
        "URL=http://host/#fragment\n",
        encoding="utf-8",
    )
    assert read_dotenv(path) == {
        "SESSIONS": f"{KEY_A},{KEY_B}",
        "APIKEY": "123",
        "PROXY": "http://127.0.0.1:2080",
        "MIRROR_API_PREFIX": "/mir # ror",
        "MODELS": 'a,b\n"c"',
        "EMPTY": "",
        "URL": "http://host/#fragment",
    }


def test_read_dotenv_missing_file(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"just {API_KEY}", ".env line 2: expected KEY=VALUE"),
        (f'APIKEY="{API_KEY}', ".env line 2: unterminated double quote"),
        (f"APIKEY='{API_KEY}", ".env line 2: unterminated single quote"),
    ],
)
def test_read_dotenv_errors(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"A=1\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_dotenv(path)
    assert expected in str(info.value)
    assert API_KEY not in str(info.value)


def test_dotenv_does_not_override_the_environment(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(f"SESSIONS={KEY_A}\nAPIKEY=from-dotenv-0\n", encoding="utf-8")
    settings = load_settings(None, {**read_dotenv(path), "APIKEY": API_KEY})
    assert settings.sessions == (SessionSpec(KEY_A),)
    assert settings.api_keys == (API_KEY,)
