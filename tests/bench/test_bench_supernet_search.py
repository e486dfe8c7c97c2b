"""bench/supernet_search.py with a tiny setting (not part of the test numbers; this keeps it
from rotting): both arms run, the report says how each reached the random target."""

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


def test_supernet_search_smoke(tmp_path: Path) -> None:
    report = load("supernet_search").main(
        [
            "--seeds",
            "2",
            "--budget",
            "8",
            "--steps",
            "2",
            "--warmup",
            "3",
            "--top-k",
            "2",
            "--full-budget",
            "10",
            "--val",
            "100",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "supernet_search.json").read_text())
    assert saved["settings"]["top_k"] == 2 and len(saved["runs"]) == 2
    for run in report["runs"]:
        assert run["shared"]["children"] == 8 and run["shared"]["supernet_seconds"] > 0
        assert 0 < run["target"] <= 1
        assert run["random"]["children"] == 10
    assert saved["full_reached"] <= 2 and saved["shared_reached"] <= 2
