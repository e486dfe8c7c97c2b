"""The supernet trainer mode (--supernet) over real gRPC on digits: a Train call trains the
shared weights a few steps on the child and answers its accuracy under them, marked
EVALUATION_SHARED with the supernet's step; GetWeights gives the child's slice as a standalone
network; a trainer process killed with -9 loses at most the steps since its last checkpoint."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from nasrl.core import codec
from nasrl.core.arch import Architecture, parse
from nasrl.core.builder import build
from nasrl.core.cell import Cell, CellOp, Skeleton
from nasrl.core.results import Evaluation, TrainOutcome
from nasrl.core.supernet import ZophBounds, ZophSupernet
from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service import data
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer
from trainer_service.shared import SharedWeights
from trainer_service.weights import WeightStore

from .conftest import SERVICE

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = dict(max_kernel=3, max_filters=8, max_layers=3)  # a Zoph space's maxima


def request(arch: Architecture, steps: int = 2, **space: int) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(
        architecture=codec.arch_to_proto(arch),
        dataset="digits",
        config=trainer_pb2.TrainingConfig(epochs=1, batch_size=16, learning_rate=0.05),
        shared=trainer_pb2.SharedTraining(steps=steps, **space),
    )


def train(stub: trainer_pb2_grpc.TrainerStub, req: trainer_pb2.TrainRequest) -> TrainOutcome:
    events = list(stub.Train(req, timeout=60))
    assert events[0].HasField("progress") and events[-1].HasField("result")
    return codec.outcome_from_proto(events[-1].result)


def weights(stub: trainer_pb2_grpc.TrainerStub, wid: str) -> dict[str, torch.Tensor]:
    blob = b"".join(c.data for c in stub.GetWeights(trainer_pb2.GetWeightsRequest(weights_id=wid)))
    saved = torch.load(io.BytesIO(blob), weights_only=True)
    return dict(saved["state_dict"])


@pytest.fixture(scope="module")
def stub() -> Iterator[trainer_pb2_grpc.TrainerStub]:
    folder = Path(tempfile.mkdtemp(prefix="nasrl-test-supernet-"))
    servicer = TrainerServicer(
        TrainerConfig(port=0, supernet=True),
        torch.device("cpu"),
        WeightStore(folder / "weights", 64 << 20),
        SharedWeights(folder / "supernets", checkpoint_every=0, default_steps=1),
    )
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        [SERVICE],
        max_workers=4,
    )
    handle.set_serving(True)
    with rpc.channel(f"127.0.0.1:{handle.port}") as ch:
        yield trainer_pb2_grpc.TrainerStub(ch)
    handle.stop(None)


def test_a_child_trains_on_shared_weights_and_says_so(stub: trainer_pb2_grpc.TrainerStub) -> None:
    arch = parse("C(8,3,1) C(4,1,2)@[0,1]")
    first = train(stub, request(arch, steps=2, **SPACE))
    second = train(stub, request(parse("C(4,3,1)"), steps=1, **SPACE))
    assert first.evaluation is Evaluation.SHARED and second.evaluation is Evaluation.SHARED
    assert (first.shared_steps, second.shared_steps) == (2, 1)
    assert second.supernet_step == first.supernet_step + 1  # one supernet for the space
    assert 0.0 <= first.validation_accuracy <= 1.0 and first.validation_examples > 0
    # the child's slice is a standalone network that reproduces the reported test accuracy
    net = build(arch, data.load("digits").shape)
    net.load_state_dict(weights(stub, first.weights_id))
    d = data.load("digits")
    with torch.no_grad():
        accuracy = float((net.eval()(d.x_test).argmax(1) == d.y_test).float().mean())
    assert accuracy == pytest.approx(first.test_accuracy, abs=1e-6)
    status = stub.GetStatus(trainer_pb2.GetStatusRequest())
    assert status.mode == "supernet"


def test_another_space_has_its_own_supernet(stub: trainer_pb2_grpc.TrainerStub) -> None:
    bigger = dict(SPACE, max_filters=16)
    result = train(stub, request(parse("C(16,3,1)"), steps=1, **bigger))
    assert result.supernet_step == 1


def test_a_cell_network_trains_on_the_cell_supernet(stub: trainer_pb2_grpc.TrainerStub) -> None:
    ops = (CellOp.NOR_CONV_3X3, CellOp.SKIP_CONNECT, CellOp.NONE) * 2
    arch = Architecture(cell=Cell(ops, Skeleton(channels=4, cells_per_stage=1, stages=2)))
    result = train(stub, request(arch, steps=2))
    assert result.evaluation is Evaluation.SHARED and result.supernet_step == 2
    net = build(arch, data.load("digits").shape)
    net.load_state_dict(weights(stub, result.weights_id))


@pytest.mark.parametrize(
    ("text", "space", "says"),
    [
        ("C(8,3,1)", {}, "max_kernel, max_filters and max_layers"),
        ("C(8,5,1)", SPACE, "exceed"),
        ("C(8,3,1) FC(8)", SPACE, "convolutions and pooling only"),
        ("C(8,3,1)", dict(max_kernel=15, max_filters=2048, max_layers=64), "over the limit"),
    ],
)
def test_children_it_cannot_share_are_invalid(
    stub: trainer_pb2_grpc.TrainerStub, text: str, space: dict[str, int], says: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        train(stub, request(parse(text), **space))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in (info.value.details() or "")


def test_kill_9_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path: Path) -> None:
    from nasrl.cli.local import LocalService

    folder = tmp_path / "supernets"
    args = ["--supernet", "--supernet-dir", str(folder), "--supernet-checkpoint-every", "2"]
    trainer = LocalService("trainer_service", [*args, "--threads", "1"], log_dir=tmp_path)
    arch = parse("C(8,3,1) C(8,3,2)@[1,0]")
    try:
        trainer.start()
        with rpc.channel(trainer.target) as ch:
            s = trainer_pb2_grpc.TrainerStub(ch)
            at_two = train(s, request(arch, steps=2, **SPACE))  # checkpointed at step 2
            saved = weights(s, at_two.weights_id)
            assert train(s, request(arch, steps=1, **SPACE)).supernet_step == 3  # not saved
        trainer.kill()  # kill -9
        (checkpoint,) = folder.glob("supernet-*.pt")
        state = torch.load(checkpoint, weights_only=True)
        assert state["step"] == 2
        net = ZophSupernet(data.load("digits").shape, ZophBounds(**SPACE))
        net.load_state_dict(state["model"])
        for key, value in net.child_state_dict(net.plan(arch)).items():
            assert torch.equal(value, saved[key]), key
        trainer.restart()
        with rpc.channel(trainer.target) as ch:
            resumed = train(trainer_pb2_grpc.TrainerStub(ch), request(arch, steps=1, **SPACE))
        assert resumed.supernet_step == 3  # step 3 was lost with the process, no more
        assert "resumed at step 2" in trainer.log()
    finally:
        trainer.kill()
