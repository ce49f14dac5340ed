"""Logging: one structlog pipeline for our own loggers and for stdlib ones (aiohttp, asyncio).

Every line goes through :func:`redact_secrets` just before it is rendered, so a session key, an API
key or a proxy password cannot reach the log whichever way it was logged: as a value, inside a
message, in an exception's text or traceback, or in an aiohttp access line. Exceptions are
formatted to text *before* redaction for that reason.

Session keys are replaced by :func:`fingerprint`, a short stable id, so an operator can still tell
accounts apart. Secrets with no recognisable shape (our own API keys, the admin key, the proxy
password) are registered at startup with :func:`register_secret` and masked verbatim.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

MASK = "***"

#: Registered values shorter than this are ignored: masking "123" everywhere would garble every
#: number in the log, and a key that short is guessable anyway.
MIN_SECRET_LENGTH = 6

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: Keys whose values are masked whatever they hold. ``token$`` spares ``input_tokens``/``max_tokens``.
_SENSITIVE_KEY = re.compile(
    r"authorization|api[-_]?keys?|admin[-_]?key|secret|passw(?:or)?d|cookies?|session[-_]?keys?|token$",
    re.IGNORECASE,
)

_SESSION_KEY = re.compile(r"sk-ant-[A-Za-z0-9_-]{10,}")
_PUBLIC_PREFIX = re.compile(r"sk-ant-[a-z]+\d{2}(?=-)")
_BEARER = re.compile(r"\b(bearer)\s+[^\s,;\"']+", re.IGNORECASE)
# Greedy up to the last "@" before a "/", whitespace or quote, so a password containing "@" is covered.
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://[^:/@\s\"']*):[^/\s\"']*@", re.IGNORECASE)
# Cookie and query-string assignments such as "sessionKey=..." or "?key=...".
_ASSIGNMENT = re.compile(
    r"\b(session_?key|api[-_]?key|key|access_token|token|password|secret)=[^\s&;,\"']+", re.IGNORECASE
)

_secrets: tuple[str, ...] = ()

_HANDLER_NAME = "claude2api"


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id for a session key, e.g. ``sk-ant-sid01...3f9a0c12``.

    Only the public prefix (``sk-ant-sid01``, which every such key shares) is kept from the key; the
    rest is the start of its SHA-256. The result does not match the session-key pattern, so redacting
    a line twice changes nothing.
    """
    match = _PUBLIC_PREFIX.match(secret)
    prefix = match.group() if match else "key"
    return f"{prefix}...{hashlib.sha256(secret.encode()).hexdigest()[:8]}"


def register_secret(value: str | None) -> None:
    """Mask ``value`` verbatim wherever it appears in a log line from now on.

    For secrets with no recognisable shape: our API keys, the admin key, the proxy password. Values
    shorter than :data:`MIN_SECRET_LENGTH` are ignored.
    """
    global _secrets
    if value and len(value) >= MIN_SECRET_LENGTH and value not in _secrets:
        # Longest first, so a secret that contains another is masked whole.
        _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def redact_text(text: str) -> str:
    """``text`` with session keys fingerprinted and other credentials masked."""
    text = _SESSION_KEY.sub(lambda m: fingerprint(m.group()), text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _ASSIGNMENT.sub(rf"\1={MASK}", text)
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """``url`` with its userinfo password masked: ``socks5://user:***@host:1080``.

    Meant for configured URLs (proxy, base URL) and safe on malformed ones, which is when they get
    reported: everything between the user name and the last ``@`` is masked, even with the
    scheme missing (``user:pass@host:1080``).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" not in rest:
        return redact_text(url)
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}{sep}{masked}@{redact_text(hostpart)}"


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: mask sensitive keys and scrub every string value, nested ones included.

    Values that are neither strings, numbers nor containers are replaced by their scrubbed
    ``repr``, which is what both renderers would print for them anyway.
    """
    return {key: _redact_field(key, value) for key, value in event_dict.items()}


def _redact_field(key: object, value: Any) -> Any:
    if value is not None and isinstance(key, str) and _SENSITIVE_KEY.search(key):
        return MASK
    return _redact_value(value)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {key: _redact_field(key, item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact_value(item) for item in value]
    return redact_text(repr(value))


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    *,
    cache_logger_on_first_use: bool = True,
) -> None:
    """Configure structlog and the stdlib root logger to write one shape of line to ``stream``.

    ``fmt`` is ``"json"``, ``"console"``, or ``"auto"`` (console on a TTY, JSON otherwise).
    ``stream`` defaults to the current ``sys.stderr``. Pass ``cache_logger_on_first_use=False`` in
    tests, or loggers created before a reconfiguration keep the old pipeline.
    Calling it again replaces the previous configuration.
    """
    if level.lower() not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}")
    numeric_level = _LEVELS[level.lower()]
    stream = stream or sys.stderr
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # format_exc_info runs before redaction so tracebacks are scrubbed too.
    tail: list[Processor] = [structlog.processors.format_exc_info, redact_secrets, _renderer(fmt, stream)]
    # add_logger_name reads the stdlib record's name, or our _NamedWriteLogger's.
    head: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[*head, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda name=None: _NamedWriteLogger(stream, name),
        cache_logger_on_first_use=cache_logger_on_first_use,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=head,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    )
    _install_root_handler(stream, formatter, numeric_level)


class _NamedWriteLogger(structlog.WriteLogger):
    """A ``WriteLogger`` with a ``name``, as ``add_logger_name`` expects of a logger."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


def _renderer(fmt: str, stream: TextIO) -> Processor:
    is_tty = getattr(stream, "isatty", lambda: False)()
    if fmt == "console" or (fmt == "auto" and is_tty):
        return structlog.dev.ConsoleRenderer(colors=is_tty)
    if fmt in ("json", "auto"):
        return structlog.processors.JSONRenderer()
    raise ValueError(f"unknown log format {fmt!r}")


def _install_root_handler(stream: TextIO, formatter: logging.Formatter, level: int) -> None:
    """Send every stdlib record (aiohttp.access, aiohttp.server, asyncio ...) through ``formatter``."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name``, like stdlib records do."""
    logger: FilteringBoundLogger = structlog.get_logger(name)  # structlog types it Any
    return logger
