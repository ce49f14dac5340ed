"""The benchmark must keep running: ``bench/run.py --quick`` in a subprocess, result shape checked.

No timing is asserted (CI machines are small and noisy); only that every scenario ran, produced
numbers, and relayed every stream correctly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUMMARY_KEYS = {
    "latency": [
        "c1_added_ttft_p50_ms",
        "c1_added_ttft_p99_ms",
        "c1_added_total_p50_ms",
        "c1_added_total_p99_ms",
        "c64_added_ttft_p50_ms",
        "c64_added_ttft_p99_ms",
        "c64_added_total_p50_ms",
        "c64_added_total_p99_ms",
    ],
    "burst": [
        "daemon_cpu_s_per_1000_events",
        "daemon_cpu_us_per_event",
        "direct_events_per_s",
        "proxied_events_per_s",
        "relayed_ratio",
    ],
    "hold": [
        "daemon_rss_kb_per_stream",
        "daemon_fds_per_stream",
        "added_gap_p50_ms",
        "added_gap_p99_ms",
        "direct_bunched_share",
        "proxied_bunched_share",
        "proxied_events_per_read",
        "saturation_direct_events_per_s",
        "saturation_proxied_events_per_s",
        "saturation_ratio",
    ],
    "failure": [
        "direct_disconnect_to_stop_ms",
        "proxied_disconnect_to_stop_ms",
        "added_disconnect_to_stop_ms",
        "direct_stall_to_error_ms",
        "proxied_stall_to_error_ms",
        "added_stall_to_error_ms",
    ],
    "tools": [
        "daemon_cpu_us_per_event",
        "direct_first_call_to_finish_p50_ms",
        "proxied_first_call_to_finish_p50_ms",
        "added_first_call_to_finish_p50_ms",
        "added_first_call_to_finish_p99_ms",
    ],
}


@pytest.mark.timeout(240)
def test_quick_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| metric" in proc.stdout  # the table was printed
    result = json.loads(out.read_text())

    for scenario, keys in SUMMARY_KEYS.items():
        summary = result["scenarios"][scenario]["summary"]
        for key in keys:
            value = summary[key]
            assert isinstance(value, (int, float)) and math.isfinite(value), (scenario, key, value)

    # Correctness, not speed: every stream complete with exactly the scripted text.
    latency = result["scenarios"]["latency"]
    checks = [latency[c]["checks"][side] for c in ("c1", "c64") for side in ("direct", "proxied")]
    checks += list(result["scenarios"]["burst"]["checks"].values())
    hold = result["scenarios"]["hold"]
    checks += [hold["memory"]["checks"]]
    checks += [
        hold[step][side]["checks"] for step in ("gaps", "saturation") for side in ("direct", "proxied")
    ]
    for check in checks:
        assert check["streams"] > 0 and check["errors"] == 0 and check["wrong_text"] == 0, check

    failure = result["scenarios"]["failure"]
    assert failure["stall_errors_seen"]["proxied"] != ["no error"]
    # Tool turns: every call relayed with its name and arguments, ended as each side should.
    for side, check in result["scenarios"]["tools"]["checks"].items():
        assert check["streams"] > 0 and check == {**check, "errors": 0, "wrong_calls": 0, "wrong_finish": 0}, side
    assert "tool turns, 2 calls x 20 fragments: relay CPU per fragment (us)" in proc.stdout
    assert "tool turns, 2 calls x 20 fragments: first call -> finish p50 (ms)" in proc.stdout
    assert result["scenarios"]["daemon_access_lines"] > 0  # the access log was on, so it was counted

    conditions = result["conditions"]
    for key in ("python", "aiohttp", "cpu_model", "nproc", "kernel", "pinning", "sizes"):
        assert key in conditions
