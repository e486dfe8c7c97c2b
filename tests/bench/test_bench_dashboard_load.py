"""Smoke test of bench/dashboard_load.py: a tiny run (a controller process, 30 results) writes
a well-formed report. It asserts no timing: the benchmark's numbers are for the README."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_load_runs_and_reports(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "dashboard_load.py"),
            "--results",
            "30",
            "--repeats",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, not an installed one
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "dashboard_load.json").read_text())
    assert report["results"] == 30 and 0 < report["evaluated"] <= 30
    assert report["api"]["bytes"] > 0 and len(report["api"]["warm_s"]) == 1
    if report["browser"] is not None:  # drawn in Chromium: every trained child is a point
        assert report["browser"]["points_drawn"] == report["evaluated"]
    assert "search page" in result.stdout
