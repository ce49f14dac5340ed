"""Settings: defaults < YAML file < secret files < environment variables, validated once at startup.

Each setting is declared once, as a :class:`Settings` field made by :func:`_setting`: its type (the
annotation), default, parser (which carries the choices), help line, environment variable, YAML
aliases, and whether it is secret, needs a restart or changes running requests. The restart list,
redaction, the secret files and the YAML keys are derived from that (:func:`declarations`); tests
check README's table and ``config.example.yaml`` against it.

Each setting has a snake_case name, which is its YAML key, and an environment variable, which is
that name in upper case (``APIKEY`` for ``api_keys``, as in the original program). The original's
camelCase YAML keys (``apiKey``, ``chatDelete`` ...) are declared as aliases, with the same
defaults as everywhere else (the original's YAML defaulted them to 0/false, which was a bug).

An environment variable that is set but empty counts as unset, so ``APIKEY=${APIKEY}`` in a compose
file with nothing behind it does not override the YAML file.

Secret settings (``SESSIONS``, ``APIKEY``, ``ADMIN_KEY``, ``PROXY``: those declared ``secret=True``)
may also be read from files, re-read on every reload: ``APIKEY_FILE=/run/secrets/apikey`` (Docker
secrets) or a systemd credential ``$CREDENTIALS_DIRECTORY/apikey``. See :func:`load_settings`.

Every problem raises :class:`ConfigError` with one line that names the setting and never contains
a secret; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import yaml

from claude2api.logs import MASK, fingerprint, redact_url
from claude2api.upstream import browser, impersonate


class ConfigError(Exception):
    """A setting is missing or invalid. ``str(error)`` is one line, safe to print and log."""


@dataclass(frozen=True, slots=True, repr=False)
class SessionSpec:
    """One claude.ai account: its ``sessionKey`` cookie and, if known, its organization UUID
    (which saves the ``/api/organizations`` lookup). ``repr`` shows the fingerprint, never the key.

    Optionally its own way out: ``proxy`` (else ``PROXY``), a browser ``cookie`` string copied with
    the ``user_agent`` its ``cf_clearance`` is bound to."""

    key: str
    org_id: str | None = None
    proxy: str | None = None
    cookie: str | None = None
    user_agent: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def secret_values(self) -> tuple[str | None, ...]:
        """The key, the proxy password (as written and decoded), the cookie string and its values."""
        password = urlsplit(self.proxy).password if self.proxy else None
        cookie_values = [v for piece in (self.cookie or "").split(";") for v in [piece.partition("=")[2].strip()]]
        return (self.key, password, unquote(password) if password else None, self.cookie, *cookie_values)

    def redacted(self) -> dict[str, Any]:
        """JSON-ready, the key as its fingerprint, the proxy password and the cookie masked."""
        shown: dict[str, Any] = {"session": self.fingerprint, "org_id": self.org_id}
        if self.proxy:
            shown["proxy"] = redact_url(self.proxy)
        if self.cookie:
            shown["cookie"] = MASK
        if self.user_agent:
            shown["user_agent"] = self.user_agent
        return shown

    def __repr__(self) -> str:
        proxy = f", proxy={redact_url(self.proxy)!r}" if self.proxy else ""
        return f"SessionSpec({self.fingerprint}, org_id={self.org_id!r}{proxy})"


# --- parsers: (raw value from the environment or YAML, name to report) -> typed value ----------

Parser = Callable[[Any, str], Any]

_BOOLEANS = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off"), False),
}
_PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
#: THE claude.ai session key pattern (config and mirror mode): ``sk-ant-sid01-…`` and ``sk-ant-sid02-…``
#: (any two-digit generation), then the URL-safe base64 alphabet at any sane length: claude.ai has
#: changed the length before. Catches a pasted ``sessionKey=...`` or Cookie header.
SESSION_KEY_RE = re.compile(r"sk-ant-sid\d{2}-[0-9A-Za-z_-]{1,1024}")
#: ``MODEL_ALIASES`` entries at most (each one is looked up on every request).
MAX_MODEL_ALIASES = 1000
_MIRROR_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")
#: First path segments of every route and alias outside mirror mode: a mirror prefix starting with
#: one would shadow it (``/chat`` the root alias) or inherit its key check (``/admin``).
#: tests/test_hardening_http.py checks this covers every route the app registers.
RESERVED_PATH_SEGMENTS = frozenset(
    {"v1", "hf", "admin", "health", "chat", "models", "messages", "responses", "openapi.json", "metrics"}
)


def _text(raw: Any, name: str) -> str:
    # YAML turns `apiKey: 123` into an int; the original's Go YAML decoder read it as a string.
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(f"{name} must be a string")
    return str(raw).strip()


def _optional_text(raw: Any, name: str) -> str | None:
    return _text(raw, name) or None


def _boolean(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _BOOLEANS.get(str(raw).strip().lower()) if isinstance(raw, (str, int)) else None
    if value is None:
        raise ConfigError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {raw!r}")
    return value


def _integer(minimum: int) -> Parser:
    def parse(raw: Any, name: str) -> int:
        value: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str):
            try:
                value = int(raw)
            except ValueError:
                pass
        if value is None or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {raw!r}")
        return value

    return parse


def _number(*, positive: bool) -> Parser:
    """A float; ``positive`` excludes 0 (timeouts), otherwise 0 is allowed (e.g. "disabled")."""
    bound = "> 0" if positive else ">= 0"

    def parse(raw: Any, name: str) -> float:
        value: float | None = None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw)
            except ValueError:
                pass
        if value is None or not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise ConfigError(f"{name} must be a number {bound}, got {raw!r}")
        return value

    return parse


def _choice(*options: str) -> Parser:
    """One of ``options`` (case-insensitive); the parser carries them as ``choices`` for the docs."""

    def parse(raw: Any, name: str) -> str:
        value = _text(raw, name).lower()
        if value not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, got {raw!r}")
        return value

    parse.choices = options  # type: ignore[attr-defined]
    return parse


def _items(raw: Any, name: str) -> list[Any]:
    """A list from YAML, or the comma-separated form used by environment variables."""
    if isinstance(raw, str):
        return raw.split(",")
    if isinstance(raw, list):
        return raw
    raise ConfigError(f"{name} must be a list or a comma-separated string")


def _string_list(raw: Any, name: str) -> tuple[str, ...]:
    return tuple(value for value in (_text(item, name) for item in _items(raw, name)) if value)


def _model_aliases(raw: Any, name: str) -> tuple[tuple[str, str], ...]:
    """``MODEL_ALIASES``: a YAML mapping, or ``alias=model,alias=model`` in the environment."""
    if isinstance(raw, dict):
        pairs = [(_text(k, name), _text(v, name)) for k, v in raw.items()]
    elif isinstance(raw, str):
        pairs = []
        for item in raw.split(","):
            if not item.strip():
                continue
            alias, sep, target = item.partition("=")
            if not sep:
                raise ConfigError(f"{name}: expected alias=model pairs separated by commas, got {item.strip()!r}")
            pairs.append((alias.strip(), target.strip()))
    else:
        raise ConfigError(f"{name} must be a mapping of alias: model (or alias=model,... in the environment)")
    if len(pairs) > MAX_MODEL_ALIASES:
        raise ConfigError(f"{name} has more than {MAX_MODEL_ALIASES} entries")
    for alias, target in pairs:
        if not alias or not target or len(alias) > 200 or len(target) > 200:
            raise ConfigError(f"{name}: every alias and model must be a non-empty id of at most 200 characters")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One plugin to load: a module path, a ``.py`` file or (``entry_point``) the name of an entry
    point in the ``claude2api.plugins`` group, and the options its factory gets."""

    ref: str
    options: Mapping[str, Any] = field(default_factory=dict)
    entry_point: bool = False

    def redacted(self) -> dict[str, Any]:
        """JSON-ready; option values may be credentials (a plugin's own API key): only their names."""
        return {"entry_point" if self.entry_point else "module": self.ref, "options": sorted(self.options)}


