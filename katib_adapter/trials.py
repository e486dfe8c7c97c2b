"""Katib trials as nasrl Updates: a finished trial (succeeded with its objective, failed,
killed, early-stopped) becomes one UpdateRequest for the candidate it ran; running ones none."""

from __future__ import annotations

import math
from collections.abc import Iterable

from katib_adapter.plan import KatibError
from protos import controller_pb2 as cpb
from protos import katib_api_pb2 as kpb
from protos import trainer_pb2 as tpb

__all__ = ["CANDIDATE_LABEL", "candidate_of", "update_for", "updates"]

CANDIDATE_LABEL = "nasrl-candidate"
MAX_CANDIDATE = 2**63 - 1  # candidate ids are int64
DEVICE_CHARS = 64  # the controller refuses a result whose device is longer
_FAILED = {
    kpb.TrialStatus.FAILED: "failed",
    kpb.TrialStatus.KILLED: "was killed",
    kpb.TrialStatus.METRICSUNAVAILABLE: "finished without metrics",
}
# extra metrics a trial may report (nasrl's trial command prints them): the largest value
_EXTRA = {"test_accuracy": 1.0, "params": 2.0**62, "flops": 2.0**62, "seconds": 1e9}


def _quoted(text: str, n: int = 60) -> str:
    return repr(text) if len(text) <= n else f"{text[:n]!r}... ({len(text):,} characters)"


def candidate_of(trial: kpb.Trial) -> int | None:
    """The nasrl candidate a trial runs (from the label the adapter gave it); None for a trial
    without the label (not nasrl's). Raises KatibError for a label no candidate id can be."""
    if CANDIDATE_LABEL not in trial.spec.labels:
        return None
    text = trial.spec.labels[CANDIDATE_LABEL]
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and a length
    # check before int() (which refuses more than 4,300 digits)
    if 0 < len(text) <= 20 and text.isascii() and text.isdigit() and int(text) <= MAX_CANDIDATE:
        return int(text)
    raise KatibError(
        f"trial {_quoted(trial.name)} has the label {CANDIDATE_LABEL}={_quoted(text)}, which "
        "no nasrl candidate has: the label must stay as the adapter set it, the candidate id, "
        f"a whole number from 0 to {MAX_CANDIDATE}"
    )


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
        device=f"katib trial {trial.name}"[:DEVICE_CHARS],
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


def updates(trials: Iterable[kpb.Trial], metric: str) -> dict[int, cpb.UpdateRequest]:
    """The Update of every finished nasrl trial, by candidate; the first trial of a candidate
    wins (Katib sends every trial in each call, the same one any number of times). The
    requests' ``search_id`` is left to the caller. Raises KatibError for a bad label."""
    out: dict[int, cpb.UpdateRequest] = {}
    for trial in trials:
        request = update_for(trial, "", metric)
        if request is not None:
            out.setdefault(request.candidate_id, request)
    return out
