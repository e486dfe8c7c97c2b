"""A SHARED search (weight sharing, ENAS) end to end over real gRPC on digits: a controller, a
``--supernet`` trainer and an ordinary one. The runner sends every shared child to the
supernet trainer and the top-k stage's networks to the ordinary one; the leaderboard ranks
the fully trained first and says how each entry was evaluated. A SHARED search without a
supernet trainer, or with settings the controller refuses, ends with a sentence, not a hang."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from nasrl.core.results import Evaluation
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient, NasrlError
from nasrl.runner import Runner, TrainerPool
from nasrl.runner.routing import NoSupernetTrainer
from protos import controller_pb2 as cpb
from protos import trainer_pb2, trainer_pb2_grpc
from tests.helpers import nasrl_cli
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer
from trainer_service.shared import SharedWeights
from trainer_service.weights import WeightStore

from .conftest import SERVICE, start_controller, start_trainer

pytestmark = pytest.mark.usefixtures("one_thread")

SHARED = cpb.SearchEvaluation.EVALUATION_MODE_SHARED


@pytest.fixture(scope="module")
def supernet_trainer() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="nasrl-test-shared-search-"))
    servicer = TrainerServicer(
        TrainerConfig(port=0, supernet=True),
        torch.device("cpu"),
        WeightStore(folder / "weights", 64 << 20),
        SharedWeights(None, checkpoint_every=0, default_steps=50),
    )
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        [SERVICE],
        max_workers=4,
    )
    handle.set_serving(True)
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


@pytest.fixture(scope="module")
def ordinary_trainer() -> Iterator[str]:
    handle, _ = start_trainer()
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


def create(c: ControllerClient, **evaluation: int) -> str:
    return c.create_search(
        agent=cpb.AgentSpec(name="random"),
        space=cpb.SearchSpace(
            zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1], filters=[4, 8], max_layers=2)
        ),
        dataset="digits",
        training=trainer_pb2.TrainingConfig(epochs=1, batch_size=32, learning_rate=0.05),
        budget=6,
        seed=1,
        evaluation=cpb.SearchEvaluation(mode=SHARED, **evaluation),
    ).search_id


def test_shared_children_go_to_the_supernet_and_the_top_k_to_an_ordinary_trainer(
    controller: str, supernet_trainer: str, ordinary_trainer: str
) -> None:
    with ControllerClient(controller) as c:
        sid = create(c, steps=3, warmup_children=2, top_k=2)
        pool = TrainerPool(f"{ordinary_trainer},{supernet_trainer}")
        stats = Runner(c, pool, sid).run()
        pool.close()
        assert stats.per_trainer == {supernet_trainer: 6, ordinary_trainer: 2}
        s = c.get_search(sid)
        assert s.state.value == "done" and s.counts.evaluated == 8
        assert s.spec.request.evaluation.top_k == 2
        children = [ch for ch in c.list_children(sid)[0] if ch.result is not None]
        kinds = [ch.result.evaluation for ch in children if ch.result and ch.status == "trained"]
        assert kinds.count(Evaluation.SHARED) == 6 and kinds[-2:] == [Evaluation.FULL] * 2
        assert all(ch.result.shared_steps == 3 for ch in children[:6] if ch.result)
        board = c.leaderboard(sid, top=20)
        assert [e.evaluation for e in board[:2]] == [Evaluation.FULL] * 2
        assert {e.evaluation for e in board[2:]} == {Evaluation.SHARED}
        assert s.best is not None and s.best.evaluation is Evaluation.FULL
        # the top-k were the best shared scores: their networks' shared results are replaced
        finals = {ch.architecture for ch in children[-2:]}
        assert finals == {e.architecture for e in board[:2]}


def test_a_shared_search_without_a_supernet_trainer_stops_with_a_sentence(
    controller: str, ordinary_trainer: str
) -> None:
    with ControllerClient(controller) as c:
        sid = create(c)
        pool = TrainerPool(ordinary_trainer)
        with pytest.raises(NoSupernetTrainer, match="start one with"):
            Runner(c, pool, sid).run()
        pool.close()
        assert c.get_search(sid).counts.sampled == 0  # nothing was handed out


def test_bad_evaluation_settings_are_invalid_argument(controller: str) -> None:
    with ControllerClient(controller) as c:
        with pytest.raises(NasrlError, match="max_fc to 0") as bad_space:
            c.create_search(
                agent=cpb.AgentSpec(name="qlearning"),
                space=cpb.SearchSpace(name="metaqnn"),
                evaluation=cpb.SearchEvaluation(mode=SHARED),
            )
        assert bad_space.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(NasrlError, match="top_k must be between 0 and the budget") as big:
            c.create_search(budget=3, evaluation=cpb.SearchEvaluation(mode=SHARED, top_k=4))
        assert big.value.code == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(NasrlError, match="only applies to SHARED"):
            c.create_search(evaluation=cpb.SearchEvaluation(warmup_children=2))


def test_nasrl_search_without_a_supernet_trainer_exits_with_a_message(
    tmp_path: Path, ordinary_trainer: str
) -> None:
    handle, searches = start_controller(str(tmp_path / "c.db"))
    try:
        done = nasrl_cli(
            "search",
            "--controller",
            f"127.0.0.1:{handle.port}",
            "--trainers",
            ordinary_trainer,
            "--evaluation",
            "shared",
            "--top-k",
            "1",
            "--budget",
            "2",
            timeout=120,
        )
        assert done.returncode == 1
        assert "none of its trainers is a --supernet trainer" in done.stderr
        assert "Traceback" not in done.stderr
        assert searches.all() == []  # checked before the search was created
    finally:
        handle.stop(None)
        searches.store.close()
