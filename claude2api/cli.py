"""Command line: ``claude2api [serve] [--config FILE]``, ``claude2api demo`` (or ``--demo``),
``claude2api sessions [--json]``, ``claude2api doctor``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from claude2api import __version__
from claude2api.accounts.doctor import run_doctor
from claude2api.accounts.report import check_sessions, render_table
from claude2api.config import ConfigError, Settings, load_settings, read_dotenv
from claude2api.http.app import (
    apply_settings,
    connection_cap,
    create_app,
    make_runner,
    raise_open_file_limit,
)
from claude2api.http.metrics import start_metrics_listener
from claude2api.http.services import SERVICES
from claude2api.logs import configure_logging, get_logger, register_secret

log = get_logger(__name__)

DEMO_API_KEY = "sk-claude2api-demo"
DEMO_ADDRESS = "127.0.0.1:8080"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="claude2api", description="OpenAI-compatible API over claude.ai web sessions."
    )
    parser.add_argument("--version", action="version", version=f"claude2api {__version__}")
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file (environment variables override it)")
    parser.add_argument("--demo", action="store_true", help="same as the `demo` command")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=("serve", "demo", "sessions", "doctor"),
        help="serve (default): run the daemon; demo: run it against a built-in fake claude.ai; "
        "sessions: check every configured session key against claude.ai and print a table; "
        "doctor: try every way to claude.ai for each account (transport, proxy) and say what to change",
    )
    parser.add_argument("--json", action="store_true", help="sessions: print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.demo:
        args.command = "demo"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = _environment()
    try:
        if args.command == "demo":
            return run(run_demo(args.config, environ), environ.get("EVENT_LOOP", "auto"))
        settings = load_settings(args.config, environ)
        _setup_logging(settings)
        if args.command == "doctor":
            return run(run_doctor(settings), settings.event_loop)
        if args.command == "sessions":
            return run(print_sessions(settings, as_json=args.json), settings.event_loop)
        return run(
            serve(settings, reload=lambda: load_settings(args.config, _environment())), settings.event_loop
        )
    except ConfigError as exc:
        print(f"claude2api: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run(main: Coroutine[Any, Any, int], event_loop: str) -> int:
    """Run ``main`` on uvloop when it is installed (``auto``) or asked for, else on asyncio.

    The benchmark (bench/) shows uvloop spending about a third less CPU per relayed event.
    """
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                main.close()
                raise ConfigError("EVENT_LOOP is uvloop but uvloop is not installed") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def _environment() -> dict[str, str]:
    """The process environment over the working directory's ``.env`` (which never overrides)."""
    environ = dict(os.environ)
    if Path(".env").is_file():
        environ = {**read_dotenv(Path(".env")), **environ}
    return environ


def _setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    for secret in settings.secret_values():
        register_secret(secret)


async def print_sessions(settings: Settings, *, as_json: bool) -> int:
    """The ``sessions`` command; exit status 1 when any session is not healthy."""
    reports = await check_sessions(settings, time.time())
    if as_json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print(render_table(reports))
    return 0 if all(r.state == "healthy" for r in reports) else 1