_PLUGIN_FIELDS = frozenset({"module", "entry_point", "options"})


def _plugins(raw: Any, name: str) -> tuple[PluginSpec, ...]:
    """``PLUGINS=a,b.py`` (no options), or YAML: a list of refs and ``{module: ..., options: {...}}``
    (or ``{entry_point: name, options: ...}``) entries, or a mapping ``{ref: options}``."""
    if isinstance(raw, dict):
        raw = [{"module": ref, "options": options} for ref, options in raw.items()]
    specs = [_plugin(item, f"{name} entry {number}") for number, item in enumerate(_items(raw, name), 1)]
    return tuple(spec for spec in specs if spec is not None)


def _plugin(item: Any, label: str) -> PluginSpec | None:
    if not isinstance(item, dict):
        ref = _text(item, label)
        return PluginSpec(ref) if ref else None
    unknown = set(item) - _PLUGIN_FIELDS
    if unknown:
        names = ", ".join(repr(str(k)) for k in sorted(unknown, key=str))
        raise ConfigError(f"{label} has unknown field(s) {names} (expected module or entry_point, and options)")
    if ("module" in item) == ("entry_point" in item):
        raise ConfigError(f"{label} needs exactly one of module: or entry_point:")
    ref = _text(item.get("module") or item.get("entry_point") or "", label)
    if not ref:
        raise ConfigError(f"{label} has an empty module or entry_point")
    options = item.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise ConfigError(f"{label}: options must be a mapping with string keys")
    return PluginSpec(ref, options, entry_point="entry_point" in item)


def _entry_point_names(raw: Any, name: str) -> tuple[str, ...]:
    """``false`` (none, the default), ``true`` (every installed one: ``("*",)``) or a list of names."""
    if isinstance(raw, bool) or (isinstance(raw, (str, int)) and str(raw).strip().lower() in _BOOLEANS):
        return ("*",) if _boolean(raw, name) else ()
    return _string_list(raw, name)


def _sessions(raw: Any, name: str) -> tuple[SessionSpec, ...]:
    specs: dict[str, SessionSpec] = {}
    for number, item in enumerate(_items(raw, name), 1):
        spec = _session(item, f"{name} entry {number}")
        if spec is None:
            continue
        if spec.key in specs:
            raise ConfigError(f"{name} lists the same session key twice ({spec.fingerprint})")
        specs[spec.key] = spec
    return tuple(specs.values())


