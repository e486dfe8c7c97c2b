"""Katib trials as nasrl Updates: a finished trial (succeeded with its objective, failed,
killed, early-stopped) becomes one UpdateRequest for the candidate it ran; running ones none."""

from __future__ import annotations

import math

from protos import controller_pb2 as cpb
from protos import katib_api_pb2 as kpb
from protos import trainer_pb2 as tpb

__all__ = ["CANDIDATE_LABEL", "candidate_of", "update_for"]

CANDIDATE_LABEL = "nasrl-candidate"
_FAILED = {
    kpb.TrialStatus.FAILED: "failed",
    kpb.TrialStatus.KILLED: "was killed",
    kpb.TrialStatus.METRICSUNAVAILABLE: "finished without metrics",
}
# extra metrics a trial may report (nasrl's trial command prints them): the largest value
_EXTRA = {"test_accuracy": 1.0, "params": 2.0**62, "flops": 2.0**62, "seconds": 1e9}


def candidate_of(trial: kpb.Trial) -> int | None:
    """The nasrl candidate a trial runs (from the label the adapter gave it), if any."""
    text = trial.spec.labels.get(CANDIDATE_LABEL, "")
    return int(text) if text.isdigit() else None


def _metrics(trial: kpb.Trial) -> dict[str, str]:
    return {m.name: m.value for m in trial.status.observation.metrics}


def _number(text: str | None, high: float) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if 0.0 <= value <= high else None  # NaN fails too


def _result(trial: kpb.Trial, value: float, stopped: bool) -> tpb.TrainResult:
    result = tpb.TrainResult(
        validation_accuracy=value,
        validation_accuracy_last5=value,
        stopped_early=stopped,
        device=f"katib trial {trial.name}"[:200],
    )
    metrics = _metrics(trial)
    for name, high in _EXTRA.items():
        number = _number(metrics.get(name), high)
        if number is not None:
            setattr(result, name, int(number) if name in ("params", "flops") else number)
    return result


def update_for(trial: kpb.Trial, search_id: str, metric: str) -> cpb.UpdateRequest | None:
    """The Update a finished trial reports, or None while it runs (or is not nasrl's)."""
    candidate = candidate_of(trial)
    condition = trial.status.condition
    if candidate is None or condition not in (
        *_FAILED,
        kpb.TrialStatus.SUCCEEDED,
        kpb.TrialStatus.EARLYSTOPPED,
    ):
        return None
    request = cpb.UpdateRequest(search_id=search_id, candidate_id=candidate)
    if condition in _FAILED:
        request.failure = f"Katib trial {trial.name} {_FAILED[condition]}"[:2000]
        return request
    text = _metrics(trial).get(metric)
    value = _number(text, 1.0)
    if value is None:
        what = "reported no" if text is None else f"reported {text[:50]!r} as its"
        request.failure = (
            f"Katib trial {trial.name} {what} objective {metric!r}; nasrl needs "
            "a validation accuracy in [0, 1]"
        )[:2000]
        return request
    stopped = condition == kpb.TrialStatus.EARLYSTOPPED
    request.result.CopyFrom(_result(trial, value, stopped))
    return request
