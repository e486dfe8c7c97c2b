"""The rows the repository returns: plain, typed, no SQL."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from controller_service.reports import Report, report_from_json
from nasrl.core.results import TrainOutcome

__all__ = ["SearchRow", "CandidateRow", "ChildRow", "ResultRow", "Trained"]


@dataclass(frozen=True)
class SearchRow:
    id: str
    name: str
    created: float
    spec: dict[str, Any]
    state: str


@dataclass(frozen=True)
class CandidateRow:
    search_id: str
    id: int
    arch: str
    arch_hash: str
    decisions: dict[str, Any]
    status: str
    lease_deadline: float | None
    twin: int | None
    reissued: int
    report: Report | None
    reward: float | None
    final: bool = False  # handed out by a SHARED search's top-k stage for full training


@dataclass(frozen=True)
class ChildRow:
    """A candidate as a viewer lists it (``Store.candidates_after``)."""

    id: int
    arch: str
    status: str
    reissued: int
    report: Report | None
    reward: float | None


@dataclass(frozen=True)
class Trained:
    """One recorded result as a predictor learns it: the network (canonical text), its size
    and its reward."""

    arch: str
    params: int
    flops: int
    reward: float


@dataclass(frozen=True)
class ResultRow:
    """A network's result in a search: the columns the leaderboard sorts by, the reward it
    earned and the whole outcome."""

    candidate_id: int
    arch: str
    accuracy: float
    test_accuracy: float
    params: int
    flops: int
    seconds: float
    reward: float
    outcome: TrainOutcome

    @classmethod
    def of(cls, candidate_id: int, arch: str, outcome: TrainOutcome, reward: float) -> ResultRow:
        """The one way a result row is made: its columns come from the outcome."""
        return cls(
            candidate_id,
            arch,
            float(outcome.validation_accuracy),
            float(outcome.test_accuracy),
            int(outcome.params),
            int(outcome.flops),
            float(outcome.seconds),
            float(reward),
            outcome,
        )


def report_of(text: str | None) -> Report | None:
    return report_from_json(json.loads(text)) if text else None


def candidate_row(row: sqlite3.Row) -> CandidateRow:
    return CandidateRow(
        row["search_id"],
        row["id"],
        row["arch"],
        row["arch_hash"],
        json.loads(row["decisions"]),
        row["status"],
        row["lease_deadline"],
        row["twin"],
        row["reissued"],
        report_of(row["report"]),
        row["reward"],
        bool(row["final"]),
    )


def result_row(row: sqlite3.Row) -> ResultRow:
    return ResultRow(
        row["candidate_id"],
        row["arch"],
        row["accuracy"],
        row["test_accuracy"],
        row["params"],
        row["flops"],
        row["seconds"],
        row["reward"],
        TrainOutcome.from_json(json.loads(row["outcome"])),
    )
