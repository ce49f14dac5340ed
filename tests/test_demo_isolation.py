"""The README's two set-up commands are independent: the test command never touches the demo's .venv.

Running ``./scripts/test`` while the demo (``.venv``, a regular install) was up used to reinstall the
package editable into that same environment, and the demo lost its packaged fixtures. Here a copy of
scripts/test runs in a scratch tree where ``python3`` and every venv's tools are stand-ins that log
which environment they belong to; the demo's ``.venv/bin/python`` refuses to run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A venv's python/ruff/mypy stand-in: logs "<venv dir> <tool> <args>" and succeeds.
VENV_TOOL = """#!/bin/sh
venv=$(cd "$(dirname "$0")/.." && pwd -P)
echo "$venv $(basename "$0") $*" >> "$CALL_LOG"
"""

# python3 stand-in: `python3 -m venv DIR` makes DIR/bin/{python,ruff,mypy} stand-ins.
PYTHON3 = """#!/bin/sh
echo "python3 $*" >> "$CALL_LOG"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    for tool in python ruff mypy; do
        cp "$VENV_TOOL" "$3/bin/$tool" && chmod +x "$3/bin/$tool"
    done
fi
"""

DEMO_PYTHON = """#!/bin/sh
echo "DEMO-VENV $*" >> "$CALL_LOG"
exit 1
"""


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def test_scripts_test_uses_its_own_venv_and_leaves_the_demo_alone(tmp_path: Path) -> None:
    tree = tmp_path / "checkout"
    shutil.copy(REPO / "scripts" / "test", _mkdir(tree / "scripts") / "test")
    _script(tree / "scripts" / "sdk-lanes", "#!/bin/sh\necho sdk-lanes >> \"$CALL_LOG\"\n")
    _script(tree / "scripts" / "npm-tools", "#!/bin/sh\necho npm-tools >> \"$CALL_LOG\"\n")
    # The demo's environment as the README's first command leaves it.
    _script(tree / ".venv" / "bin" / "python", DEMO_PYTHON)
    _script(tree / ".venv" / "bin" / "ruff", DEMO_PYTHON)
    _script(tree / ".venv" / "bin" / "mypy", DEMO_PYTHON)
    demo_before = _snapshot(tree / ".venv")

    stubs = tmp_path / "stubs"
    _script(stubs / "venv-tool", VENV_TOOL)
    _script(stubs / "bin" / "python3", PYTHON3)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{stubs / 'bin'}:/usr/bin:/bin",
        "CALL_LOG": str(log),
        "VENV_TOOL": str(stubs / "venv-tool"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["sh", str(tree / "scripts" / "test")], env=env, capture_output=True, text=True, timeout=30
    )
    calls = log.read_text().splitlines() if log.exists() else []
    assert result.returncode == 0, (result.stderr, calls)

    demo_venv = str((tree / ".venv").resolve())
    assert not [c for c in calls if "DEMO-VENV" in c or c.startswith(demo_venv + " ")], calls
    assert not [c for c in calls if re.fullmatch(r"python3 -m venv \.?/?\.venv/?", c)], calls
    assert _snapshot(tree / ".venv") == demo_before

    # ...and it really ran: an editable install with the test extra, ruff, mypy and pytest, all from one
    # venv of its own inside the checkout, then the SDK lanes.
    test_venv = {c.split(" ", 1)[0] for c in calls if c.startswith(str(tree.resolve()))}
    assert len(test_venv) == 1, calls
    venv_dir = Path(test_venv.pop())
    assert venv_dir.parent == tree.resolve() and venv_dir.name != ".venv"
    tools = [c.split(" ", 1)[1] for c in calls if c.startswith(str(venv_dir) + " ")]
    assert "python -m pip install --quiet -e .[test]" in tools
    assert "ruff check ." in tools
    assert "mypy " in tools  # no arguments: [tool.mypy] names the package
    pytest_at = next(i for i, t in enumerate(tools) if t.startswith("python -m pytest"))
    assert tools.index("ruff check .") < tools.index("mypy ") < pytest_at
    assert calls[-1] == "sdk-lanes"
    assert calls.index("npm-tools") < next(i for i, c in enumerate(calls) if "-m pytest" in c)  # CLI clients first
    # The test venv is ignored by git (and so by ruff), like the demo's.
    ignored = (REPO / ".gitignore").read_text().split()
    assert f"{venv_dir.name}/" in ignored


def test_readme_has_two_setup_commands_and_ci_runs_the_second() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", quick_start, re.S)
    assert [b.strip() for b in blocks] == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/claude2api --demo",
        "./scripts/test",
    ]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^exec \./scripts/test$", ci, re.M)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, float, bytes]]:
    """Every file and folder under ``root`` with its mode, mtime and content."""
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_mtime, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }
