"""bench/tabular.py's replay drives the agents itself (fast: no database, 50 seeds x 500
evaluations per agent in minutes) instead of through the controller. These tests hold it to
the controller: for every agent, with dedup, a parameter limit and screening, the replay and
``controller_service.searches.Searches`` (in process, on a temporary SQLite file, each
candidate answered from the same table) train the same networks in the same order and answer
the same ones from earlier results."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import screening  # noqa: E402
from bench.replay.lookup import Lookup, lookup  # noqa: E402
from bench.replay.replay import Evaluator, Job, replay_agent  # noqa: E402
from controller_service.codec import space_from_proto  # noqa: E402
from controller_service.searches import Searches  # noqa: E402
from controller_service.spec import Constraints, Convergence, Screening, SearchSpec  # noqa: E402
from controller_service.store import Store  # noqa: E402
from nasrl.core.results import TrainSettings  # noqa: E402
from protos import controller_pb2 as cpb  # noqa: E402

TINY = str(ROOT / "tests" / "data" / "tiny_digits.jsonl.gz")  # zoph, 32 networks
METAQNN = str(ROOT / "bench" / "tables" / "metaqnn_mnist5k.jsonl.gz")
EVALUATIONS = 8
AGENTS = [(TINY, "random"), (TINY, "evolution"), (TINY, "reinforce"), (METAQNN, "qlearning")]

#: (network, "trained" | "cached") in the order a search handed them out
Decisions = list[tuple[str, str]]


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The scores file of bench/screening.py for each table (params: what the controller
    computes too)."""
    files = {}
    for table in (TINY, METAQNN):
        out = tmp_path_factory.mktemp("scores")
        screening.main(["--table", table, "--scores", "params", "--out", str(out)])
        files[table] = str(screening.scores_path(Path(table), out))
    yield files


def replayed(job: Job) -> tuple[Decisions, int]:
    """What the replay evaluated (and answered from results), and its cached count."""
    seen: Decisions = []

    class Recording(Evaluator):
        def __call__(self, arch: Any) -> tuple[float, float]:
            text = self.lookup.text(arch)
            seen.append((text, "cached" if text in self.results else "trained"))
            return super().__call__(arch)

    import bench.replay.replay as replay_module

    original = replay_module.Evaluator
    replay_module.Evaluator = Recording  # type: ignore[misc]
    try:
        run = replay_agent(lookup(job.table), job)
    finally:
        replay_module.Evaluator = original  # type: ignore[misc]
    return seen, run.cached


def controlled(job: Job, tmp: Path) -> tuple[Decisions, int]:
    """What the controller's ``Searches`` hands out for the same search, each trained child
    answered from the table, and its count of cached candidates."""
    table = lookup(job.table)
    searches = Searches(Store(tmp / "controller.db"))
    sid = searches.create(_spec(table, job)).id
    seen: Decisions = []
    done = False
    while not done:
        handouts, done = searches.sample(sid, 1)
        for h in handouts:
            seen.append((h.text, "cached" if h.cached is not None else "trained"))
            if h.cached is None:
                row = table.primary[h.text]
                searches.update(sid, h.id, row.outcome(len(row.validation)), None)
    return seen, searches.view(sid).counts.get("cached", 0)


def _spec(table: Lookup, job: Job) -> SearchSpec:
    space = space_from_proto(json_format.ParseDict(table.table.space, cpb.SearchSpace()))
    screen = Screening(score=job.screen[0], factor=job.screen[1]) if job.screen else Screening()
    return SearchSpec(
        agent=job.agent,
        space=space,
        dataset=table.table.dataset,
        training=TrainSettings(**table.table.header["training"]),
        budget=job.evaluations,
        seed=job.seed,
        constraints=Constraints(max_params=job.max_params),
        screening=screen,
        agent_settings=job.settings,
        convergence=Convergence(
            patience=job.convergence_patience,
            draws="mutations" if job.mutate else "uniform",
            top=job.mutate or Convergence.top,
        ),
    )


