"""Tabular benchmarks end to end: the build resumes after a kill -9, a search runs through a
real controller and a table trainer (``nasrl search --space-from-table``), and the replay
benchmark runs on a tiny table."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nasrl.core.table import read_table
from tests.helpers import nasrl_cli, wait_for

from .conftest import start_trainer

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tests" / "data" / "tiny_digits.jsonl.gz"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _build(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "build_table.py"),
            "tiny",
            "--out",
            str(out),
            "--workers",
            "1",
            "--epochs",
            "1",
            "--limit",
            "8",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _rows(path: Path) -> int:
    try:
        return len(read_table(path).rows)
    except ValueError:  # not written yet
        return 0


def test_build_resumes_after_kill_9(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl.gz"
    first = _build(out)

    def three_rows() -> bool:  # another process writes them: nothing to wait on but the file
        assert first.poll() is None, first.communicate()[0]
        return _rows(out) >= 3

    wait_for(three_rows, timeout=240, what="the build's first 3 rows on disk")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    before = read_table(out).rows
    with open(out, "ab") as f:  # what a kill in the middle of a write leaves
        f.write(b"\x1f\x8b\x08\x00torn")
    second = _build(out)
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log
    assert f"{9 - len(before)} to go" in log  # only what was missing
    table = read_table(out)
    assert len(table.rows) == 9  # 8 networks + ceil(10 %) second seed
    assert all(table.rows[k] == row for k, row in before.items())  # kept as they were
    assert {s for _, s in table.rows} == {0, 1}
    assert table.build_seconds() >= max(r.build_elapsed for r in before.values())


def test_search_over_a_table_through_controller_and_table_trainer(controller: str) -> None:
    handle, _ = start_trainer(slots=4, table=TABLE)
    trainer = f"127.0.0.1:{handle.port}"
    try:
        r = nasrl_cli(
            "search",
            "--controller",
            controller,
            "--trainers",
            trainer,
            "--slots-per-trainer",
            "4",
            "--agent",
            "evolution",
            "--space-from-table",
            str(TABLE),
            "--budget",
            "20",
            "--json",
            "--quiet",
            timeout=300,
        )
    finally:
        handle.stop(None)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["evaluated"] == 20 and summary["failed"] == 0
    rows = read_table(TABLE).primary()
    best = summary["best"]
    assert best["arch"] in rows
    assert best["accuracy"] == pytest.approx(rows[best["arch"]].best_validation, abs=1e-6)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--space-from-table", "/nonexistent/table.gz"], "not a nasrl table"),
        (["--space-from-table", str(TABLE), "--space", "zoph"], "not both"),
    ],
)
def test_bad_table_arguments_exit_2(controller: str, args: list[str], words: str) -> None:
    r = nasrl_cli(
        "search", "--controller", controller, "--trainers", "127.0.0.1:1", *args, timeout=120
    )
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


def test_tabular_benchmark_smoke(tmp_path: Path) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import tabular

    agents = "reinforce,random,evolution"
    if importlib.util.find_spec("optuna") is not None:
        agents += ",tpe"
    report = tabular.main(
        [
            "--table",
            str(TABLE),
            "--seeds",
            "3",
            "--evaluations",
            "10",
            "--workers",
            "1",
            "--agents",
            agents,
            "--out",
            str(tmp_path),
        ]
    )
    assert set(report["variants"]["paper"]) == set(agents.split(","))
    assert set(report["variants"]["budget"]) == {"reinforce"}
    rows = read_table(TABLE).primary()
    optimum = max(r.best_validation for r in rows.values())
    assert report["optimum"] == optimum and report["architectures"] == 32
    for agent, s in report["variants"]["paper"].items():
        at10 = s["at"]["10"]["validation"]
        assert at10["n"] == 3 and at10["mean"] <= optimum
        assert s["final_regret"]["mean"] >= 0
        assert s["to_random_best"]["runs"] == 3
    saved = json.loads((tmp_path / "tabular_tiny.json").read_text())
    assert saved["random_target"] == report["random_target"]
    assert (tmp_path / "tabular_tiny.png").read_bytes()[:8] == PNG_MAGIC


def test_tabular_early_stopping_study_smoke(tmp_path: Path) -> None:
    """Every agent under every rule to one trainer-second budget: a stopped child costs only
    the epochs it ran, so early stopping buys more children for the same seconds."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import tabular

    report = tabular.main(
        [
            "--table",
            str(TABLE),
            "--seeds",
            "3",
            "--evaluations",
            "8",
            "--workers",
            "1",
            "--agents",
            "random,evolution",
            "--early-stopping",
            "asha,median",
            "--out",
            str(tmp_path),
        ]
    )
    es = report["early_stopping"]
    assert set(es["arms"]) == {
        f"{a}{r}" for a in ("random", "evolution") for r in ("", "+asha", "+median")
    }
    assert es["arms"]["random"]["stopped"]["mean"] == 0
    assert es["arms"]["random+asha"]["stopped"]["mean"] > 0
    assert es["arms"]["random+asha"]["children"]["mean"] > es["arms"]["random"]["children"]["mean"]
    for arm in es["arms"].values():
        assert arm["best_at_budget"]["n"] == 3
    assert (tmp_path / "tabular_tiny_stopping.png").read_bytes()[:8] == PNG_MAGIC


