"""The systemd unit (checked by systemd-analyze where it exists) and scripts/install-service.

install-service runs for real, twice, against a temporary root: a real venv in <root>/opt, real
files in <root>/etc, systemctl replaced by a stand-in that logs its calls.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from claude2api.config import env_name, secret_settings

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "claude2api.service"
VENV_DIR = "/opt/claude2api"
CREDENTIALS_DIR = "/etc/claude2api/credentials"
#: One file per secret setting, named after its variable in lower case (what the daemon reads from
#: a systemd credentials directory too).
CREDENTIALS = tuple(env_name(setting).lower() for setting in secret_settings())


def unit_service_section() -> dict[str, list[str]]:
    """[Service] keys of the unit, each with all its values (LoadCredential= and such repeat)."""
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists: point it at this environment's claude2api.
    executable = Path(sys.executable).parent / "claude2api"
    assert executable.is_file()
    unit = tmp_path / "claude2api.service"
    unit.write_text(UNIT.read_text().replace(f"{VENV_DIR}/bin/claude2api", str(executable)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")

    # The check is live: a misspelt key is reported.
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "WatchdogSecs" in result.stdout + result.stderr


def test_unit_reads_every_secret_from_a_file_a_reload_rereads_and_has_a_watchdog() -> None:
    service = unit_service_section()
    assert service["Type"] == ["notify"]
    assert service["ExecStart"][0].startswith(f"{VENV_DIR}/bin/claude2api ")
    assert "--config /etc/claude2api/config.yaml" in service["ExecStart"][0]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    environment = " ".join(service["Environment"]).split()
    # Every secret setting the daemon knows, as a *_FILE in the root-owned folder: not a
    # LoadCredential= copy (made at start only), so `systemctl reload` rotates a key.
    assert {f"{env_name(s)}_FILE={CREDENTIALS_DIR}/{env_name(s).lower()}" for s in secret_settings()} <= set(
        environment
    )
    assert "LoadCredential" not in service
    assert not [e for e in environment if e.split("=")[0] in ("SESSIONS", "APIKEY", "ADMIN_KEY", "PROXY")]
    assert "EnvironmentFile" not in service  # secrets in the environment cannot be rotated by a reload
    # The dynamic user reads them through the group install-service creates from the sysusers file.
    assert service["DynamicUser"] == ["yes"]
    assert service["SupplementaryGroups"] == ["claude2api"]
    sysusers = (REPO / "systemd" / "claude2api.sysusers").read_text()
    assert [line.split() for line in sysusers.splitlines() if line and not line.startswith("#")] == [
        ["g", "claude2api", "-"]
    ]
    assert int(service["WatchdogSec"][0].rstrip("s")) > 0


SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$CALL_LOG"
"""


def tree_state(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Mode, mtime (ns) and content of every file and folder under root/etc."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_mode,
            p.stat().st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
        for p in sorted((root / "etc").rglob("*"))
    }


def group_id(root: Path) -> int:
    """The claude2api group's id in the installed tree's /etc/group."""
    for line in (root / "etc" / "group").read_text().splitlines():
        name, _, gid, *_ = line.split(":")
        if name == "claude2api":
            return int(gid)
    raise AssertionError("no claude2api group")