async def serve(
    settings: Settings, *, banner: str | None = None, reload: Callable[[], Settings] | None = None
) -> int:
    """Run the daemon until SIGTERM/SIGINT, reloading the configuration on SIGHUP; returns the exit code."""
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"claude2api: configuration error: {exc}", file=sys.stderr)
        return 2
    open_files = raise_open_file_limit()
    max_connections = connection_cap(settings)
    log.info(
        "capacity",
        open_file_limit=open_files,
        max_connections=max_connections,
        streams=min(max_connections, open_files // 2),  # each stream holds the client's socket and one upstream
    )
    runner = make_runner(app)
    await runner.setup()
    # The kernel queues up to the connection cap (clamped to net.core.somaxconn) before we accept:
    # with aiohttp's default of 128, a burst of clients overflows the queue and Linux drops their
    # SYNs, which they resend after 1, 3, 7, 15, 31 s (the load test's p99 of 31 s).
    site = web.TCPSite(runner, settings.host, settings.port, backlog=max_connections)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"claude2api: cannot listen on {settings.address}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    metrics_runner = None
    if settings.metrics_listen is not None:
        try:
            metrics_runner = await start_metrics_listener(app, *settings.metrics_listen)
        except OSError as exc:
            await runner.cleanup()
            print(f"claude2api: cannot listen on {settings.metrics_address} (METRICS_ADDRESS): {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
    log.info(
        "listening",
        address=settings.address,
        metrics_address=settings.metrics_address,
        config_file=str(settings.config_file) if settings.config_file else None,
        sessions=len(settings.sessions),
        upstream=settings.claude_base_url,
        mirror=settings.mirror_api_prefix if settings.enable_mirror_api else None,
    )
    if banner:
        print(banner, flush=True)
    sd_notify("READY=1")
    watchdog = start_watchdog(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_config, app, reload)
    try:
        await stop.wait()
    finally:
        sd_notify("STOPPING=1")
        log.info("shutting_down", drain_seconds=settings.shutdown_drain_seconds)
        # Requests get the drain time to finish; then streams still open end with an error frame.
        cut = loop.call_later(settings.shutdown_drain_seconds, app[SERVICES].cut_upstream_calls)
        try:
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            await runner.cleanup()
        finally:
            cut.cancel()
            if watchdog is not None:
                watchdog.cancel()
    return 0


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half the ``WatchdogSec=`` systemd passes in
    ``WATCHDOG_USEC``, or ``None`` when there is no watchdog or it is meant for another process."""
    usec = environ.get("WATCHDOG_USEC", "").strip()
    pid = environ.get("WATCHDOG_PID", "").strip()
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def start_watchdog(environ: Mapping[str, str]) -> asyncio.Task[None] | None:
    """Ping systemd's watchdog from the event loop itself: a loop that stalls stops the pings, and
    systemd restarts the daemon (``Restart=on-failure``)."""
    interval = watchdog_interval(environ)
    if interval is None:
        return None
    log.info("watchdog", interval_seconds=interval)
    return asyncio.get_running_loop().create_task(_ping_watchdog(interval), name="claude2api-watchdog")


async def _ping_watchdog(interval: float) -> None:
    while True:
        sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def reload_config(app: web.Application, reload: Callable[[], Settings]) -> None:
    """SIGHUP: re-read the configuration; a bad one is logged and the running one kept.

    Whatever goes wrong, systemd hears READY=1 after RELOADING=1 (else ``systemctl reload`` hangs).
    """
    sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
    try:
        settings = reload()
        for secret in settings.secret_values():
            register_secret(secret)
        restart_required = apply_settings(app[SERVICES], settings)
    except ConfigError as exc:
        log.error("config_reload_failed", error=str(exc))
    except Exception as exc:
        log.error("config_reload_failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
    else:
        log.info("config_reloaded", sessions=len(settings.sessions), restart_required=restart_required or None)
    finally:
        sd_notify("READY=1")


async def run_demo(config_path: str | None, environ: Mapping[str, str]) -> int:
    """The daemon against the built-in fake claude.ai: the whole API, no account needed."""
    from claude2api.testing import FakeClaude

    async with FakeClaude() as fake:
        fake.add_account()
        fake.add_account()
        fake.reply_factory = _demo_reply
        demo_env = {
            **{k: v for k, v in environ.items() if k != "SESSIONS_FILE"},
            "SESSIONS": ",".join(a.session_key for a in fake.accounts),
            "CLAUDE_BASE_URL": fake.base_url,
            "ADDRESS": environ.get("ADDRESS") or DEMO_ADDRESS,
            "ENABLE_MIRROR_API": "false",
            # Outermost plugin: upstream errors say they come from the built-in fake.
            "PLUGINS": ",".join(filter(None, ("claude2api.testing.demo", environ.get("PLUGINS", "")))),
        }
        if not (environ.get("APIKEY", "").strip() or environ.get("APIKEY_FILE", "").strip()):
            demo_env["APIKEY"] = DEMO_API_KEY
        settings = load_settings(config_path, demo_env)
        _setup_logging(settings)
        api_key = settings.api_keys[0]
        base = f"http://{_display_host(settings.host)}:{settings.port}"
        banner = "\n".join(
            [
                "",
                "claude2api demo: the daemon is talking to a built-in fake claude.ai (no account needed).",
                f"  Base URL (OpenAI SDK):    {base}/v1",
                f"  Base URL (Anthropic SDK): {base}",
                f"  API key:                  {api_key}",
                "  Claude Code:",
                f"    export ANTHROPIC_BASE_URL={base} ANTHROPIC_API_KEY={api_key}",
                "  Codex and other OpenAI clients:",
                f"    export OPENAI_BASE_URL={base}/v1 OPENAI_API_KEY={api_key}",
                "  Try:",
                f"    curl {base}/v1/chat/completions -H 'Authorization: Bearer {api_key}' "
                "-H 'Content-Type: application/json' "
                """-d '{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"Hello"}]}'""",
                "  Press Ctrl+C to stop.",
                "",
            ]
        )
        return await serve(settings, banner=banner)


def _demo_reply(call: Any) -> Any:
    """The fake's answer in demo mode: says what is going on, quotes the last user turn."""
    from claude2api.testing import Reply

    prompt = (call.json or {}).get("prompt", "") if isinstance(call.json, dict) else ""
    last_turn = prompt.rsplit("Human: ", 1)[-1].strip()[:200]
    return Reply(
        text=f"Hello! This is claude2api's demo: a built-in fake claude.ai answers, no account is used. "
        f"You wrote: {last_turn}",
        thinking="The user is trying the demo. A short, friendly answer will do.",
    )


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify_failed", error=str(exc))


if __name__ == "__main__":
    sys.exit(main())
