"""A search's children as viewers see them (``ListChildren``): each candidate with what became
of it, read from the last commit without loading the agent or taking the search's lock."""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller_service.reports import Failure, Rejected, Report, Result, Screened
from controller_service.searches import BadRequest, Searches
from controller_service.states import Status
from controller_service.stopping import Decision
from nasrl.core.results import TrainOutcome

__all__ = ["ChildRecord", "EpochReportRecord", "list_children", "MAX_LIMIT", "MAX_DETAIL"]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000  # rows without curves: ~200 bytes each
MAX_DETAIL = 100  # with curves: up to 1,000 epochs (~40 KB) each


@dataclass(frozen=True)
class EpochReportRecord:
    epoch: int
    accuracy: float
    decision: Decision


@dataclass(frozen=True)
class ChildRecord:
    """One candidate: ``outcome`` for a trained or cached one (its curve only in detail);
    ``reason`` why it failed or was not trained."""

    candidate_id: int
    architecture: str
    status: Status
    outcome: TrainOutcome | None
    reason: str
    reward: float | None
    reissued: int
    screen_score: float | None
    reports: tuple[EpochReportRecord, ...]


def _reason(status: Status, report: Report | None) -> str:
    match report:
        case None:
            # an invalid proposal with no stored report: the dataset's input cannot take it
            return (
                "the dataset's input cannot take this network" if status == Status.INVALID else ""
            )
        case Failure(reason) | Rejected(reason):
            return reason
        case Screened(score, value):
            return f"screened out ({score} {value:.4g})"
    return ""


def _screen_score(report: Report | None) -> float | None:
    return report.value if isinstance(report, Screened) else None


def _outcome(report: Report | None, detail: bool) -> TrainOutcome | None:
    """The stored result; in a listing without its curve, and without its architecture
    text (the child's own, sent once)."""
    if not isinstance(report, Result):
        return None
    if not detail:
        return replace(report.outcome, curve=(), architecture="")
    return report.outcome


def list_children(
    searches: Searches, search_id: str, after: int, limit: int, detail: bool
) -> tuple[list[ChildRecord], bool]:
    """Up to ``limit`` children with ids above ``after`` (0 = ``DEFAULT_LIMIT``), and whether
    more follow. ``detail``: with learning curves and reported epochs."""
    most = MAX_DETAIL if detail else MAX_LIMIT
    limit = limit or min(DEFAULT_LIMIT, most)
    if not 1 <= limit <= most:
        raise BadRequest(
            f"limit must be between 1 and {most:,}{' with detail' if detail else ''}, got {limit}"
        )
    if after < 0:
        raise BadRequest(f"after_candidate_id must not be negative, got {after}")
    searches.spec(search_id)  # SearchNotFound for an unknown search
    rows = searches.store.candidates_after(search_id, after, limit + 1, curves=detail)
    more = len(rows) > limit
    rows = rows[:limit]
    reports: dict[int, list[EpochReportRecord]] = {}
    if detail and rows:
        for cid, epoch, accuracy, decision in searches.store.epoch_reports_between(
            search_id, rows[0].id, rows[-1].id
        ):
            reports.setdefault(cid, []).append(
                EpochReportRecord(epoch, accuracy, Decision(decision))
            )
    children = [
        ChildRecord(
            candidate_id=c.id,
            architecture=c.arch,
            status=Status(c.status),
            outcome=_outcome(c.report, detail),
            reason=_reason(Status(c.status), c.report),
            reward=c.reward,
            reissued=c.reissued,
            screen_score=_screen_score(c.report),
            reports=tuple(reports.get(c.id, ())),
        )
        for c in rows
    ]
    return children, more
