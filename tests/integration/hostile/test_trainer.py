"""Hostile Train requests: hypothesis-built ones and a valid one mutated one field at a
time, against a simulating trainer (the same validation) and one that really trains."""

from __future__ import annotations

import math
from typing import cast

import grpc
from hypothesis import example, given
from hypothesis import strategies as st

from protos import architecture_pb2 as apb
from protos import trainer_pb2 as tpb

from .conftest import TINY_ARCH, Shown, Trainer, fuzz, show, stream, timeout_for
from .strategies import (
    architectures,
    mutation,
    sane_architectures,
    train_requests,
    training_configs,
)


def check_train_ok(events: list[tpb.TrainEvent], what: str) -> None:
    assert events, f"{what}: OK without any message"
    assert events[-1].WhichOneof("event") == "result", f"{what}: the stream did not end in a result"
    result = events[-1].result
    for value in (result.validation_accuracy, result.test_accuracy):
        assert 0 <= value <= 1, f"{what}: accuracy {value}"


@fuzz(100)
@given(req=train_requests().map(Shown))
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits",
            config=tpb.TrainingConfig(  # unknown values: open enums take any int32
                optimizer=cast("tpb.Optimizer.ValueType", 99),
                schedule=cast("tpb.Schedule.ValueType", -1),
            ),
            architecture=TINY_ARCH,
        )
    )
)  # unknown enum values
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits",
            config=tpb.TrainingConfig(
                learning_rate=math.nan,
                momentum=math.inf,
                weight_decay=-math.inf,
                max_seconds=math.nan,
                epochs=-(2**31),
                batch_size=2**31 - 1,
                seed=-1,
            ),
            architecture=TINY_ARCH,
        )
    )
)
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits", architecture=apb.Architecture(layers=[TINY_ARCH.layers[0]] * 300)
        )
    )
)
def test_trainer_train_messages(serving_sim: Trainer, req: Shown) -> None:
    """Hypothesis-built TrainRequests against a simulating trainer (same validation)."""
    what = f"Train {show(req.msg)}"
    code, events = stream(serving_sim.stub.Train, req.msg, what, timeout=timeout_for(req.msg))
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)


@fuzz(12)
@given(
    arch=st.one_of(sane_architectures(), architectures(max_layers=8)),
    cfg=training_configs(epochs=st.just(1)),
    dataset=st.sampled_from(["digits", "digits", "digits", "mnist", "cifar10", ""]),
)
def test_real_trainer_train_messages(
    serving_real: Trainer, arch: apb.Architecture, cfg: tpb.TrainingConfig, dataset: str
) -> None:
    """The same against a trainer that really trains: one epoch, tiny networks, hostile
    hyper-parameters (NaN, inf, negative, unknown enums)."""
    cfg.epochs = 1
    if 2 <= cfg.batch_size < 32:  # valid but slow to train for real; the simulated trainer
        cfg.batch_size = 32  # takes them
    req = tpb.TrainRequest(architecture=arch, dataset=dataset, config=cfg)
    what = f"real Train {show(req)}"
    code, events = stream(serving_real.stub.Train, req, what, timeout=60)
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)


@fuzz(40)
@given(data=st.data())
def test_mutated_train_request(serving_sim: Trainer, data: st.DataObject) -> None:
    """A valid TrainRequest with one field (or nested field) made hostile."""
    base = tpb.TrainRequest(
        architecture=TINY_ARCH,
        dataset="digits",
        config=tpb.TrainingConfig(
            epochs=2,
            batch_size=16,
            optimizer=tpb.ADAM,
            learning_rate=0.01,
            schedule=tpb.STEP,
            seed=5,
            max_seconds=30,
        ),
    )
    shown, change = data.draw(mutation(base), label="mutation")
    what = f"Train with {change}"
    code, events = stream(serving_sim.stub.Train, shown.msg, what, timeout=timeout_for(shown.msg))
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)