def run_install(root: Path, log: Path, stub: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PIP_INDEX_URL", "PIP_CONFIG_FILE")}
    env.update(SYSTEMCTL=str(stub), CALL_LOG=str(log), PYTHON=sys.executable)
    return subprocess.run(
        [str(REPO / "scripts" / "install-service"), "--root", str(root)],
        env=env, capture_output=True, text=True, timeout=240,
    )


@pytest.mark.timeout(300)
def test_install_service_sets_up_what_the_readme_says_and_twice_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    stub = tmp_path / "systemctl"
    stub.write_text(SYSTEMCTL_STUB)
    stub.chmod(0o755)
    log = tmp_path / "calls.log"

    first = run_install(root, log, stub)
    assert first.returncode == 0, first.stderr
    etc = root / "etc" / "claude2api"
    creds = etc / "credentials"
    # The daemon in its own venv, runnable.
    version = subprocess.run(
        [str(root / VENV_DIR.lstrip("/") / "bin" / "claude2api"), "--help"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "demo" in version.stdout
    # Configuration from the example, the unit as shipped.
    assert (etc / "config.yaml").read_text() == (REPO / "config.example.yaml").read_text()
    assert (root / "etc/systemd/system/claude2api.service").read_bytes() == UNIT.read_bytes()
    # Secrets: root writes, the group claude2api (created in the root's /etc/group) reads; the API
    # key generated, the others waiting for the operator.
    gid = group_id(root)
    assert (root / "etc/sysusers.d/claude2api.conf").read_bytes() == (REPO / "systemd/claude2api.sysusers").read_bytes()
    assert (stat.S_IMODE(creds.stat().st_mode), creds.stat().st_uid, creds.stat().st_gid) == (0o750, 0, gid)
    for name in CREDENTIALS:
        info = (creds / name).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, gid), name
    api_key = (creds / "apikey").read_text().strip()
    assert api_key.startswith("sk-c2a-") and len(api_key) >= 40
    assert (creds / "sessions").read_text() == ""
    assert api_key not in first.stdout + first.stderr  # the key is in its file, not in the terminal
    assert log.read_text().splitlines() == ["systemctl daemon-reload", "systemctl enable claude2api.service"]

    # The operator fills in the sessions and loosens a mode by mistake; a re-run (an upgrade)
    # keeps every secret, restores 0640, and now restarts the service.
    (creds / "sessions").write_text("sk-ant-sid01-operator-secret\n")
    (creds / "admin_key").chmod(0o644)
    (etc / "config.yaml").write_text("log_level: debug\n")
    before = tree_state(root)
    log.unlink()

    second = run_install(root, log, stub)
    assert second.returncode == 0, second.stderr
    after = tree_state(root)
    admin = "etc/claude2api/credentials/admin_key"
    assert stat.S_IMODE(after[admin][0]) == 0o640
    before[admin] = (after[admin][0], *before[admin][1:])
    assert after == before  # nothing else changed: not one byte, mode or mtime
    assert (creds / "sessions").read_text() == "sk-ant-sid01-operator-secret\n"
    assert (creds / "apikey").read_text().strip() == api_key
    assert log.read_text().splitlines() == [
        "systemctl daemon-reload",
        "systemctl enable claude2api.service",
        "systemctl restart claude2api.service",
    ]
    assert "sk-ant-sid01-operator-secret" not in second.stdout + second.stderr


def test_install_service_leaves_the_hosts_systemd_alone_under_another_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    log = tmp_path / "calls.log"
    # An already installed venv whose python only logs (this test is about systemctl, not pip)...
    venv_python = root / VENV_DIR.lstrip("/") / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text('#!/bin/sh\necho "venv-python $*" >> "$CALL_LOG"\necho 0.1.0\n')
    venv_python.chmod(0o755)
    # ...and a systemctl on PATH that must not be called.
    path_bin = tmp_path / "bin"
    path_bin.mkdir()
    (path_bin / "systemctl").write_text(SYSTEMCTL_STUB)
    (path_bin / "systemctl").chmod(0o755)
    env = {"PATH": f"{path_bin}:{os.environ['PATH']}", "CALL_LOG": str(log), "PYTHON": sys.executable}
    result = subprocess.run(
        [str(REPO / "scripts" / "install-service"), f"--root={root}/"], env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert not [c for c in calls if c.startswith("systemctl")], calls
    assert any(c.startswith("venv-python -m pip install") for c in calls)
    assert f"not calling systemctl (--root {root})" in result.stdout
    assert (root / "etc/systemd/system/claude2api.service").is_file()


def test_install_service_rejects_unknown_arguments(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "install-service"), "--rot", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "unknown argument: --rot" in result.stderr
    assert not any(tmp_path.iterdir())
