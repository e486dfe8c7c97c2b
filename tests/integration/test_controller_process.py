"""kill -9 of a real controller process between Updates loses nothing: after a restart on the
same database, results, agent weights and the next samples equal those of a run without the
kill."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller_service.states import Status
from controller_service.store import Store
from nasrl.cli.local import LocalService
from nasrl.core.results import TrainOutcome
from nasrl.rpc.client import ControllerClient, wait_until_serving
from protos import controller_pb2 as cpb
from tests.helpers import same_state

ROUNDS = 8
ZOPH = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=4, filters=[8, 16]))
METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(conv_filters=[8, 16], fc_units=[32], max_depth=5)
)
SPACES = {"reinforce": ZOPH, "random": ZOPH, "qlearning": METAQNN, "evolution": METAQNN}


def synthetic_accuracy(text: str) -> float:
    return min(1.0, 0.3 + 0.05 * text.count("3"))


def run(
    tmp: Path,
    agent: str,
    kill_at: set[tuple[int, int]],
    spec: cpb.AgentSpec | None = None,
    on_kill: Callable[[Path, str], None] | None = None,
    **search: Any,
) -> tuple[list[str], list[tuple[str, float, float]], dict[str, Any]]:
    """ROUNDS of Sample(2) + Updates; kill -9 and restart at each (round, n): after the
    round's Sample when n == 0, after its n-th Update otherwise (``on_kill(db, search_id)``
    looks at the database in between; ``search``: more CreateSearchRequest fields)."""
    db = tmp / f"{agent}-{'kill' if kill_at else 'plain'}.db"
    controller = LocalService("controller_service", ["--db", str(db)], log_dir=tmp).start()
    texts: list[str] = []
    try:
        wait_until_serving(controller.target)
        with ControllerClient(controller.target) as c:
            sid = c.create_search(
                agent=spec or cpb.AgentSpec(name=agent),
                dataset="digits",
                budget=100,
                seed=7,
                space=SPACES[agent],
                **search,
            ).search_id

        def crash_point(r: int, n: int) -> None:
            if (r, n) in kill_at:
                controller.kill()  # kill -9
                if on_kill:
                    on_kill(db, sid)
                controller.restart()
                wait_until_serving(controller.target)

        for r in range(ROUNDS):
            with ControllerClient(controller.target) as c:
                batch = c.sample(sid, 2).candidates
            crash_point(r, 0)
            for n, cand in enumerate(batch, start=1):
                texts.append(cand.text)
                if cand.cached is None:
                    acc = synthetic_accuracy(cand.text)
                    with ControllerClient(controller.target) as c:
                        c.update(
                            sid, cand.id, TrainOutcome(acc, acc, acc, 10, 10, 1.0, "cpu", cand.text)
                        )
                crash_point(r, n)
        with ControllerClient(controller.target) as c:
            board = [
                (e.architecture, round(e.accuracy, 6), round(e.reward, 6))
                for e in c.leaderboard(sid, top=100)
            ]
    finally:
        controller.kill()
    store = Store(db)
    state = store.load_agent(sid)
    assert store.integrity_check() == "ok"
    store.close()
    assert state is not None
    return texts, board, state


@pytest.mark.parametrize("agent", sorted(SPACES))
def test_kill_9_and_restart_continues_exactly(tmp_path: Path, agent: str) -> None:
    plain = run(tmp_path, agent, kill_at=set())
    killed = run(tmp_path, agent, kill_at={(1, 0), (3, 1), (5, 2)})
    assert killed[0] == plain[0], "the samples after a restart differ"
    assert killed[1] == plain[1] and len(plain[1]) > 0, "results were lost or changed"
    assert same_state(killed[2], plain[2]), "the agent state differs"


def test_kill_9_with_a_reinforce_batch_half_collected(tmp_path: Path) -> None:
    """Batches of 4 results: the controller is killed when 2 results of the second batch
    are in (queued in the database, not yet learnt). After the restart the batch completes
    and its policy-gradient step gives the same weights, samples and results as a run
    without the kill."""
    spec = cpb.AgentSpec(name="reinforce", reinforce=cpb.ReinforceSettings(batch=4))
    seen: list[dict[str, Any]] = []

    def look(db: Path, search_id: str) -> None:
        store = Store(db)
        state = store.load_agent(search_id)
        store.close()
        assert state is not None
        seen.append(state)

    plain = run(tmp_path, "reinforce", kill_at=set(), spec=spec)
    killed = run(tmp_path, "reinforce", kill_at={(2, 2)}, spec=spec, on_kill=look)
    # killed after the 6th result: one step taken, two results waiting for the second
    assert [len(s["pending"]) for s in seen] == [2] and seen[0]["steps"] == 1
    assert killed[0] == plain[0], "the samples after a restart differ"
    assert killed[1] == plain[1], "results were lost or changed"
    assert same_state(killed[2], plain[2]), "the agent state differs"
    assert killed[2]["steps"] >= 3  # the interrupted batch and the next were learnt


@pytest.mark.parametrize("agent", ["reinforce", "qlearning"])
def test_kill_9_with_the_efficient_preset_and_predictor_screening(
    tmp_path: Path, agent: str
) -> None:
    """The best RL configuration as a user runs it: the efficient preset, screening by the
    learned predictor (3 proposals per child, from the 3rd result on, refitted every 2; reinforce
    also takes model-based policy steps after each refit) and the convergence rule. Killed -9
    before the predictor's first use, and after several refits with one result of a Sample
    reported and one not: the restarted controller refits the predictor from the stored
    results, so samples, results and the agent's state equal a run without the kill."""
    spec = cpb.AgentSpec(name=agent, preset="efficient")
    if agent == "reinforce":
        spec.reinforce.model_steps = 3
    search: dict[str, Any] = {
        "screening": cpb.Screening(
            score="predictor", factor=3, cold_start_results=3, refit_every=2
        ),
        "convergence": cpb.Convergence(patience=2),
    }
    plain = run(tmp_path, agent, kill_at=set(), spec=spec, **search)
    killed = run(tmp_path, agent, kill_at={(1, 0), (5, 1)}, spec=spec, **search)
    assert killed[0] == plain[0], "the samples after a restart differ"
    assert killed[1] == plain[1] and len(plain[1]) >= 2 * ROUNDS - 4, "results were lost"
    assert same_state(killed[2], plain[2]), "the agent state differs"
    # the priors acted: proposals were screened out, and reinforce took model-based steps
    db = sqlite3.connect(tmp_path / f"{agent}-plain.db")
    (screened_out,) = db.execute(
        "SELECT count(*) FROM candidates WHERE status = ?", (Status.INVALID,)
    ).fetchone()
    db.close()
    assert screened_out >= 2 * ROUNDS  # up to 2 per child after the cold start
    if agent == "reinforce":
        assert plain[2]["dreams"] >= 3
