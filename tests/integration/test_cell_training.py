"""A NAS-Bench-201 cell network trained by a real trainer over gRPC on loopback, and the cell
requests it refuses."""

from __future__ import annotations

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.arch import ArchSyntaxError, parse
from nasrl.core.builder import build, count_params
from nasrl.core.results import EpochRecord, TrainSettings
from nasrl.core.shapes import analyze
from nasrl.rpc import rpc
from nasrl.rpc.client import TrainerClient
from protos import architecture_pb2 as apb
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service import data

# N = 1 cell per stage, NAS-Bench-201's C = 16 and 3 stages: 8x8 digits -> 4x4 -> 2x2
CELL = "[N=1]|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_an_n1_cell_network_learns_digits(trainer: str) -> None:
    epochs: list[EpochRecord] = []
    with TrainerClient(trainer) as client:
        r = client.train(CELL, "digits", TrainSettings(epochs=2), on_epoch=epochs.append)
    shape = data.load("digits").shape
    arch = parse(CELL)
    assert [e.epoch for e in epochs] == [1, 2]
    assert r.validation_accuracy > 0.8  # 10 classes: chance is 0.1 (0.96 on 2 CPU threads)
    assert r.test_accuracy > 0.3
    assert r.params == analyze(arch, shape).params == count_params(build(arch, shape))
    assert r.flops == analyze(arch, shape).flops
    assert r.architecture == CELL  # the cell's own ops, not its isomorphism class


def _train(target: str, arch: apb.Architecture) -> list[trainer_pb2.TrainEvent]:
    request = trainer_pb2.TrainRequest(
        architecture=arch, dataset="digits", config=trainer_pb2.TrainingConfig(epochs=1)
    )
    with rpc.channel(target) as ch:
        return list(trainer_pb2_grpc.TrainerStub(ch).Train(request, timeout=30))


NONE6 = [apb.CELL_OP_NONE] * 6
BAD = {
    "both forms": (
        apb.Architecture(layers=[apb.Layer(gap=apb.GAP())], cell=apb.Cell(ops=NONE6)),
        "layers or a cell, not both",
    ),
    "five ops": (apb.Architecture(cell=apb.Cell(ops=NONE6[:5])), "needs 6 operations"),
    "unspecified op": (
        apb.Architecture(cell=apb.Cell(ops=NONE6[:5] + [apb.CELL_OP_UNSPECIFIED])),
        "edge 2->3 has no operation",
    ),
    "five stages on 8x8": (  # 8 -> 4 -> 2 -> 1 -> ?
        codec.arch_to_proto(parse("[S=5]|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")),
        "the reduction before stage 5 receives a 1x1 map",
    ),
    "too wide": (
        apb.Architecture(cell=apb.Cell(ops=NONE6, skeleton=apb.Skeleton(channels=2048))),
        "the last of 3 stages has 8192 channels",
    ),
    "negative channels": (
        apb.Architecture(cell=apb.Cell(ops=NONE6, skeleton=apb.Skeleton(channels=-4))),
        "stem channels (C) must be between 1",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_cells_are_invalid_argument(trainer: str, name: str) -> None:
    arch, fragment = BAD[name]
    with pytest.raises(grpc.RpcError) as info:
        _train(trainer, arch)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (info.value.details() or "")


def test_client_refuses_a_bad_cell_string_naming_the_position(trainer: str) -> None:
    with TrainerClient(trainer) as client, pytest.raises(ArchSyntaxError) as info:
        client.train("[N=1]|nor_conv_5x5~0|+", "digits")  # refused before any call
    assert "unknown operation 'nor_conv_5x5' on edge 0->1" in str(info.value)
    assert "at position 6" in str(info.value)
