"""What a candidate's report says, typed: a training result, a failure, a proposal rejected
by the constraints, or one screened out. The store keeps each as a small JSON object keyed
by its kind (``result``, ``failure``, ``rejected``, ``screened``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nasrl.core.results import TrainOutcome

__all__ = [
    "Result",
    "Failure",
    "Rejected",
    "Screened",
    "Report",
    "report_to_json",
    "report_from_json",
]


@dataclass(frozen=True)
class Result:
    """The child trained (or was answered from an earlier result)."""

    outcome: TrainOutcome


@dataclass(frozen=True)
class Failure:
    """The child's training failed; ``reason`` as the runner reported it."""

    reason: str


@dataclass(frozen=True)
class Rejected:
    """Over the search's size constraints: never trained."""

    reason: str


@dataclass(frozen=True)
class Screened:
    """Screened out by a training-free ``score`` of ``value``: never trained."""

    score: str
    value: float


Report = Result | Failure | Rejected | Screened


def outcome_to_json(o: TrainOutcome) -> dict[str, Any]:
    """A result as stored: its fields (``accuracy`` is derived, so not stored)."""
    data = o.to_json()
    data.pop("accuracy", None)
    return data


def report_to_json(r: Report) -> dict[str, Any]:
    match r:
        case Result(outcome):
            return {"result": outcome_to_json(outcome)}
        case Failure(reason):
            return {"failure": reason}
        case Rejected(reason):
            return {"rejected": reason}
        case Screened(score, value):
            return {"screened": {score: value}}


def as_stored(r: Report) -> Report:
    """``r`` as it reads back from the store, so that a report sent again compares equal to
    the stored one (a NaN in a curve, for one, is then the same object on both sides)."""
    return report_from_json(json.loads(json.dumps(report_to_json(r), sort_keys=True)))


def report_from_json(data: dict[str, Any]) -> Report:
    if "result" in data:
        return Result(TrainOutcome.from_json(data["result"]))
    if "failure" in data:
        return Failure(str(data["failure"]))
    if "rejected" in data:
        return Rejected(str(data["rejected"]))
    ((score, value),) = data["screened"].items()
    return Screened(str(score), float(value))
