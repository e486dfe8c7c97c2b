"""`nasrl search` exit codes tell whether the search is worth reading: 0 when its children
trained, 3 with a one-line reason when they all failed or too many did (`--json` still prints
the summary)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nasrl.cli.search_cmd import SEARCH_FAILED, failure_verdict


def search(controller: str, trainer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "nasrl.cli",
            "search",
            "--controller",
            controller,
            "--trainers",
            trainer,
            "--agent",
            "random",
            "--budget",
            "3",
            "--epochs",
            "1",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_child_failing_exits_non_zero_with_json(controller: str, trainer: str) -> None:
    # the trainer has no --data-dir, so it cannot load mnist: every child fails at once
    r = search(controller, trainer, "--dataset", "mnist")
    assert r.returncode == SEARCH_FAILED, r.stderr
    summary = json.loads(r.stdout)
    assert summary["failed"] == 3 and summary["evaluated"] == 0 and summary["best"] is None
    reason = [line for line in r.stderr.splitlines() if line.startswith("nasrl: error:")]
    assert len(reason) == 1, r.stderr
    assert "all 3 children failed" in reason[0] and "last failure:" in reason[0]
    assert "mnist" in reason[0] and "Traceback" not in r.stderr


def test_a_normal_search_exits_zero(controller: str, simulated: str) -> None:
    r = search(controller, simulated, "--dataset", "digits", "--slots-per-trainer", "2")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["evaluated"] == 3
    assert "nasrl: error" not in r.stderr


def test_bad_fraction_is_refused(controller: str, trainer: str) -> None:
    r = search(controller, trainer, "--max-failure-fraction", "1.5")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "nasrl: error: --max-failure-fraction must be between 0 and 1, not 1.5"
    )


@pytest.mark.parametrize(
    ("evaluated", "failed", "limit", "verdict"),
    [
        (10, 0, 0.5, None),
        (5, 5, 0.5, None),  # exactly the limit is allowed
        (4, 6, 0.5, "6 of 10 children failed (60%, more than --max-failure-fraction 0.5)"),
        (9, 1, 0.0, "1 of 10 children failed (10%, more than --max-failure-fraction 0)"),
        (0, 4, 1.0, "all 4 children failed"),  # all failed is a failure whatever the limit
        (0, 0, 0.5, "no child was trained"),
        (1, 9, 1.0, None),
    ],
)
def test_failure_verdict(evaluated: int, failed: int, limit: float, verdict: str | None) -> None:
    assert failure_verdict(evaluated, failed, limit) == verdict
