"""Smoke test of bench/search_efficiency.py (and bench/efficiency/): a tiny real run
(controller + 2 trainers on loopback, digits, one seed, a few trainer-seconds) writes a
well-formed JSON and a PNG."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench import search_efficiency as bench  # noqa: E402
from bench.efficiency.runlog import RunLog  # noqa: E402
from bench.efficiency.stats import GRID, best_at  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HAVE_OPTUNA = importlib.util.find_spec("optuna") is not None


def test_run_log_measures_at_the_budget() -> None:
    from nasrl.core.results import TrainOutcome

    log = RunLog("random", "digits", 0, budget=2.0)

    def child(acc: float, seconds: float, arch: str) -> TrainOutcome:
        return TrainOutcome(acc, acc, acc - 0.01, 1, 1, seconds, "cpu", arch)

    log.add_trained(child(0.5, 0.5, "a"))
    log.add_cached(child(0.5, 0.5, "a"))
    log.add_trained(child(0.7, 1.0, "b"))
    log.add_trained(child(0.9, 1.0, "c"))  # completes past the budget: trajectory only
    assert log.exhausted()
    val, test, found = log.at_budget()
    assert (val, found) == (0.7, 1.5) and test == pytest.approx(0.69)
    assert log.best_arch() == "b"
    assert log.seconds_to(0.6) == 1.5
    assert log.seconds_to(0.8) is None
    assert log.saved_seconds == 0.5 and log.cached == 1 and log.trained == 3
    assert math.isnan(best_at(log.trajectory, 0.1))
    assert best_at(log.trajectory, 1.6) == 0.7


@pytest.mark.timeout(300)
def test_tiny_run_writes_json_and_png(tmp_path: Path) -> None:
    agents = ["random", "qlearning", "tpe"]
    report = bench.main(
        [
            "--datasets",
            "digits",
            "--agents",
            ",".join(agents),
            "--seeds",
            "1",
            "--trainer-seconds",
            "5",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    ran = agents if HAVE_OPTUNA else ["random", "qlearning"]
    data = json.loads((tmp_path / "search_efficiency.json").read_text())
    assert data == json.loads(json.dumps(report))
    assert data["settings"]["agents"] == ran
    assert ("tpe" in data["settings"]["skipped"]) != HAVE_OPTUNA
    digits = data["datasets"]["digits"]
    assert digits["budget_trainer_seconds"] == 5
    assert 0 < digits["random_target"] <= 1
    assert set(digits["summary"]) == set(digits["curves"]) == set(digits["runs"]) == set(ran)
    for agent in ran:
        s = digits["summary"][agent]
        assert 0 < s["best_validation_accuracy"]["mean"] <= 1
        assert 0 < s["test_accuracy_of_best"]["mean"] <= 1
        assert s["dedup_saved_seconds"]["mean"] >= 0
        assert s["seconds_to_random_best"]["runs"] == 1
        (run,) = digits["runs"][agent]
        assert run["space"] == ("metaqnn" if agent == "qlearning" else "zoph")
        assert run["trained"] >= 1 and run["trainer_seconds"] >= 5
        traj = run["trajectory"]
        assert len(traj) == run["trained"]
        assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(traj, traj[1:]))
        curve = digits["curves"][agent]
        assert len(curve["seconds"]) == len(curve["mean"]) == GRID
        assert curve["mean"][-1] == pytest.approx(s["best_validation_accuracy"]["mean"])
    assert (tmp_path / "search_efficiency.png").read_bytes().startswith(PNG_MAGIC)