#: Mapping fields of a ``sessions:`` entry -> SessionSpec field (the first spelling is documented).
_SESSION_FIELDS = {
    "key": "key",
    "session_key": "key",
    "sessionKey": "key",
    "org": "org",
    "org_id": "org",
    "orgID": "org",
    "proxy": "proxy",
    "cookie": "cookie",
    "user_agent": "user_agent",
}


def _session(item: Any, label: str) -> SessionSpec | None:
    """One ``sessions`` entry; ``None`` for an empty one.

    A string is ``key[:orgUUID][@proxy-url]``: everything after the *first* ``@`` is the proxy URL
    (which may hold ``:`` and ``@`` of its own; a session key or org id never holds ``@``), and the
    part before it splits at its first ``:``. In ``SESSIONS`` entries are comma-separated, so a
    proxy password holding ``,`` must be percent-encoded (``%2C``). A mapping takes ``key``, ``org``,
    ``proxy``, ``cookie`` (a browser ``Cookie`` header) and ``user_agent`` (the one ``cf_clearance`` is bound to).
    """
    proxy = cookie = user_agent = ""
    if isinstance(item, dict):
        unknown = set(item) - set(_SESSION_FIELDS)
        if unknown:
            names = ", ".join(repr(str(k)) for k in sorted(unknown, key=str))
            raise ConfigError(f"{label} has unknown field(s) {names}; expected key, org, proxy, cookie, user_agent")
        given: dict[str, str] = {}
        for name, value in item.items():
            target = _SESSION_FIELDS[name]
            if target in given:
                raise ConfigError(f"{label} gives {target} twice; keep one spelling")
            given[target] = _text(value if value is not None else "", f"{label} {name}")
        key, org = given.get("key", ""), given.get("org", "")
        proxy, cookie, user_agent = given.get("proxy", ""), given.get("cookie", ""), given.get("user_agent", "")
    elif isinstance(item, str):
        account, _, proxy = item.strip().partition("@")
        key, _, org = (part.strip() for part in account.partition(":"))
        proxy = proxy.strip()
    else:
        raise ConfigError(f"{label} must be a string or a mapping")
    if not key:
        given_parts = [name for name, value in (("an org id", org), ("a proxy", proxy), ("a cookie", cookie)) if value]
        if given_parts:
            raise ConfigError(f"{label} has {' and '.join(given_parts)} but no session key")
        return None
    if not SESSION_KEY_RE.fullmatch(key):
        raise ConfigError(
            f"{label} does not look like a session key (expected sk-ant-sid01-… or sk-ant-sid02-…, which never"
            " holds ':' or '@'):"
            " give only the value of the sessionKey cookie"
        )
    if cookie and (any(c in cookie for c in "\r\n\0") or not _parse_cookie_pairs(cookie)):
        raise ConfigError(f"{label} cookie must be one Cookie header line such as 'cf_clearance=...; __cf_bm=...'")
    if any(c in user_agent for c in "\r\n\0"):
        raise ConfigError(f"{label} user_agent must be a single line")
    return SessionSpec(
        key,
        _org_id(org, label) if org else None,
        proxy=_proxy(proxy, f"{label} proxy") if proxy else None,
        cookie=cookie or None,
        user_agent=user_agent or None,
    )


def _parse_cookie_pairs(header: str) -> list[tuple[str, str]]:
    return [(n.strip(), v) for n, sep, v in (p.strip().partition("=") for p in header.split(";")) if sep and n.strip()]


def _org_id(org: str, label: str) -> str:
    try:
        return str(uuid.UUID(org))
    except ValueError:
        raise ConfigError(f"{label}: the org id after ':' is not a UUID") from None


def _address(raw: Any, name: str) -> str:
    address = _text(raw, name)
    _split_address(address, name)
    return address


def _optional_address(raw: Any, name: str) -> str | None:
    """An address, or ``None`` when empty (the listener is off)."""
    address = _text(raw, name).strip()
    if not address:
        return None
    _split_address(address, name)
    return address


def _split_address(address: str, name: str = "ADDRESS") -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces: host ``""``) or ``[ipv6]:port``."""
    host, sep, port = address.rpartition(":")
    valid = bool(sep) and port.isascii() and port.isdigit() and int(port) <= 65535
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        valid = valid and _is_ip(host)
    elif ":" in host or any(c.isspace() for c in host):
        valid = False
    if not valid:
        raise ConfigError(f"{name} must be host:port, :port or [ipv6]:port, got {address!r}")
    return host, int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback


def _proxy(raw: Any, name: str) -> str | None:
    url = _text(raw, name)
    if not url:
        return None
    problem = _proxy_problem(url)
    if problem:
        raise ConfigError(f"{name} is not a valid proxy URL: {redact_url(url)} ({problem})")
    return url


def _proxy_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "malformed host or port"
    if parts.scheme not in _PROXY_SCHEMES:
        return f"expected scheme://[user:password@]host:port with scheme {', '.join(_PROXY_SCHEMES)}"
    if not parts.hostname:
        return "no host"
    if port is None:
        return "no port"
    return None


def _base_url(raw: Any, name: str) -> str:
    url = _text(raw, name).rstrip("/")
    if not _is_http_url(url):
        raise ConfigError(f"{name} must be an http(s) URL with a host, got {redact_url(url)!r}")
    return url


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _origins(raw: Any, name: str) -> tuple[str, ...]:
    """``*`` or ``scheme://host[:port]`` origins, compared as browsers send them (no path, no slash)."""
    origins = tuple(origin.rstrip("/") for origin in _string_list(raw, name))
    for origin in origins:
        parts = urlsplit(origin) if origin != "*" else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
            raise ConfigError(f"{name} entries must be '*' or origins such as https://app.example, got {origin!r}")
    return origins


