"""Every result says how it was obtained (TrainOutcome.evaluation ⇄ TrainResult.evaluation),
and one stored or sent before the field existed is read from its device."""

from __future__ import annotations

import json

import pytest

from nasrl.core import codec
from nasrl.core.results import Evaluation, TrainOutcome
from protos import trainer_pb2


def outcome(**kw: object) -> TrainOutcome:
    base: dict[str, object] = dict(
        validation_accuracy=0.5,
        validation_accuracy_last5=0.5,
        test_accuracy=0.375,  # exact in float32, as the proto carries it
        params=10,
        flops=20,
        seconds=1.0,
        device="cpu",
        architecture="C(4,3,1)",
    )
    return TrainOutcome(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("evaluation", list(Evaluation))
def test_it_round_trips_through_json_and_proto(evaluation: Evaluation) -> None:
    o = outcome(evaluation=evaluation, supernet_step=7, shared_steps=3)
    assert TrainOutcome.from_json(json.loads(json.dumps(o.to_json()))) == o
    assert codec.outcome_from_proto(codec.outcome_to_proto(o)) == o


@pytest.mark.parametrize(
    ("device", "expected"),
    [("cpu", Evaluation.FULL), ("table", Evaluation.TABLE), ("simulated", Evaluation.SIMULATED)],
)
def test_older_results_are_read_from_their_device(device: str, expected: Evaluation) -> None:
    stored = outcome(device=device).to_json()
    del stored["evaluation"]
    assert TrainOutcome.from_json(stored).evaluation is expected
    sent = codec.outcome_to_proto(outcome(device=device))
    sent.evaluation = trainer_pb2.EVALUATION_UNSPECIFIED
    assert codec.outcome_from_proto(sent).evaluation is expected