def test_tabular_warm_start_screening_and_constraints_smoke(tmp_path: Path) -> None:
    """The cheaper-search variants replay as the controller runs them: a warm start (priors
    from a proxy search, evaluated first, their proxy cost counted), screening (one network
    evaluated per group of proposals) and a parameter limit (over-limit proposals never
    evaluated)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import screening, tabular

    scores = screening.main(
        ["--table", str(TABLE), "--scores", "params,synflow", "--out", str(tmp_path)]
    )
    assert set(scores["scores"]) == {"params", "synflow"}
    assert len(scores["values"]["synflow"]) == 32
    rows = read_table(TABLE).primary()
    limit = sorted(r.params for r in rows.values())[20]
    report = tabular.main(
        [
            "--table",
            str(TABLE),
            "--seeds",
            "2",
            "--evaluations",
            "6",
            "--workers",
            "1",
            "--agents",
            "reinforce,random",
            "--variant",
            "paper",
            "--warm-start",
            str(TABLE),
            "--proxy-evaluations",
            "5",
            "--warm-top",
            "2",
            "--screen",
            "synflow",
            "--screen-factor",
            "2",
            "--max-params",
            str(limit),
            "--out",
            str(tmp_path),
        ]
    )
    variants = report["variants"]
    assert set(variants) == {"paper", "warm", "synflowx2", f"max_params {limit:,}"}
    for agent in ("reinforce", "random"):
        warm = variants["warm"][agent]
        assert warm["proxy_seconds"]["mean"] > 0  # the proxy search is part of the cost
        assert warm["at"]["6"]["validation"]["n"] == 2
        assert variants["synflowx2"][agent]["at"]["6"]["validation"]["n"] == 2
    small = max(r.best_validation for r in rows.values() if r.params <= limit)
    assert variants[f"max_params {limit:,}"]["random"]["at"]["6"]["validation"]["mean"] <= small
    assert (tmp_path / "tabular_tiny_warm_synflow_max_params.png").read_bytes()[:8] == PNG_MAGIC


def test_search_epochs_zero_is_refused_not_defaulted(controller: str) -> None:
    r = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        "127.0.0.1:1",
        "--epochs",
        "0",
        timeout=120,
    )
    assert r.returncode == 2 and "epochs must be between 1 and 1000" in r.stderr


@pytest.mark.parametrize("rule", ["asha", "median"])
def test_early_stopping_stops_children_of_a_table_trainer_at_time_scale_0(
    controller: str, rule: str
) -> None:
    """A table trainer at --time-scale 0 used to stream every epoch before the runner's Report
    came back, so no child was ever stopped (200 children, 0 stopped, the same trainer-seconds
    as without early stopping). Now each child waits for its decision (await_decisions)."""
    handle, _ = start_trainer(slots=4, table=TABLE)  # time_scale 0: epochs take no time
    trainer = f"127.0.0.1:{handle.port}"
    runs = {}
    try:
        for stopping in ("none", rule):
            r = nasrl_cli(
                "search",
                "--controller",
                controller,
                "--trainers",
                trainer,
                "--slots-per-trainer",
                "4",
                "--agent",
                "random",
                "--space-from-table",
                str(TABLE),
                "--budget",
                "24",
                "--early-stopping",
                stopping,
                "--json",
                "--quiet",
                timeout=300,
            )
            assert r.returncode == 0, r.stderr
            runs[stopping] = json.loads(r.stdout)
    finally:
        handle.stop(None)
    assert runs["none"]["stopped_early_this_run"] == 0
    assert runs[rule]["stopped_early_this_run"] >= 3
    assert runs[rule]["trainer_seconds_this_run"] < runs["none"]["trainer_seconds_this_run"]
