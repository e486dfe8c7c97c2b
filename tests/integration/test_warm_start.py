"""Priors and warm starts, size constraints, the cost-aware reward and the Pareto leaderboard,
over real gRPC against a real controller (results are reported with Update, as a runner
would)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.arch import canonical, format_arch, parse
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainSettings
from nasrl.core.shapes import analyze
from nasrl.rpc.client import ControllerClient, NasrlError
from protos import controller_pb2 as cpb
from tests.helpers import nasrl_cli, outcome

from .conftest import start_trainer

TABLE = Path(__file__).resolve().parents[1] / "data" / "tiny_digits.jsonl.gz"
ZOPH = cpb.SearchSpace(
    zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1, 2], filters=[8, 16], max_layers=2)
)
METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(
        conv_sizes=[1, 3],
        conv_filters=[4, 8],
        pools=[cpb.PoolChoice(size=2, stride=2)],
        fc_units=[32],
        max_depth=3,
    )
)
PRIORS = {
    "zoph": ["C(16,3,2) C(16,3,1)", "C(8,1,1) C(16,3,2)@[0]"],
    "metaqnn": ["C(8,3,1) P(2,2) GAP", "C(4,1,1) C(8,3,1)"],
}


def _text(text: str) -> str:
    return format_arch(canonical(parse(text)))


def _create(
    c: ControllerClient, agent: str, budget: int = 20, epochs: int = 3, **fields: Any
) -> str:
    space = METAQNN if agent == "qlearning" else ZOPH
    return c.create_search(
        agent=cpb.AgentSpec(name=agent),
        space=space,
        dataset="digits",
        budget=budget,
        training=codec.settings_to_proto(TrainSettings(epochs=epochs)),
        **fields,
    ).search_id


# ---------------------------------------------------------------------------- priors


@pytest.mark.parametrize("agent", ["reinforce", "random", "evolution", "qlearning"])
def test_priors_are_handed_out_first_and_learnt(controller: str, agent: str) -> None:
    space = "metaqnn" if agent == "qlearning" else "zoph"
    priors = PRIORS[space]
    with ControllerClient(controller) as c:
        sid = _create(c, agent, warm_start=cpb.WarmStart(architectures=priors))
        assert list(c.get_search(sid).spec.request.warm_start.architectures) == [
            _text(p) for p in priors
        ]
        first = c.sample(sid, len(priors)).candidates
        assert [x.text for x in first] == [_text(p) for p in priors]
        for x, accuracy in zip(first, (0.9, 0.8)):
            c.update(sid, x.id, outcome(x.text, accuracy, params=100, flops=1000))
        progress = dict(c.get_search(sid).progress)
        later = c.sample(sid, 5).candidates
        assert len(later) == 5  # the agent proposes on its own after the priors
        if agent == "reinforce":
            assert progress["pretrained_on"] == 2 and progress["updates"] == 2
        elif agent == "evolution":
            # the priors are the first members of the population
            assert progress["population"] == 2 and progress["population_best"] == pytest.approx(0.9)
        elif agent == "qlearning":
            table = c._call("ExportQTable", cpb.ExportQTableRequest(search_id=sid))
            learnt = {(v.state, v.action) for v in table.values if v.value != table.q_init}
            assert len(learnt) >= 4  # the transitions of both prior paths moved
        else:
            assert progress["updates"] == 2


def test_reinforce_pretraining_makes_priors_likely() -> None:
    from controller_service.agents.reinforce import ReinforceAgent
    from controller_service.codec import space_from_proto
    from controller_service.spaces import ZophSpace, encode

    space = space_from_proto(ZOPH)
    assert isinstance(space, ZophSpace)
    priors = [encode(space, parse(p)) for p in PRIORS["zoph"]]
    fresh, warm = ReinforceAgent(space, seed=3), ReinforceAgent(space, seed=3)
    warm.pretrain(priors, steps=50, learning_rate=0.01)
    for d in priors:
        assert warm.log_prob(d).item() > fresh.log_prob(d).item() + 1.0
    assert warm.progress()["pretrained_on"] == 2
    # pre-training survives a save and load
    again = ReinforceAgent(space, seed=3)
    again.load_state_dict(warm.state_dict())
    assert again.log_prob(priors[0]).item() == pytest.approx(warm.log_prob(priors[0]).item())


@pytest.mark.parametrize(
    ("prior", "words"),
    [
        ("C(32,3,1)", "filters 32 is not one of [8, 16]"),
        ("C(8,3,1) C(8,3,1) C(8,3,1)", "3 layers; this space has 1 to 2"),
        ("C(8,3,1", "cannot be used"),
        ("P(2,2) GAP", "not a convolution"),
    ],
)
def test_priors_outside_the_space_are_refused(controller: str, prior: str, words: str) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError) as err:
            _create(c, "reinforce", warm_start=cpb.WarmStart(architectures=["C(8,1,1)", prior]))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "warm_start.architectures[1]" in str(err.value) and words in str(err.value)


def test_warm_start_from_an_earlier_search_reuses_its_results(controller: str) -> None:
    with ControllerClient(controller) as c:
        first = _create(c, "random", budget=6)
        accuracies = {}
        for i, x in enumerate(c.sample(first, 6).candidates):
            accuracies[x.text] = 0.5 + 0.05 * i
            c.update(first, x.id, outcome(x.text, accuracies[x.text], params=100, flops=1000))
        second = _create(c, "reinforce", budget=4, warm_start=cpb.WarmStart(search_id=first, top=3))
        s = c.get_search(second)
        assert s.counts.cached == 6 and s.counts.evaluated == 0  # reused, no budget spent
        assert s.progress["updates"] == 3 and s.progress["pretrained_on"] == 3
        assert s.best is not None and s.best.accuracy == pytest.approx(max(accuracies.values()))
        # a reused network proposed again is answered from the results, never trained
        for x in c.sample(second, 40).candidates:
            if x.text in accuracies:
                assert x.cached is not None
                assert x.cached.validation_accuracy == pytest.approx(accuracies[x.text])
            else:
                assert x.cached is None


def test_warm_start_does_not_reuse_children_stopped_early(controller: str) -> None:
    with ControllerClient(controller) as c:
        first = _create(c, "random", budget=3)
        a, b, d = c.sample(first, 3).candidates
        c.update(first, a.id, outcome(a.text, 0.9, params=100, flops=1000))
        c.update(
            first, b.id, replace(outcome(b.text, 0.5, params=100, flops=1000), stopped_early=True)
        )
        c.update(first, d.id, outcome(d.text, 0.7, params=100, flops=1000))
        second = _create(c, "random", warm_start=cpb.WarmStart(search_id=first))
        assert c.get_search(second).counts.cached == 2
        assert b.text not in {e.architecture for e in c.leaderboard(second)}


def test_warm_start_refuses_an_incomparable_or_unknown_search(controller: str) -> None:
    with ControllerClient(controller) as c:
        first = _create(c, "random", budget=2, epochs=3)
        with pytest.raises(NasrlError) as err:
            _create(c, "random", epochs=2, warm_start=cpb.WarmStart(search_id=first))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot stand in" in str(err.value)
        with pytest.raises(NasrlError) as err:
            _create(c, "random", warm_start=cpb.WarmStart(search_id="abcdef012345"))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "no search with id" in str(err.value)
        assert len(c.list_searches()) == 1  # nothing half-created


# ---------------------------------------------------------------------------- constraints


def _params(text: str) -> int:
    return analyze(parse(text), input_shape("digits")).params


def test_max_params_rejects_before_training_and_costs_no_budget(controller: str) -> None:
    limit = 1500
    with ControllerClient(controller) as c:
        sid = _create(c, "evolution", budget=6, constraints=cpb.Constraints(max_params=limit))
        trained = []
        while True:
            batch = c.sample(sid, 4)
            for x in batch.candidates:
                assert _params(x.text) <= limit
                if x.cached is None:
                    trained.append(x.text)
                    c.update(sid, x.id, outcome(x.text, 0.6, params=_params(x.text), flops=1000))
            if batch.done:
                break
        s = c.get_search(sid)
        assert len(trained) == 6 == s.counts.evaluated  # the whole budget went on trained ones
        assert s.progress["updates"] > 6  # rejected proposals were learnt (as failures)
    assert all(_params(t) <= limit for t in trained)


def test_cost_aware_reward_and_pareto_leaderboard(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(
            c,
            "random",
            constraints=cpb.Constraints(cost_metric="params", cost_target=1000, cost_weight=-0.5),
        )
        results = [(0.9, 4000), (0.8, 1000), (0.85, 6000), (0.7, 500), (0.75, 1000)]
        cands = c.sample(sid, len(results)).candidates
        for x, (accuracy, params) in zip(cands, results):
            ack = c.update(sid, x.id, outcome(x.text, accuracy, params=params, flops=1000))
            assert ack.reward == pytest.approx(accuracy * (params / 1000) ** -0.5)
        front = c.leaderboard(sid, top=10, pareto="params")
        assert [(round(e.accuracy, 2), e.params) for e in front] == [
            (0.7, 500),
            (0.8, 1000),
            (0.9, 4000),
        ]
        assert [e.accuracy for e in c.leaderboard(sid, top=2)] == pytest.approx([0.9, 0.85])
        with pytest.raises(NasrlError) as err:
            c.leaderboard(sid, pareto="latency")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("constraints", "words"),
    [
        (cpb.Constraints(max_params=-1), "max_params must be 0"),
        (cpb.Constraints(cost_metric="latency"), "cost_metric must be one of"),
        (cpb.Constraints(cost_metric="flops"), "cost_target must be a positive"),
        (
            cpb.Constraints(cost_metric="flops", cost_target=1e6, cost_weight=0.5),
            "between -10 and 0",
        ),
    ],
)
def test_bad_constraints_are_refused(
    controller: str, constraints: cpb.Constraints, words: str
) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError) as err:
            _create(c, "random", constraints=constraints)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in str(err.value)


def test_a_prior_over_the_limits_is_refused(controller: str) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError) as err:
            _create(
                c,
                "random",
                warm_start=cpb.WarmStart(architectures=["C(16,3,1) C(16,3,1)"]),
                constraints=cpb.Constraints(max_params=100),
            )
    assert "breaks the constraints" in str(err.value)


# ---------------------------------------------------------------------------- the CLI


def _search(controller: str, trainer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        trainer,
        "--space-from-table",
        str(TABLE),
        "--json",
        "--quiet",
        *extra,
    )


def test_cli_warm_start_from_a_file_and_from_a_search(controller: str, tmp_path: Path) -> None:
    handle, _ = start_trainer(slots=2, table=TABLE)
    trainer = f"127.0.0.1:{handle.port}"
    priors = tmp_path / "priors.txt"
    priors.write_text(
        "# known-good networks\nC(4,3,1) C(4,3,1)\n\nC(4,1,1) C(4,3x1,1)@[0]  # every table network has 2 layers\n"
    )
    try:
        r = _search(
            controller,
            trainer,
            "--agent",
            "evolution",
            "--budget",
            "4",
            "--warm-start",
            str(priors),
            "--max-params",
            "6000",
        )
        assert r.returncode == 0, r.stderr
        first = json.loads(r.stdout)
        r = _search(
            controller,
            trainer,
            "--agent",
            "reinforce",
            "--budget",
            "2",
            "--warm-start",
            first["search_id"],
        )
        assert r.returncode == 0, r.stderr
        second = json.loads(r.stdout)
        r = _search(controller, trainer, "--budget", "2", "--warm-start", "nope/priors.txt")
    finally:
        handle.stop(None)
    with ControllerClient(controller) as c:
        board = [e.architecture for e in c.leaderboard(first["search_id"], top=10)]
        assert {_text("C(4,3,1) C(4,3,1)"), _text("C(4,1,1) C(4,3x1,1)@[0]")} <= set(board)
        assert c.get_search(second["search_id"]).counts.cached >= 4
    assert r.returncode != 0 and "no such file" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- screening


def test_screening_hands_out_the_best_scoring_of_each_group(
    controller: str, tmp_path: Path
) -> None:
    from nasrl.core.scoring import score

    with ControllerClient(controller) as c:
        sid = _create(c, "random", budget=5, screening=cpb.Screening(score="synflow", factor=4))
        handed = c.sample(sid, 5).candidates
        assert len(handed) == 5 and all(x.cached is None for x in handed)
        s = c.get_search(sid)
        assert s.spec.request.screening.score == "synflow" and s.spec.request.screening.factor == 4
        assert s.progress["samples"] == 20  # four proposals per child
    from controller_service.reports import Screened
    from controller_service.store import Store

    # every screened-out network was recorded with its score, and scored no better than
    # the one handed out of its group of four
    store = Store(tmp_path / "controller.db")  # the controller fixture's database
    rows = [r for r in (store.candidate(sid, cid) for cid in range(100)) if r is not None]
    store.close()
    assert len(rows) == 20  # the small space has no invalid networks; none repeats here
    image = input_shape("digits")
    for group in (rows[i : i + 4] for i in range(0, 20, 4)):
        chosen = [r for r in group if r.status == "leased"]
        others = [r for r in group if r.status == "invalid"]
        assert len(chosen) == 1 and len(others) == 3
        assert chosen[0].arch in {x.text for x in handed}
        best = score("synflow", parse(chosen[0].arch), image)
        for r in others:
            assert isinstance(r.report, Screened) and r.report.score == "synflow"
            assert r.report.value <= best


@pytest.mark.parametrize(
    ("screening", "words"),
    [
        (cpb.Screening(score="naswot"), "screening.score must be one of"),
        (cpb.Screening(score="synflow", factor=1), "between 2 and 64"),
    ],
)
def test_bad_screening_is_refused(controller: str, screening: cpb.Screening, words: str) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError) as err:
            _create(c, "random", screening=screening)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and words in str(err.value)
