"""Smoke test of bench/trainer_throughput.py: a tiny run writes a JSON with positive
throughput for both loops on every reference architecture, slot results, and a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_run_writes_json_and_png(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "trainer_throughput.py"),
            "--quick",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--slots",
            "1,2",
            "--children",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "trainer_throughput.json").read_text())
    devices = report["machine"]["devices"]
    assert "cpu" in devices
    assert set(report["loops"]) == set(devices) == set(report["slots"])
    for device in devices:
        rows = report["loops"][device]
        assert [r["arch"] for r in rows] == ["small", "medium", "skips"]
        for row in rows:
            for loop in ("nasrl", "plain"):
                assert row[loop]["images_per_s"] > 0
                assert 0.0 <= row[loop]["validation_accuracy"] <= 1.0
            assert row["ratio"] > 0
        slots = report["slots"][device]
        assert [s["slots"] for s in slots] == [1, 2]
        assert [s["children"] for s in slots] == [1, 2]
        assert all(s["children_per_hour"] > 0 for s in slots)
        assert slots[0]["ratio_vs_1"] == 1.0
        assert f"[{device}] small" in done.stdout
    assert (tmp_path / "trainer_throughput.png").read_bytes().startswith(PNG_MAGIC)
    if report["gpu_skipped"]:
        assert "no CUDA device: GPU part skipped" in done.stdout
