"""The controller (latency, load, scaling) and fleet benchmarks run with tiny settings (they
are not part of the test numbers; this keeps them from rotting)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_controller_latency_smoke(tmp_path: Path) -> None:
    report = load("controller_latency").main(
        [
            "--rounds",
            "10",
            "--clients",
            "2",
            "--seconds",
            "1",
            "--agents",
            "random,reinforce",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "controller_latency.json").read_text())
    assert saved == json.loads(json.dumps(report))
    for agent in ("random", "reinforce"):
        r = saved["agents"][agent]
        assert r["sample_p50_ms"] > 0 and r["update_p50_ms"] > 0
        assert r["results_per_second"]["2"] > 0
    assert all(v["p50_ms"] > 0 for v in saved["echo_floor"].values())


def test_fleet_smoke(tmp_path: Path) -> None:
    report = load("fleet").main(
        [
            "--sizes",
            "4",
            "--agents",
            "random",
            "--child-seconds",
            "0.5",
            "--window",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    (row,) = report["rows"]
    assert report["simulation"] is True
    assert row["trainers"] == 4 and row["children_in_window"] > 0
    assert 0.3 < row["utilisation"] <= 1.05
    assert (tmp_path / "fleet.png").read_bytes()[:4] == b"\x89PNG"


def test_controller_scaling_smoke(tmp_path: Path) -> None:
    report = load("controller_scaling").main(
        [
            "--results",
            "20",
            "--marks",
            "10,20",
            "--agents",
            "random,qlearning",
            "--out",
            str(tmp_path),
        ]
    )
    rows = report["rows"]
    assert [(r["agent"], r["results"]) for r in rows] == [
        ("random", 10),
        ("random", 20),
        ("qlearning", 10),
        ("qlearning", 20),
    ]
    assert all(r["sample_p50_ms"] > 0 and r["state_kb"] > 0 for r in rows)
    assert json.loads((tmp_path / "controller_scaling.json").read_text())["results"] == 20


def test_controller_load_smoke(tmp_path: Path) -> None:
    # imported as bench.controller_load (not from its path): its load generator runs in a
    # spawned process, which imports the module by name
    report = importlib.import_module("bench.controller_load").main(
        [
            "--burst", "20",
            "--workers", "8",
            "--searches", "3",
            "--clients", "4",
            "--seconds", "1",
            "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert report["two_searches"]["solo_p99_ms"] > 0
    burst = report["burst"]
    assert sum(burst["outcomes"].values()) == 20
    assert set(burst["outcomes"]) <= {"served", "RESOURCE_EXHAUSTED"}
    assert burst["health_checks"] > 0
    assert report["cold_listing"]["searches"] == 3
