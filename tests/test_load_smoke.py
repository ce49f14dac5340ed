"""The load test must keep running: ``bench/load.py --quick`` in a subprocess, its verdicts checked.

Timings are not asserted (CI machines are small and noisy); the must-be-zero figures are: no 5xx,
no conversation left in the account, no request answered with the wrong kind of status, and every
slow stream opened and held to the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_quick_load_run(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| 5xx (must be 0)" in proc.stdout
    result = json.loads(out.read_text())

    assert result["five_xx"] == 0, result["statuses"]
    assert result["leaked_conversations"] == 0
    assert result["wrong_answers"] == {}, result["wrong_answers"]
    assert result["transport_errors"] == {}, result["transport_errors"]
    slow = result["slow_streams"]
    assert slow["opened"] == slow["asked"] == 200 and slow["cut_before_the_end"] == 0, slow
    for kind in ("openai_stream", "openai_json", "anthropic_stream", "anthropic_json", "abandon", "bad_input", "wrong_key"):
        assert result["latency_ms"][kind]["count"] > 0, kind
    assert result["latency_ms"]["all"]["p99"] > 0
    daemon = result["daemon"]
    assert daemon["fds"]["with_slow_streams"] >= 2 * 200  # two sockets a stream
    assert daemon["rss_kb"]["peak"] > 0 and daemon["exit_status"] == 0