def _mirror_prefix(raw: Any, name: str) -> str:
    """Trailing slashes stripped; validated with ``enable_mirror_api`` in :func:`_check`."""
    return _text(raw, name).rstrip("/")


def _browser_profile(raw: Any, name: str) -> str:
    """An impersonation profile we have headers for and curl_cffi (when installed) knows."""
    value = _text(raw, name)
    try:
        browser.profile(value)
        return impersonate.check_profile(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class SecretForm:
    """How a secret setting's value (or each of its items) is shown, and which strings in it are secret."""

    shown: Callable[[Any], Any]
    values: Callable[[Any], tuple[str | None, ...]]


#: The whole value is the secret (a key): shown as ``***``.
WHOLE_SECRET = SecretForm(lambda value: MASK, lambda value: (value,))


def _url_password(url: str) -> tuple[str | None, ...]:
    password = urlsplit(url).password
    return (password, unquote(password)) if password else ()


#: A URL whose password is the secret (a proxy): shown with the password masked.
URL_PASSWORD = SecretForm(redact_url, _url_password)


def _setting(
    default: Any,
    parse: Parser,
    *,
    env: str | None = None,
    aliases: tuple[str, ...] = (),
    help: str = "",
    secret: bool | SecretForm = False,
    restart: bool = False,
    live: bool = False,
) -> Any:
    """A setting's one declaration; everything else about it is derived (:func:`declarations`).

    ``env`` overrides the variable name (default: the name in upper case), ``aliases`` are extra
    YAML keys, ``help`` is one line. ``secret`` ones are masked by :meth:`Settings.redacted`, listed
    by :meth:`Settings.secret_values` and may come from a file; ``True`` means the whole value (or
    each item) is secret, a :class:`SecretForm` says otherwise (objects with their own ``redacted``
    and ``secret_values``, such as :class:`SessionSpec`, use those). ``restart``: a reload cannot
    change it (it shapes a listener, the upstream session or the routes). ``live``: a reload changes
    it at once, for requests already running too; the rest apply to requests started after it.
    """
    form = WHOLE_SECRET if secret is True else (secret or None)
    metadata = {"parse": parse, "env": env, "aliases": aliases, "help": help, "secret": form}
    return field(default=default, metadata=metadata | {"restart": restart, "live": live})


@dataclass(frozen=True, repr=False)
class Settings:
    """The daemon's effective configuration. Build it with :func:`load_settings`.

    Constructing it directly (as tests do) skips validation. ``repr`` is :meth:`redacted`, so
    printing or logging a ``Settings`` cannot leak a secret. Each field is declared once with
    :func:`_setting`; README's configuration table and ``config.example.yaml`` are checked against
    these declarations by tests/test_settings_declared.py.
    """

    #: The YAML file :func:`load_settings` read, or ``None``. Not a field: not compared, not printed,
    #: and ``dataclasses.replace`` resets it.
    config_file: ClassVar[Path | None] = None

    sessions: tuple[SessionSpec, ...] = _setting(
        (), _sessions, secret=True, live=True,
        help="claude.ai accounts: sessionKey values, each key[:orgUUID][@proxy-url] or a mapping.",
    )
    address: str = _setting("0.0.0.0:8080", _address, restart=True, help="Listen address: host:port, :port or [ipv6]:port.")
    api_keys: tuple[str, ...] = _setting(
        (), _string_list, env="APIKEY", aliases=("apiKey", "api_key"), secret=True,
        help="Keys clients send as a bearer token or x-api-key; required unless listening on loopback.",
    )
    proxy: str | None = _setting(
        None, _proxy, secret=URL_PASSWORD, restart=True, help="Proxy URL for every claude.ai call (http, https, socks4/5)."
    )
    chat_delete: bool = _setting(
        True, _boolean, aliases=("chatDelete",), help="Delete each conversation after the answer."
    )
    max_chat_history_length: int = _setting(
        10000, _integer(0), aliases=("maxChatHistoryLength",),
        help="Prompts longer than this (UTF-8 bytes) go upstream as an attached context.txt.",
    )
    no_role_prefix: bool = _setting(
        False, _boolean, aliases=("noRolePrefix",), help="No Human:/Assistant:/System: prefixes in the transcript."
    )
    prompt_disable_artifacts: bool = _setting(
        False, _boolean, aliases=("promptDisableArtifacts",), help="Prepend an instruction not to use artifacts."
    )
    enable_mirror_api: bool = _setting(
        False, _boolean, aliases=("enableMirrorApi",), restart=True,
        help="Mirror mode: the caller's own sessionKey is its bearer token.",
    )
    mirror_api_prefix: str = _setting(
        "", _mirror_prefix, aliases=("mirrorApiPrefix",), restart=True, help="Path prefix of mirror mode, e.g. /mirror."
    )
    claude_base_url: str = _setting(
        "https://claude.ai", _base_url, restart=True, help="Where every upstream URL is built from."
    )
    upstream_protocol: str = _setting(
        "2026", _choice("2026", "2025"),
        help="2026: the first completion creates the conversation; 2025: a separate create call, paprika_mode.",
    )
    thinking_output: str = _setting(
        "think_tags", _choice("think_tags", "reasoning_content", "reasoning", "both", "hidden"),
        help="Where thinking goes in OpenAI responses.",
    )
    models: tuple[str, ...] = _setting((), _string_list, help="Extra model ids to advertise and accept.")
    model_aliases: tuple[tuple[str, str], ...] = _setting(
        (), _model_aliases, help="Any model id -> the id it stands for (suffixes allowed): the operator's own names."
    )
    default_model: str | None = _setting(
        None, _optional_text, help="The model that serves ids nobody has; unset: such ids get a 404 naming the closest."
    )
    models_refresh_seconds: float = _setting(
        6 * 3600.0,
        _number(positive=False),
        help="Seconds between re-reads of each account's live model list (app_start); 0: only at start and SIGHUP.",
    )
    usage_refresh_seconds: float = _setting(
        1800.0,
        _number(positive=False),
        help="Seconds between reads of each account's usage windows (/usage); 0: only when it leaves cooling.",
    )
    web_search: str = _setting(
        "on_request",
        _choice("off", "on_request", "always"),
        help="claude.ai's web search: off (asking for it is a 400), on_request (when the client asks), always.",
    )
    search_sources: str = _setting(
        "auto",
        _choice("auto", "footer", "off"),
        help="Sources listed after the reply: auto (when the client cannot read citations), footer (always), off.",
    )
    log_level: str = _setting(
        "info", _choice("debug", "info", "warning", "error"), restart=True, help="Least severe log level written."
    )
    log_format: str = _setting(
        "auto", _choice("auto", "json", "console"), restart=True,
        help="Log lines as JSON or for a console; auto: console on a terminal.",
    )
    upstream_transport: str = _setting(
        "auto", _choice("auto", "aiohttp", "impersonate"), restart=True,
        help="How bytes reach claude.ai; auto: impersonate when curl_cffi is installed, else aiohttp.",
    )
    upstream_impersonate: str = _setting(
        browser.DEFAULT_PROFILE, _browser_profile, restart=True,
        help="The browser the transport (TLS fingerprint and headers) claims to be.",
    )
    upstream_ca_file: str | None = _setting(
        None, _optional_text, restart=True, help="PEM bundle of CAs trusted for claude.ai instead of the system's."
    )
    upstream_connect_timeout: float = _setting(
        30.0, _number(positive=True), restart=True, help="Seconds to connect to claude.ai."
    )
    upstream_read_timeout: float = _setting(
        600.0, _number(positive=True), restart=True,
        help="The longest silent gap allowed in an upstream stream, in seconds (not a total timeout).",
    )
    max_request_body_mb: float = _setting(32.0, _number(positive=True), restart=True, help="Largest request body, in MB.")
    image_max_bytes: int = _setting(10 * 1024 * 1024, _integer(1), help="Largest image downloaded from a URL, in bytes.")
    image_fetch_timeout: float = _setting(
        20.0, _number(positive=True), restart=True, help="Seconds to download a request's images (and its documents)."
    )
    image_fetch_allow_private: bool = _setting(
        False, _boolean, help="Allow image and document URLs on private or loopback addresses."
    )
    max_images_per_request: int = _setting(
        20, _integer(0), help="Images one request may carry (inline and URL); 0 refuses images."
    )
    max_image_bytes_per_request: int = _setting(
        50 * 1024 * 1024, _integer(1), help="Total bytes of one request's images (inline and downloaded)."
    )
    max_documents_per_request: int = _setting(
        20, _integer(0), help="Documents (PDFs, office and text files) one request may carry; 0 refuses documents."
    )
    max_document_bytes_per_request: int = _setting(
        30 * 1024 * 1024, _integer(1), help="Total bytes of one request's documents (inline and downloaded)."
    )
    cooldown_default_seconds: float = _setting(
        3600.0, _number(positive=False), live=True, help="Rest after a usage limit that names no reset time, in seconds."
    )
    request_rate_cooldown_seconds: float = _setting(
        60.0, _number(positive=False), live=True, help="Rest after a short burst limit, in seconds."
    )
    keepalive_interval: float = _setting(15.0, _number(positive=False), help="SSE keep-alive comment interval; 0 disables.")
    session_max_concurrency: int = _setting(
        0, _integer(0), live=True, help="Concurrent requests per account; 0: unlimited."
    )
    session_wait_timeout: float = _setting(
        30.0, _number(positive=False), help="Seconds a request waits for a free account."
    )
    state_file: str | None = _setting(
        None, _optional_text, restart=True, help="File keeping account states and pending clean-ups across restarts."
    )
    cleanup_retry_hours: float = _setting(
        6.0, _number(positive=True), restart=True,
        help="How long a failed conversation stop/delete is retried (with backoff) before it is given up.",
    )
    cleanup_retry_delay_seconds: float = _setting(
        2.0, _number(positive=True), restart=True,
        help="First pause before retrying a failed clean-up; doubles each time, up to 10 minutes.",
    )
    cleanup_queue_max: int = _setting(
        10000, _integer(1), restart=True, help="Clean-ups kept for retry at most (the oldest is given up beyond)."
    )
    cleanup_concurrency: int = _setting(
        32, _integer(1), restart=True, help="Clean-ups (stop + delete) sent to claude.ai at once; the rest wait."
    )
    admin_key: str | None = _setting(None, _optional_text, secret=True, help="Key for the admin endpoints.")
    retry_count: int = _setting(
        5, _integer(1), aliases=("retryCount",), help="Upstream attempts (accounts tried) per request."
    )
    plugins: tuple[PluginSpec, ...] = _setting(
        (), _plugins, help="Chat-middleware plugins to load, in order, with their options."
    )
    plugins_entry_points: tuple[str, ...] = _setting(
        (), _entry_point_names,
        help="Installed plugins (entry point group claude2api.plugins) to load: none, all (true) or names.",
    )
    event_loop: str = _setting(
        "auto", _choice("auto", "uvloop", "asyncio"), help="Event loop; auto: uvloop when installed."
    )
    cors_origins: tuple[str, ...] = _setting(
        (), _origins, help='Browser origins allowed to call the daemon (CORS); empty: none, "*": any.'
    )
    header_read_timeout: float = _setting(
        10.0, _number(positive=True), restart=True,
        help="Seconds a client has to send its request line and headers; then the connection is closed.",
    )
    body_read_timeout: float = _setting(
        30.0, _number(positive=True), help="Seconds a client has to send a request body once its headers arrived."
    )
    max_connections: int = _setting(
        0, _integer(0), restart=True,
        help="Open client connections at most (beyond: 503); 0: from the open-file limit.",
    )
    shutdown_drain_seconds: float = _setting(
        60.0, _number(positive=False), restart=True,
        help="Seconds SIGTERM lets open requests finish before cutting them with an error frame.",
    )
    upstream_first_byte_timeout: float = _setting(
        60.0, _number(positive=True), live=True,
        help="Seconds claude.ai has to start answering each attempt (headers and first bytes).",
    )
    request_deadline: float = _setting(
        180.0, _number(positive=True), help="Seconds a request may take before its first content (failover included)."
    )
    mirror_rejected_key_ttl: float = _setting(
        300.0, _number(positive=False), help="Seconds a mirror-mode session key claude.ai rejected is refused from memory."
    )
    mirror_count_tokens_max_kb: int = _setting(
        256, _integer(1), help="Largest body of mirror mode's unauthenticated count_tokens route, in KB."
    )
    responses_store_max_items: int = _setting(
        1000, _integer(0), restart=True,
        help="Responses API exchanges kept for previous_response_id and GET/DELETE, at most (0: none).",
    )
    responses_store_max_mb: float = _setting(
        64.0, _number(positive=True), restart=True, help="Total size of the kept exchanges' history, in MB."
    )
    responses_store_ttl: float = _setting(
        3600.0, _number(positive=True), restart=True,
        help="Seconds a kept exchange can be continued or read before it is forgotten.",
    )
    metrics_key: str | None = _setting(
        None, _optional_text, secret=True, help="A bearer key for GET /metrics on the main port (the admin key works too)."
    )
    metrics_address: str | None = _setting(
        None, _optional_address, restart=True, help="A second listener serving only GET /metrics, without auth."
    )
    tools: bool = _setting(
        True, _boolean, help="Forward client tools to claude.ai; off: a request with tools gets a 400."
    )
    tool_call_idle_seconds: float = _setting(
        1.5, _number(positive=True), live=True,
        help="Seconds of upstream silence after a client tool call that end the turn.",
    )

    @property
    def host(self) -> str:
        """The listen host; ``""`` (from ``:port``) means all interfaces."""
        return _split_address(self.address, "ADDRESS")[0]

    @property
    def port(self) -> int:
        return _split_address(self.address, "ADDRESS")[1]

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        """``(host, port)`` of the METRICS_ADDRESS listener, or ``None`` when it is off."""
        return _split_address(self.metrics_address, "METRICS_ADDRESS") if self.metrics_address else None

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.redacted().items())})"

    def redacted(self) -> dict[str, Any]:
        """Every setting, JSON-ready, with session keys as fingerprints and other secrets masked."""
        return {d.name: _shown(getattr(self, d.name), d.secret) for d in declarations()}

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, to pass to :func:`claude2api.logs.register_secret` at startup."""
        candidates = (
            value
            for d in declarations()
            if d.secret
            for item in _items_of(getattr(self, d.name))
            for value in (item.secret_values() if hasattr(item, "secret_values") else d.secret.values(item))
        )
        return tuple(dict.fromkeys(v for v in candidates if v))


def _items_of(value: Any) -> tuple[Any, ...]:
    """A list setting's items, a single value as one item, nothing for an unset one."""
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def _shown(value: Any, secret: SecretForm | None) -> Any:
    """``value`` JSON-ready: tuples as lists, objects by their ``redacted()``, secrets by their form."""
    if isinstance(value, tuple):
        return [_shown(item, secret) for item in value]
    if value is None or hasattr(value, "redacted"):
        return None if value is None else value.redacted()
    return secret.shown(value) if secret else value


@dataclass(frozen=True, slots=True)
class Declaration:
    """What one :func:`_setting` declares, read back: the source of the docs and their tests."""

    name: str
    type: str
    default: Any
    env: str
    yaml_keys: tuple[str, ...]
    help: str
    secret: SecretForm | None
    restart: bool
    live: bool
    choices: tuple[str, ...]
    parse: Parser


def declarations() -> tuple[Declaration, ...]:
    """Every setting, in declaration order."""
    return _DECLARATIONS


def _declaration(f: Any) -> Declaration:
    meta = f.metadata
    return Declaration(
        name=f.name,
        type=str(f.type),
        default=f.default,
        env=meta["env"] or f.name.upper(),
        yaml_keys=(f.name, *meta["aliases"]),
        help=meta["help"],
        secret=meta["secret"],
        restart=meta["restart"],
        live=meta["live"],
        choices=getattr(meta["parse"], "choices", ()),
        parse=meta["parse"],
    )


_DECLARATIONS = tuple(_declaration(f) for f in fields(Settings))
_BY_NAME = {d.name: d for d in _DECLARATIONS}


def env_name(setting: str) -> str:
    """A setting's environment variable: ``retry_count`` -> ``RETRY_COUNT``, ``api_keys`` -> ``APIKEY``."""
    return _BY_NAME[setting].env


