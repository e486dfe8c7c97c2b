"""The qlearning and evolution agents through the controller over gRPC: the epsilon schedule
as GetSearch reports it, the Q-table export, and end-to-end searches with a real trainer."""

from __future__ import annotations

import grpc
import pytest

from controller_service.agents.qlearning import epsilon_schedule
from nasrl.core.results import TrainOutcome
from nasrl.rpc.client import ControllerClient, NasrlError, SearchStatus, TrainerClient
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb

SMALL_METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(conv_filters=[8, 16], fc_units=[64, 32], max_depth=4)
)


def expected_epsilon(unique: int, scale: float) -> float:
    for eps, n in epsilon_schedule(scale):
        if unique < n:
            return eps
        unique -= n
    return epsilon_schedule(scale)[-1][0]


def test_epsilon_stage_follows_the_scaled_schedule(controller: str) -> None:
    # budget 270 = a tenth of the paper's 2,700 models: 150 at 1.0, then 10 at 0.9, ...
    assert epsilon_schedule(0.1)[:3] == [(1.0, 150), (0.9, 10), (0.8, 10)]
    with ControllerClient(controller) as c:
        sid = c.create_search(
            agent=cpb.AgentSpec(name="qlearning"), dataset="digits", budget=270
        ).search_id
        assert c.get_search(sid).spec.request.space.WhichOneof("space") == "metaqnn"
        seen: list[tuple[int, float]] = []
        while len(seen) < 175:
            for cand in c.sample(sid, 4).candidates:
                if cand.cached is None:
                    c.update(sid, cand.id, TrainOutcome(0.5, 0.5, 0.5, 1, 1, 1.0, "cpu", cand.text))
            progress = c.get_search(sid).progress
            seen.append((int(progress["unique_models"]), progress["epsilon"]))
    assert any(u < 150 and e == 1.0 for u, e in seen)
    assert any(150 <= u < 160 and e == 0.9 for u, e in seen)
    assert any(u >= 170 and e == 0.7 for u, e in seen)
    for unique, eps in seen:
        assert eps == expected_epsilon(unique, 0.1), (unique, eps)


def test_paper_schedule_when_scale_is_one(controller: str) -> None:
    with ControllerClient(controller) as c:
        s = c.create_search(
            agent=cpb.AgentSpec(
                name="qlearning", qlearning=cpb.QLearningSettings(schedule_scale=1.0)
            ),
            dataset="digits",
            budget=50,
        )
        assert s.progress["epsilon"] == 1.0 and s.progress["epsilon_stage"] == 0
        assert s.spec.request.agent.qlearning.schedule_scale == 1.0
        assert s.spec.request.agent.qlearning.learning_rate == pytest.approx(0.01)


def test_end_to_end_qlearning_and_q_table(controller: str, trainer: str) -> None:
    with ControllerClient(controller) as c, TrainerClient(trainer) as t:
        sid = c.create_search(
            agent=cpb.AgentSpec(name="qlearning"),
            dataset="digits",
            budget=8,
            space=SMALL_METAQNN,
            training=tpb.TrainingConfig(epochs=1),
        ).search_id
        trained = 0
        while not (batch := c.sample(sid, 2)).done:
            for cand in batch.candidates:
                if cand.cached is None:
                    c.update(sid, cand.id, t.train(cand.arch, batch.dataset, batch.training))
                    trained += 1
        s = c.get_search(sid)
        table = c._call("ExportQTable", cpb.ExportQTableRequest(search_id=sid))
        board = c.leaderboard(sid)
        reinforce = c.create_search(agent=cpb.AgentSpec(name="reinforce")).search_id
        with pytest.raises(NasrlError) as info:
            c._call("ExportQTable", cpb.ExportQTableRequest(search_id=reinforce))
    assert trained == 8 and s.counts.evaluated == 8 and s.state == SearchStatus.DONE
    assert len(board) == 8 and board[0].accuracy > 0.1
    assert s.progress["trajectory_updates"] >= 8
    values = [v.value for v in table.values]
    assert values and values == sorted(values, reverse=True) and table.q_init == 0.5
    assert any(v.state.startswith("start@0") for v in table.values)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "only qlearning" in str(info.value)


@pytest.mark.parametrize("space", [SMALL_METAQNN, cpb.SearchSpace(name="zoph")])
def test_evolution_searches_both_spaces(controller: str, space: cpb.SearchSpace) -> None:
    with ControllerClient(controller) as c:
        sid = c.create_search(
            agent=cpb.AgentSpec(
                name="evolution", evolution=cpb.EvolutionSettings(population=4, sample_size=2)
            ),
            dataset="digits",
            budget=12,
            space=space,
        ).search_id
        while not (batch := c.sample(sid, 3)).done:
            for cand in batch.candidates:
                if cand.cached is None:
                    acc = min(1.0, 0.2 + 0.1 * cand.text.count("3"))
                    c.update(sid, cand.id, TrainOutcome(acc, acc, acc, 1, 1, 1.0, "cpu", cand.text))
        s = c.get_search(sid)
    assert s.state == SearchStatus.DONE and s.counts.evaluated == 12
    assert s.progress["population"] == 4
    assert s.spec.request.agent.evolution.population == 4


def test_agent_and_space_mismatch_is_invalid_argument(controller: str) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError) as info:
            c.create_search(
                agent=cpb.AgentSpec(name="qlearning"), space=cpb.SearchSpace(name="zoph")
            )
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "cannot search the 'zoph' space" in str(info.value)
        with pytest.raises(NasrlError) as info:
            c.create_search(space=cpb.SearchSpace(name="nasnet"))
        assert "unknown search space 'nasnet'" in str(info.value)
