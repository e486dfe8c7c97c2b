"""bench/nb201.py (NAS-Bench-201's protocol replayed over its table): a smoke run over a
synthetic table of all 15,625 cells, the exact expectation of random search against brute
force, and, where the NAS-Bench-201 CSV is present, against the known value on the real file."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import nb201  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_csv(path: Path) -> None:
    """Every cell of the space with made-up accuracies and seconds (the real file's columns)."""
    from controller_service.spaces.nb201 import Nb201Space
    from nasrl.core.cell_text import cell_string

    space = Nb201Space()
    rng = random.Random(7)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "index",
                "cell",
                "isomorphism_key",
                "cifar10_valid_12ep",
                "cifar10_test_12ep",
                "cifar10_test_200ep",
                "train_seconds_12ep_estimate",
            ]
        )
        for i, path_ops in enumerate(itertools.product(space.ops, repeat=6)):
            convs = sum(op.startswith("nor_conv") for op in path_ops)
            valid = round(60 + 4 * convs + rng.uniform(0, 2), 3)
            decoded = space.decode(list(path_ops)).cell
            assert decoded is not None
            cell = cell_string(decoded)
            seconds = round(40 + 20 * convs + rng.uniform(0, 5), 1)
            w.writerow([i, cell, "", valid, valid, round(valid + 9, 3), seconds])


def test_exact_expectation_matches_enumeration() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    for n in (1, 2, 3, 4):
        draws = itertools.product(values, repeat=n)
        brute = statistics.fmean(max(d) for d in draws)
        assert nb201.expected_best_of_random(values, n) == pytest.approx(brute, abs=1e-12)


def test_exact_expectation_on_the_real_table() -> None:
    source = nb201.default_source()
    if not source.is_file():
        pytest.skip(f"the NAS-Bench-201 CSV is not at {source} (set NASRL_NB201_CSV)")
    with gzip.open(source, "rt", newline="") as f:
        valid = [float(r["cifar10_valid_12ep"]) for r in csv.DictReader(f)]
    assert len(valid) == 15625
    assert nb201.expected_best_of_random(valid, 10) == pytest.approx(80.63, abs=0.01)
    assert nb201.expected_best_of_random(valid, 1000) == pytest.approx(84.48, abs=0.01)


def test_nb201_protocol_smoke(tmp_path: Path) -> None:
    source = tmp_path / "nb201.csv.gz"
    synthetic_csv(source)
    # and arms with the controller's priors: predictor screening, exploration (uniform draws;
    # mutations), and the model-based steps after each refit
    arms = "random-paper,rea-paper,reinforce-paper,random,evolution,qlearning"
    arms += (
        ",reinforce-efficient+predictor+explore+model,reinforce-efficient+predictor+mutate+model"
    )
    if importlib.util.find_spec("optuna") is not None:
        arms += ",tpe"
    report = nb201.main(
        [
            "--source",
            str(source),
            "--runs",
            "3",
            "--budget-seconds",
            "1500,3000",
            "--agents",
            arms,
            "--curve-runs",
            "3",
            "--slow-curve-runs",
            "2",
            "--curve-evaluations",
            "60",
            "--workers",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "nb201_protocol.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert (tmp_path / "nb201_curves.png").read_bytes()[:8] == PNG_MAGIC
    assert saved["table"]["cells"] == 15625 and saved["budgets"] == [1500.0, 3000.0]
    assert set(saved["results"]) == set(arms.split(","))
    for arm, per in saved["results"].items():
        assert set(per) == {"1500", "3000"}
        small, large = per["1500"], per["3000"]
        assert small["runs"] == large["runs"] == 3
        assert small["score"]["n"] == 3 and 60 <= small["score"]["mean"] <= 100
        # the seconds of the evaluations fit the budget: at least 40 s each
        assert 1 <= small["evaluations"]["mean"] <= 1500 / 40
        assert small["evaluations"]["mean"] <= large["evaluations"]["mean"]
        if not nb201.ARMS[arm].dedup:
            assert small["cached"]["mean"] == 0
        assert "paper" not in small  # Table 5 is at 12,000 s only
    assert "argmax_score" in saved["results"]["reinforce-paper"]["1500"]
    curves = saved["curves"]
    assert curves["checkpoints"] == [10, 50, 60]
    assert set(curves["exact_random"]) == {"10", "50", "60"}
    for arm, c in curves["arms"].items():
        assert c["runs"] == (2 if arm in nb201.SLOW else 3)
        assert len(c["mean"]) == 60
        means = [c["at"][k]["mean"] for k in ("10", "50", "60")]
        assert means == sorted(means)
    assert set(curves["arms"]["random-paper"]["vs_exact"]) == {"10", "50", "60"}
    (tmp_path / "nb201_curves.png").unlink()
    assert nb201.main(["--replot", "--out", str(tmp_path)]) == saved
    assert (tmp_path / "nb201_curves.png").read_bytes()[:8] == PNG_MAGIC


def test_missing_csv_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "NASRL_NB201_CSV": str(tmp_path / "absent.csv.gz")}
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "nb201.py"), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "NAS-Bench-201 CSV is not at" in r.stderr and "Traceback" not in r.stderr


class _Stuck:
    """An agent converged on one cell: every proposal is the same, known one."""

    def __init__(self, proposal: object) -> None:
        self.proposal = proposal

    def sample(self, n: int) -> list[object]:
        return [self.proposal] * n

    def update(self, decisions: object, reward: float) -> None:
        pass


@pytest.mark.parametrize("mutate", [0, 5])
def test_the_replay_explores_as_the_controller_once_converged(tmp_path: Path, mutate: int) -> None:
    """After 100 known proposals in a row the replay's priors add an exploration cell: with
    ``mutate`` 5 one edge changed in one of the 5 best cells learnt (the controller's default
    draws), with 0 a uniform draw; it is new, and nothing is added before the rule is due."""
    from bench.nb201_priors import CellPriors
    from controller_service.agents import Proposal
    from controller_service.agents.proposals import exploration_draws
    from controller_service.spaces.nb201 import Nb201Space

    source = tmp_path / "nb201.csv.gz"
    synthetic_csv(source)
    table = nb201.Table(source)
    space = Nb201Space()
    priors = CellPriors(table, 3, 0, True, mutate)
    rng = random.Random(1)
    rows = rng.sample(range(len(table.cells)), 12)
    for rank, i in enumerate(rows):
        priors.learnt(i, rank / 100)  # the later a row, the better its reward
    known = {table.hashes[i] for i in rows}
    path = list(itertools.product(space.ops, repeat=6))[rows[0]]
    stuck = _Stuck(Proposal(space.decode(list(path)), {"path": list(path)}))
    for _ in range(100):
        assert priors.group(stuck, known) == [stuck.proposal]  # known: learnt again, free
    (_, explored) = priors.group(stuck, known)
    assert explored.decisions["explore"] is True
    cell = table.index(explored.decisions["path"])
    assert table.hashes[cell] not in known
    if mutate:
        best = [list(itertools.product(space.ops, repeat=6))[i] for i in rows[-5:]]
        changed = [sum(a != b for a, b in zip(explored.decisions["path"], p)) for p in best]
        assert min(changed) == 1
    else:
        assert explored.decisions == exploration_draws(space, 3, 1, 12, 101)[0].decisions