def restart_only_settings() -> tuple[str, ...]:
    """The settings a reload cannot change (declared ``restart=True``)."""
    return tuple(d.name for d in _DECLARATIONS if d.restart)


#: Every YAML key -> its setting: the names and the declared aliases (the original's camelCase keys).
_YAML_KEYS = {key: d.name for d in _DECLARATIONS for key in d.yaml_keys}

DEFAULT_CONFIG_FILE = "config.yaml"


def load_settings(config_path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Settings:
    """Read defaults, then the YAML file, then secret files, then ``environ``, and validate the result.

    ``config_path`` ``None`` means ``config.yaml`` in the current directory if there is one (as in
    the original); a given path must exist. The file read is in ``settings.config_file``.
    ``environ`` is the process environment, with any ``.env`` values (:func:`read_dotenv`) merged
    under it by the caller.

    A secret setting (declared with ``secret=True``) is taken, first found: from its variable
    (``APIKEY``), from the file its ``_FILE`` variable names (``APIKEY_FILE``), from the systemd
    credential named after the variable in lower case (``$CREDENTIALS_DIRECTORY/apikey``), from the
    YAML file, else its default. Files are read on every call, so a reload (SIGHUP) picks up a
    rotated secret.
    """
    path = _find_config_file(config_path)
    from_yaml = _read_yaml(path) if path else {}
    values: dict[str, Any] = {}
    for d in _DECLARATIONS:
        variable = d.env
        key, raw = from_yaml.get(d.name, (None, None))
        if d.secret and environ.get(variable, "").strip() and environ.get(f"{variable}_FILE", "").strip():
            raise ConfigError(f"{variable} and {variable}_FILE are both set; keep one")
        if environ.get(variable, "").strip():
            values[d.name] = d.parse(environ[variable], variable)
        elif d.secret and (from_file := _read_secret_file(d.name, environ)) is not None:
            values[d.name] = d.parse(*from_file)
        elif raw is not None:
            values[d.name] = d.parse(raw, f"{key} ({path})")
    settings = Settings(**values)
    _check(settings)
    object.__setattr__(settings, "config_file", path)  # frozen: the one write, right after creation
    return settings


def secret_settings() -> tuple[str, ...]:
    """The settings that may come from a file: ``*_FILE`` variables and systemd credentials."""
    return tuple(d.name for d in _DECLARATIONS if d.secret)


#: A secret file larger than this is refused (a ``*_FILE`` pointing at the wrong thing, e.g. a device).
SECRET_FILE_MAX_BYTES = 1 << 20


def _read_secret_file(setting: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``(value, name to report)`` from ``<VAR>_FILE`` or ``$CREDENTIALS_DIRECTORY/<var>``, or
    ``None`` when neither gives a value (an empty file counts as no value).

    Docker-secrets convention: the file's content is the value, surrounding whitespace (the trailing
    newline) stripped; list settings (``SESSIONS``, ``APIKEY``) take one item per line or
    comma-separated. A missing ``*_FILE`` file is an error, a missing credential is not (the unit
    may load only some). Errors name the variable and the path, never the content.
    """
    variable = env_name(setting)
    file_variable = f"{variable}_FILE"
    given = environ.get(file_variable, "").strip()
    candidates: list[tuple[Path, str, bool]] = []
    if given:
        candidates.append((Path(given), f"{file_variable} ({given})", True))
    credentials = environ.get("CREDENTIALS_DIRECTORY", "").strip()
    if credentials:
        credential = Path(credentials) / variable.lower()
        candidates.append((credential, f"credential {variable.lower()} ({credential})", False))
    is_list = isinstance(_BY_NAME[setting].default, tuple)
    for file, label, required in candidates:
        if not required and not file.exists():
            continue
        text = _read_small_text(file, label).strip()
        if not text:
            continue
        if is_list:
            text = ",".join(text.splitlines())
        elif "\n" in text:
            raise ConfigError(f"{label} must hold a single line")
        return text, label
    return None


def _read_small_text(file: Path, label: str) -> str:
    try:
        with file.open("rb") as stream:
            data = stream.read(SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {label}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > SECRET_FILE_MAX_BYTES:
        raise ConfigError(f"{label} is larger than {SECRET_FILE_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label} is not UTF-8 text") from None


def _find_config_file(config_path: str | os.PathLike[str] | None) -> Path | None:
    if config_path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return path


def _read_yaml(path: Path) -> dict[str, tuple[str, Any]]:
    """``{setting: (key as written, value)}``; rejects unknown keys and a setting given twice."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        # Only the problem and its position: str(exc) quotes the offending line, which may hold a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    found: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        setting = _YAML_KEYS.get(key) if isinstance(key, str) else None
        if setting is None:
            raise ConfigError(f"{path}: unknown setting {key!r}{_did_you_mean(str(key))}")
        if setting in found:
            raise ConfigError(f"{path}: {found[setting][0]!r} and {key!r} are the same setting; keep one")
        found[setting] = (key, value)
    return found


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, list(_YAML_KEYS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check(settings: Settings) -> None:
    """Checks that involve several settings."""
    if settings.enable_mirror_api:
        _check_mirror_prefix(settings.mirror_api_prefix)
    if settings.upstream_transport == "impersonate" and not impersonate.available():
        raise ConfigError(
            "UPSTREAM_TRANSPORT is impersonate but curl_cffi is not installed:"
            " pip install 'claude2api[impersonate]' (or set UPSTREAM_TRANSPORT=auto or aiohttp)"
        )
    if settings.upstream_ca_file and not Path(settings.upstream_ca_file).is_file():
        raise ConfigError(f"UPSTREAM_CA_FILE {settings.upstream_ca_file} is not a file")
    if not settings.sessions and not settings.enable_mirror_api:
        raise ConfigError("no SESSIONS configured and mirror mode is off: nothing to serve")
    # Without sessions (mirror only) there is nothing of ours to relay; the original served mirror
    # mode without APIKEY, so that keeps working.
    if settings.sessions and not settings.api_keys and not is_loopback(settings.host):
        raise ConfigError(
            f"APIKEY is empty and ADDRESS {settings.address} is not a loopback address: refusing to"
            " run an open relay; set APIKEY (clients send it as 'Authorization: Bearer <key>')"
            " or listen on 127.0.0.1"
        )


def _check_mirror_prefix(prefix: str) -> None:
    if not prefix:
        raise ConfigError(
            "ENABLE_MIRROR_API is on but MIRROR_API_PREFIX is empty or '/': set a path such as /mirror"
        )
    if not _MIRROR_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"MIRROR_API_PREFIX must be a path starting with '/' such as /mirror"
            f" (letters, digits, '.', '_', '~', '-' between slashes), got {prefix!r}"
        )
    if prefix.split("/")[1].lower() in RESERVED_PATH_SEGMENTS:
        raise ConfigError(
            f"MIRROR_API_PREFIX {prefix!r} would shadow (or be shadowed by) the daemon's own routes"
            f" (/{', /'.join(sorted(RESERVED_PATH_SEGMENTS))}); choose another, such as /mirror"
        )


# --- .env ------------------------------------------------------------------------------------

_DOTENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)")
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(?:#.*)?')
_SINGLE_QUOTED = re.compile(r"'([^']*)'\s*(?:#.*)?")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a ``.env`` file, or ``{}`` if there is none.

    The subset of godotenv the original relied on: ``#`` comments, optional ``export``, values in
    single quotes (literal) or double quotes (``\\n``-style escapes), unquoted values with an
    optional `` # comment``. No variable expansion, no multi-line values. Like godotenv, the values
    must not override variables already set: merge them *under* the environment, e.g.
    ``{**read_dotenv(".env"), **os.environ}``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.fullmatch(line)
        if not match:
            raise ConfigError(f"{path} line {number}: expected KEY=VALUE")
        values[match[1]] = _dotenv_value(match[2], f"{path} line {number}")
    return values


def _dotenv_value(raw: str, where: str) -> str:
    if raw.startswith('"'):
        match = _DOUBLE_QUOTED.fullmatch(raw)
        if not match:
            raise ConfigError(f"{where}: unterminated double quote (multi-line values are not supported)")
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), match[1])
    if raw.startswith("'"):
        match = _SINGLE_QUOTED.fullmatch(raw)
        if not match:
            raise ConfigError(f"{where}: unterminated single quote (multi-line values are not supported)")
        return match[1]
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()