def _limit(table: str) -> int:
    """A parameter limit that rules out about a third of the table's networks."""
    params = sorted(r.params for r in lookup(table).primary.values())
    return params[2 * len(params) // 3]


@pytest.mark.parametrize(("table", "agent"), AGENTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_dedup_agrees_with_the_controller(
    table: str, agent: str, seed: int, tmp_path: Path
) -> None:
    job = Job(table, agent, seed, EVALUATIONS)
    assert replayed(job) == controlled(job, tmp_path)


@pytest.mark.parametrize(("table", "agent"), AGENTS)
def test_a_parameter_limit_agrees_with_the_controller(
    table: str, agent: str, tmp_path: Path
) -> None:
    job = Job(table, agent, 1, EVALUATIONS, max_params=_limit(table))
    assert replayed(job) == controlled(job, tmp_path)


@pytest.mark.parametrize(("table", "agent"), AGENTS)
def test_screening_agrees_with_the_controller(
    table: str, agent: str, scores: dict[str, str], tmp_path: Path
) -> None:
    """A screened group's known networks are learnt again and counted cached by both, but
    the controller does not hand them out: the trained networks are compared in order."""
    job = Job(table, agent, 2, EVALUATIONS, screen=("params", 3, scores[table]))
    (replay, replay_cached), (controller, controller_cached) = (
        replayed(job),
        controlled(job, tmp_path),
    )
    assert [d for d in replay if d[1] == "trained"] == controller
    assert replay_cached == controller_cached


@pytest.mark.parametrize(("table", "agent"), AGENTS)
def test_predictor_screening_agrees_with_the_controller(
    table: str, agent: str, tmp_path: Path
) -> None:
    """Predictor screening: unscreened for the first 10 results (the cold start), then the
    predictor fitted on them picks each child of 3 proposals — the replay's ranking (sizes
    from the table) is the controller's (sizes from its own shape inference)."""
    job = Job(table, agent, 3, 16, screen=("predictor", 3, ""))
    (replay, replay_cached), (controller, controller_cached) = (
        replayed(job),
        controlled(job, tmp_path),
    )
    trained = [d for d in replay if d[1] == "trained"]
    assert len(trained) == 16
    assert trained == [d for d in controller if d[1] == "trained"]
    unscreened, _ = replayed(Job(table, agent, 3, 16))
    assert trained[:10] == [d for d in unscreened if d[1] == "trained"][:10]  # the cold start
    assert trained != [d for d in unscreened if d[1] == "trained"]  # then the predictor picks
    assert replay_cached == controller_cached


@pytest.mark.parametrize(("mutate", "patience"), [(0, 0), (5, 0), (0, 20)])
def test_exploration_and_model_steps_agree_with_the_controller(
    tmp_path: Path, mutate: int, patience: int
) -> None:
    """The efficient REINFORCE with model-based steps after every refit, on a table of 32
    networks that it soon knows: it converges (100 known proposals in a row; 20 with
    mutations, or as set) and the controller's exploration, the best-predicted new one of 3
    uniform draws (or of 3 mutations of the best 5 results, else a uniform one), finds the
    rest — the replay's draws, ranking and steps are the controller's."""
    job = Job(
        TINY,
        "reinforce",
        4,
        30,
        variant="efficient+predictor+explore+model",
        screen=("predictor", 3, ""),
        explore=True,
        model_steps=2,
        mutate=mutate,
        patience=patience,
    )
    (replay, replay_cached), (controller, controller_cached) = (
        replayed(job),
        controlled(job, tmp_path),
    )
    trained = [d for d in replay if d[1] == "trained"]
    assert len(trained) == 30
    assert trained == [d for d in controller if d[1] == "trained"]
    assert replay_cached == controller_cached
    store = Store(tmp_path / "controller.db")
    try:
        (sid,) = store.search_ids()
        rows = [store.candidate(sid, c.id) for c in store.candidates_after(sid, 0, 10_000)]
        explored = [r for r in rows if r is not None and r.decisions.get("explore")]
        assert explored, "the agent never converged: the test does not reach exploration"
    finally:
        store.close()
