"""Every kind of trainer speaks the same Train protocol over real gRPC: the real one, the
table trainer (answers from a tabular benchmark) and the simulated one. Same stream shape,
same result fields, same status codes for bad requests and cancellation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.arch import canonical, format_arch, parse
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainSettings
from nasrl.core.shapes import analyze
from nasrl.core.table import read_table
from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from tests.integration.conftest import start_trainer, watch_slots

TABLE = Path(__file__).resolve().parents[1] / "data" / "tiny_digits.jsonl.gz"
# a member of the tiny table's space (ZophSpace 1/3 kernels, stride 1, 4 filters, 2 layers)
IN_TABLE = "C(4,1x3,1) C(4,3,1)"
KINDS: dict[str, dict[str, Any]] = {
    "real": {},
    "table": {"table": TABLE},
    "simulated": {"simulate": 0.0},
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def trainer(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    handle, _ = start_trainer(slots=2, **KINDS[request.param])
    yield request.param, f"127.0.0.1:{handle.port}"
    handle.stop(None)


def _request(
    arch: str, epochs: int = 2, dataset: str = "digits", **config: Any
) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(
        architecture=codec.arch_to_proto(parse(arch)),
        dataset=dataset,
        config=codec.settings_to_proto(TrainSettings(epochs=epochs)),
        **config,
    )


def _events(target: str, request: trainer_pb2.TrainRequest) -> list[trainer_pb2.TrainEvent]:
    with rpc.channel(target) as ch:
        return list(trainer_pb2_grpc.TrainerStub(ch).Train(request, timeout=120))


def test_stream_is_one_progress_per_epoch_then_the_result(trainer: tuple[str, str]) -> None:
    kind, target = trainer
    events = _events(target, _request(IN_TABLE, epochs=2))
    assert [e.WhichOneof("event") for e in events] == ["progress", "progress", "result"]
    progress = [e.progress for e in events[:-1]]
    assert [(p.epoch, p.epochs) for p in progress] == [(1, 2), (2, 2)]
    assert all(
        0 <= p.validation_accuracy <= 1
        and 0 <= p.train_accuracy <= 1
        and math.isfinite(p.train_loss)
        for p in progress
    )
    assert progress[0].seconds <= progress[1].seconds
    r = events[-1].result
    assert list(r.curve) == progress
    assert r.validation_accuracy == max(p.validation_accuracy for p in progress)
    assert r.validation_accuracy_last5 == max(p.validation_accuracy for p in progress[-5:])
    assert 0 <= r.test_accuracy <= 1 and r.seconds >= 0
    assert r.architecture == format_arch(canonical(parse(IN_TABLE)))
    analysis = analyze(parse(IN_TABLE), input_shape("digits"))
    assert (r.params, r.flops) == (analysis.params, analysis.flops)
    assert r.device == {"real": "cpu", "table": "table", "simulated": "simulated"}[kind]
    assert (
        r.evaluation
        == {  # how it was obtained: only FULL and TABLE are ground truth
            "real": trainer_pb2.EVALUATION_FULL,
            "table": trainer_pb2.EVALUATION_TABLE,
            "simulated": trainer_pb2.EVALUATION_SIMULATED,
        }[kind]
    )


def test_table_answers_what_the_build_recorded(trainer: tuple[str, str]) -> None:
    kind, target = trainer
    if kind != "table":
        pytest.skip("only the table trainer has a record to match")
    row = read_table(TABLE).row(IN_TABLE)
    assert row is not None
    r = _events(target, _request(IN_TABLE, epochs=3))[-1].result
    assert [round(c.validation_accuracy, 6) for c in r.curve] == [
        round(v, 6) for v in row.validation
    ]
    assert r.test_accuracy == pytest.approx(row.test_accuracy)
    assert r.seconds == pytest.approx(row.seconds, rel=1e-5)
    # fewer epochs replay the start of the curve
    short = _events(target, _request(IN_TABLE, epochs=1))[-1].result
    assert len(short.curve) == 1 and short.validation_accuracy == pytest.approx(row.validation[0])


@pytest.mark.parametrize(
    ("arch", "dataset", "words"),
    [
        (
            "C(4,3,1) C(4,3,1) C(4,3,1)",
            "digits",
            {"real": "", "table": "not in the table", "simulated": ""},
        ),
        (
            IN_TABLE,
            "nonexistent",
            {"real": "nonexistent", "table": "nonexistent", "simulated": "nonexistent"},
        ),
        ("C(4,9,1) P(9,9)", "digits", {"real": "pool", "table": "pool", "simulated": "pool"}),
    ],
)
def test_bad_requests_are_invalid_argument(
    trainer: tuple[str, str], arch: str, dataset: str, words: dict[str, str]
) -> None:
    kind, target = trainer
    if kind != "table" and not words[kind]:
        pytest.skip("a valid request for this trainer")
    with pytest.raises(grpc.RpcError) as err:
        _events(target, _request(arch, dataset=dataset))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words[kind] in (err.value.details() or "").lower()


def test_table_refuses_other_datasets_and_more_epochs_than_it_recorded(
    trainer: tuple[str, str],
) -> None:
    kind, target = trainer
    if kind != "table":
        pytest.skip("table limits")
    for request, words in (
        (_request(IN_TABLE, dataset="mnist5k"), "digits"),
        (_request(IN_TABLE, epochs=4), "recorded 3 epochs"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            _events(target, request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (err.value.details() or "")


def test_bad_settings_are_invalid_argument(trainer: tuple[str, str]) -> None:
    _, target = trainer
    request = _request(IN_TABLE)
    request.config.batch_size = 1
    with pytest.raises(grpc.RpcError) as err:
        _events(target, request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch_size" in (err.value.details() or "")


def test_time_scale_makes_the_table_trainer_cancellable() -> None:
    """With --time-scale the table trainer takes the recorded time (here x1000: minutes), and
    a cancelled call ends without a result and frees its slot, like a real one."""
    handle, servicer = start_trainer(table=TABLE, time_scale=1000.0)
    target = f"127.0.0.1:{handle.port}"
    slot = watch_slots(servicer)
    try:
        with rpc.channel(target) as ch:
            call = trainer_pb2_grpc.TrainerStub(ch).Train(_request(IN_TABLE), timeout=60)
            assert slot.taken.wait(30), "the call never took the slot"
            assert not servicer._slots.acquire(blocking=False)  # held by the call
            call.cancel()
            with pytest.raises(grpc.RpcError) as err:
                list(call)
        assert err.value.code() == grpc.StatusCode.CANCELLED
        assert slot.freed.wait(30), "the cancelled call kept its slot"
        assert servicer._slots.acquire(blocking=False)
        servicer._slots.release()
    finally:
        handle.stop(None)


@pytest.mark.parametrize(
    ("kind", "config", "epochs"),
    [
        ("real", {}, 200),  # digits epochs are short: plenty left when the stop arrives
        ("table", {"table": TABLE, "time_scale": 3.0}, 3),  # recorded epochs take ~1 s
        ("simulated", {"simulate": 9.0}, 3),
    ],
)
def test_finish_early_ends_the_stream_with_the_finished_epochs(
    kind: str, config: dict[str, Any], epochs: int
) -> None:
    """FinishEarly (an early-stopping STOP) after the first epoch: the stream ends normally
    with a result over the finished epochs, stopped_early set, the slot free again."""
    handle, servicer = start_trainer(**config)
    target = f"127.0.0.1:{handle.port}"
    request = _request(IN_TABLE, epochs=epochs)
    request.run_id = f"finish-{kind}"
    try:
        with rpc.channel(target) as ch:
            stub = trainer_pb2_grpc.TrainerStub(ch)
            assert not stub.FinishEarly(
                trainer_pb2.FinishEarlyRequest(run_id="nobody"), timeout=10
            ).found
            events = []
            for event in stub.Train(request, timeout=120):
                events.append(event)
                if len(events) == 1:
                    assert stub.FinishEarly(
                        trainer_pb2.FinishEarlyRequest(run_id=request.run_id), timeout=10
                    ).found
        result = events[-1].result
        assert events[-1].WhichOneof("event") == "result"
        assert result.stopped_early
        assert 1 <= len(result.curve) < epochs
        assert len(events) == len(result.curve) + 1
        assert result.validation_accuracy == max(c.validation_accuracy for c in result.curve)
        assert 0 <= result.test_accuracy <= 1
        assert servicer._slots.acquire(blocking=False)
        servicer._slots.release()
    finally:
        handle.stop(None)
