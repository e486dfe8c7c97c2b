"""`nasrl search`'s screening-predictor and convergence flags against a real controller and a
simulated trainer: the settings reach the controller (GetSearch returns them), a bad value ends
with one line and a non-zero exit (argparse's, the CLI's or the controller's
INVALID_ARGUMENT), and why a finished search ended is printed (summary, --json, searches)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nasrl.rpc.client import ControllerClient
from tests.helpers import nasrl_cli

#: a space of one network: nb201 with one cell per stage and one operation
ONE_NETWORK = ("--space", "nb201", "--skeleton", "N=1", "--cell-ops", "skip_connect")


def search(controller: str, trainer: str, *args: str) -> subprocess.CompletedProcess[str]:
    return nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        trainer,
        "--agent",
        "random",
        "--epochs",
        "1",
        *args,
        timeout=300,
    )


def test_predictor_and_convergence_flags_reach_the_controller(
    controller: str, simulated: str
) -> None:
    r = search(
        controller,
        simulated,
        "--budget",
        "6",
        "--screen",
        "predictor",
        "--screen-factor",
        "3",
        "--screen-acquisition",
        "ei",
        "--screen-kappa",
        "1.5",
        "--screen-cold-start",
        "2",
        "--screen-cold-start-score",
        "params",
        "--screen-refit-every",
        "2",
        "--converged-after",
        "7",
        "--when-converged",
        "end",
        "--explore-by",
        "mutations",
        "--explore-top",
        "3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["state"] == "done" and summary["ended_because"] == "budget spent"
    with ControllerClient(controller) as c:
        req = c.get_search(summary["search_id"]).spec.request
    screening, convergence = req.screening, req.convergence
    assert (screening.score, screening.factor, screening.acquisition) == ("predictor", 3, "ei")
    assert screening.HasField("kappa") and screening.kappa == 1.5
    assert (screening.cold_start_results, screening.cold_start_score) == (2, "params")
    assert screening.refit_every == 2
    assert (convergence.patience, convergence.action) == (7, "end")
    assert (convergence.draws, convergence.top) == ("mutations", 3)


def test_unset_flags_take_the_controller_defaults_and_the_summary_says_why_it_ended(
    controller: str, simulated: str
) -> None:
    r = search(controller, simulated, "--budget", "2", "--screen", "predictor")
    assert r.returncode == 0, r.stderr
    with ControllerClient(controller) as c:
        (s,) = c.list_searches()
    assert s.ended_because == "budget spent"
    assert f"search {s.search_id} done (budget spent)" in r.stdout
    screening, convergence = s.spec.request.screening, s.spec.request.convergence
    assert (screening.acquisition, screening.kappa) == ("ucb", 0.5)
    assert (screening.cold_start_results, screening.cold_start_score) == (10, "")
    assert screening.refit_every == 10
    assert (convergence.patience, convergence.action) == (100, "explore")
    assert (convergence.draws, convergence.top) == ("mutations", 5)


def test_a_converged_search_that_ends_says_so(controller: str, simulated: str) -> None:
    """One network in the space: once it is trained the agent can only re-propose it, and
    after two such proposals --when-converged end ends the search with its budget unspent."""
    r = search(
        controller,
        simulated,
        *ONE_NETWORK,
        "--budget",
        "5",
        "--converged-after",
        "2",
        "--when-converged",
        "end",
    )
    assert r.returncode == 0, r.stderr
    assert "done (converged: the agent's last 2 proposals" in r.stdout, r.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "nasrl.cli", "searches", "--controller", controller],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert listing.returncode == 0, listing.stderr
    assert "done (converged)" in listing.stdout  # the table: the reason's head
    with ControllerClient(controller) as c:
        (s,) = c.list_searches()
    assert s.counts.evaluated == 1 and s.spec.budget == 5
    assert s.ended_because.startswith("converged: ")
    assert f"{s.search_id}: {s.ended_because}" in listing.stdout  # below it, in full


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--screen-acquisition", "best"), "argument --screen-acquisition: invalid choice"),
        (("--screen-kappa", "nan"), "argument --screen-kappa: must be a finite number"),
        (("--screen-cold-start", "0"), "argument --screen-cold-start: must be at least 1"),
        (("--screen-refit-every", "x"), "argument --screen-refit-every: not a whole number"),
        (("--screen-cold-start-score", "predictor"), "invalid choice: 'predictor'"),
        (("--converged-after", "0"), "argument --converged-after: must be at least 1"),
        (("--when-converged", "stop"), "argument --when-converged: invalid choice: 'stop'"),
        (
            ("--screen", "synflow", "--screen-kappa", "1", "--screen-refit-every", "3"),
            "nasrl: error: --screen-kappa and --screen-refit-every need --screen predictor",
        ),
    ],
)
def test_bad_flags_exit_2_before_anything_is_contacted(flags: tuple[str, ...], words: str) -> None:
    r = nasrl_cli(
        "search", "--controller", "127.0.0.1:1", "--trainers", "127.0.0.1:1", *flags, timeout=60
    )
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--screen-kappa", "11"), "screening.kappa must be between 0 and 10, got 11.0"),
        (("--screen-cold-start", "1"), "screening.cold_start_results must be between 2 and 1000"),
        (("--screen-refit-every", "1001"), "screening.refit_every must be between 1 and 1000"),
        (("--screen-factor", "1"), "screening.factor must be between 2 and 64"),
    ],
)
def test_values_the_controller_refuses_exit_1_with_its_reason(
    controller: str, simulated: str, flags: tuple[str, ...], words: str
) -> None:
    r = search(controller, simulated, "--budget", "2", "--screen", "predictor", *flags)
    assert r.returncode == 1, r.stderr
    assert "INVALID_ARGUMENT" in r.stderr and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    with ControllerClient(controller) as c:
        assert c.list_searches() == []


def test_a_patience_over_the_controllers_range_exits_1(controller: str, simulated: str) -> None:
    r = search(controller, simulated, "--budget", "2", "--converged-after", "1000001")
    assert r.returncode == 1
    assert "convergence.patience must be between 1 and 1,000,000, got 1000001" in r.stderr
    assert "Traceback" not in r.stderr


def test_model_steps_without_the_predictor_exits_1_with_the_remedy(
    controller: str, simulated: str
) -> None:
    # the last --agent wins: reinforce, whose model-based steps need predictor screening
    r = search(controller, simulated, "--agent", "reinforce", "--agent-setting", "model_steps=5")
    assert r.returncode == 1, r.stderr
    assert "model_steps needs the search's learned predictor" in r.stderr
    assert "--screen predictor" in r.stderr and "Traceback" not in r.stderr
    with ControllerClient(controller) as c:
        assert c.list_searches() == []
