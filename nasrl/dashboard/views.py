"""The JSON the pages draw from, built from the client's dataclasses: numbers both raw (for
charts and sorting) and as text formatted as the CLI formats them (``nasrl.core.formats``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nasrl.core import formats
from nasrl.rpc.client import Child, ChildStatus, LeaderboardEntry, Search
from protos import controller_pb2 as cpb

__all__ = [
    "search_row",
    "search_summary",
    "entry_row",
    "trained_columns",
    "child_curve",
    "child_detail",
    "trainer_seconds",
    "failures",
]

MAX_LISTED = 200  # failures / not-trained rows sent to a page


def trainer_seconds(children: Iterable[Child]) -> float:
    """Seconds of training the search's children took (trained and stopped ones; cached
    children cost nothing, failed ones report no time)."""
    return sum(c.result.seconds for c in children if c.status is ChildStatus.TRAINED and c.result)


def search_row(s: Search, seconds: float | None) -> dict[str, Any]:
    best = None if s.best is None else s.best.accuracy
    return {
        "id": s.search_id,
        "name": s.name,
        "agent": s.spec.agent,
        "dataset": s.spec.dataset,
        "state": s.state.value,
        "evaluated": s.counts.evaluated,
        "failed": s.counts.failed,
        "budget": s.spec.budget,
        # trained and failed children both count against the budget (the CLI's progress bar)
        "evaluated_text": (
            f"{formats.count(s.counts.evaluated + s.counts.failed)} / "
            f"{formats.count(s.spec.budget)}"
        ),
        "best": best,
        "best_text": formats.best(best),
        "trainer_seconds": seconds,
        "trainer_seconds_text": "-" if seconds is None else formats.trainer_seconds(seconds),
        "created": s.created,
    }


def entry_row(rank: int, e: LeaderboardEntry) -> dict[str, Any]:
    return {
        "rank": rank,
        "id": e.candidate_id,
        "architecture": e.architecture,
        "accuracy": e.accuracy,
        "accuracy_text": formats.accuracy(e.accuracy),
        "evaluation": e.evaluation.value,  # shared: a shared-weights score, not trained
        "test_accuracy": e.test_accuracy,
        "test_accuracy_text": formats.accuracy(e.test_accuracy),
        "params": e.params,
        "params_text": formats.count(e.params),
        "flops": e.flops,
        "mflops_text": formats.mflops(e.flops),
        "seconds": e.seconds,
        "seconds_text": formats.seconds(e.seconds),
        "reward": e.reward,
        "reward_text": formats.accuracy(e.reward),
    }


def failures(children: Iterable[Child]) -> tuple[list[dict[str, Any]], int, list[dict[str, Any]]]:
    """Failed children with their reasons (the last ``MAX_LISTED``), how many failed, and
    the last children that were never trained (rejected, screened out) with why."""
    failed = [c for c in children if c.status is ChildStatus.FAILED]
    invalid = [c for c in children if c.status is ChildStatus.INVALID]

    def row(c: Child) -> dict[str, Any]:
        return {"id": c.candidate_id, "architecture": c.architecture, "reason": c.reason}

    return (
        [row(c) for c in failed[-MAX_LISTED:]],
        len(failed),
        [row(c) for c in invalid[-MAX_LISTED:]],
    )


def search_summary(
    s: Search,
    children: list[Child],
    board: list[LeaderboardEntry],
    fronts: dict[str, list[LeaderboardEntry]],
) -> dict[str, Any]:
    failed, failed_count, not_trained = failures(children)
    spec = s.spec
    in_flight = [c for c in children if c.status is ChildStatus.LEASED]
    return {
        "search": search_row(s, trainer_seconds(children)),
        "settings": {
            "agent": spec.agent,
            "dataset": spec.dataset,
            "space": _space_name(spec.request.space),
            "epochs": spec.training.epochs,
            "early_stopping": spec.early_stopping or "none",
            "seed": spec.request.seed,
        },
        "counts": {
            "sampled": s.counts.sampled,
            "in_flight": s.counts.in_flight,
            "evaluated": s.counts.evaluated,
            "cached": s.counts.cached,
            "failed": s.counts.failed,
            "reissued": s.counts.reissued,
        },
        "progress": dict(sorted(s.progress.items())),
        "leaderboard": [entry_row(i, e) for i, e in enumerate(board, start=1)],
        "pareto": {
            metric: [
                {"id": e.candidate_id, "accuracy": e.accuracy, "cost": _cost(e, metric)}
                for e in front
            ]
            for metric, front in fronts.items()
        },
        "failures": failed,
        "failed_count": failed_count,
        "not_trained": not_trained,
        "in_flight": [
            {"id": c.candidate_id, "architecture": c.architecture, "reissued": c.reissued}
            for c in in_flight[:MAX_LISTED]
        ],
    }


def _space_name(space: cpb.SearchSpace) -> str:
    kind = space.WhichOneof("space")
    return space.name if kind == "name" else (kind or "the agent's default")


def _cost(e: LeaderboardEntry, metric: str) -> int:
    return e.params if metric == "params" else e.flops


def trained_columns(children: Iterable[Child]) -> dict[str, list[Any]]:
    """The trained children as columns (what the charts plot), in candidate order."""
    cols: dict[str, list[Any]] = {
        k: [] for k in ("id", "accuracy", "params", "flops", "seconds", "stopped")
    }
    for c in children:
        if c.status is not ChildStatus.TRAINED or c.result is None:
            continue
        r = c.result
        cols["id"].append(c.candidate_id)
        cols["accuracy"].append(round(r.validation_accuracy, 6))
        cols["params"].append(r.params)
        cols["flops"].append(r.flops)
        cols["seconds"].append(round(r.seconds, 3))
        cols["stopped"].append(1 if r.stopped_early else 0)
    return cols


def child_curve(c: Child) -> dict[str, Any]:
    """A child's learning curve (from its result) and its reported epochs with decisions
    (all a running child has)."""
    curve = c.result.curve if c.result else ()
    return {
        "id": c.candidate_id,
        "status": c.status.value,
        "architecture": c.architecture,
        "validation": [round(e.validation_accuracy, 6) for e in curve],
        "train": [round(e.train_accuracy, 6) for e in curve],
        "reports": [
            {"epoch": r.epoch, "accuracy": round(r.validation_accuracy, 6), "stop": r.stop}
            for r in c.reports
        ],
        "stopped_early": bool(c.result and c.result.stopped_early),
    }


def child_detail(c: Child, svg: str, downloads: dict[str, str]) -> dict[str, Any]:
    r = c.result
    detail: dict[str, Any] = {
        **child_curve(c),
        "reason": c.reason,
        "reward": c.reward,
        "reissued": c.reissued,
        "svg": svg,
        "downloads": downloads,
    }
    if r is not None:
        detail |= {
            "accuracy_text": formats.accuracy(r.validation_accuracy),
            "test_accuracy_text": formats.accuracy(r.test_accuracy),
            "params_text": formats.count(r.params),
            "mflops_text": formats.mflops(r.flops),
            "seconds_text": formats.seconds(r.seconds),
            "device": r.device,
            "weights_id": r.weights_id,
        }
    return detail
