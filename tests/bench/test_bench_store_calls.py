"""bench/store_calls.py counts the store calls of one Sample and one Update; the controller
keeps them at the numbers its design notes give (docs/design.md)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load_module

ROOT = Path(__file__).resolve().parents[2]


def test_sample_and_update_make_nine_store_calls_each(tmp_path: Path) -> None:
    bench = load_module(ROOT / "bench" / "store_calls.py")
    report = bench.main(["--agents", "random,reinforce", "--warmup", "3", "--out", str(tmp_path)])
    for agent in ("random", "reinforce"):
        assert report[agent]["sample"]["total"] == 9, report[agent]["sample"]
        assert report[agent]["update"]["total"] == 9, report[agent]["update"]
        assert report[agent]["update"]["calls"]["transaction"] == 1
    assert (tmp_path / "store_calls.json").exists()
