"""Numbers over the seeds of a dataset: best-so-far curves on a common grid of
trainer-seconds, the summary per agent, and random search's final best, the target the
others race to ("seconds to random's best": the cumulative trainer-seconds where a run's
best-so-far first is >= the mean over seeds of random's final best validation accuracy,
within the budget; else "not reached")."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from bench.efficiency.runlog import RunLog
from bench.report import mean_std

__all__ = ["GRID", "best_at", "curves", "summarize", "random_target"]

GRID = 80  # points of the aggregated curves


def best_at(trajectory: Sequence[tuple[float, float, float]], t: float) -> float:
    """Best validation accuracy among children completed by ``t`` trainer-seconds (NaN: none)."""
    value = float("nan")
    for s, v, _ in trajectory:
        if s > t:
            break
        value = v
    return value


def curves(runs: Sequence[RunLog], budget: float) -> dict[str, list[float | None]]:
    """Mean, min and max over seeds of the best-so-far on a grid over [0, budget]; None until
    every seed has a result."""
    grid = [budget * i / (GRID - 1) for i in range(GRID)]
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for t in grid:
        values = [best_at(r.trajectory, t) for r in runs]
        if any(math.isnan(v) for v in values):
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(statistics.fmean(values))
            low.append(min(values))
            high.append(max(values))
    return {"seconds": list(grid), "mean": mean, "min": low, "max": high}


def summarize(runs: Sequence[RunLog], target: float | None) -> dict[str, Any]:
    finals = [r.at_budget() for r in runs]
    reach = [r.seconds_to(target) if target is not None else None for r in runs]
    return {
        "best_validation_accuracy": mean_std([f[0] for f in finals]),
        "test_accuracy_of_best": mean_std([f[1] for f in finals]),
        "seconds_to_find_best": mean_std([f[2] for f in finals if f[2] is not None]),
        "seconds_to_random_best": {
            **mean_std([s for s in reach if s is not None]),
            "reached": sum(s is not None for s in reach),
            "runs": len(runs),
            "per_seed": reach,
        },
        "dedup_saved_seconds": mean_std([r.saved_seconds for r in runs]),
        "cached_hits": mean_std([float(r.cached) for r in runs]),
        "children_trained": mean_std([float(r.trained_within()) for r in runs]),
        "trainer_seconds_spent": mean_std([r.spent for r in runs]),
        "failed": sum(r.failed for r in runs),
        "stalled_runs": sum(r.stalled for r in runs),
    }


def random_target(runs: dict[str, list[RunLog]]) -> float | None:
    """The mean over seeds of random search's final best (None without random runs)."""
    if "random" not in runs:
        return None
    finals = [r.at_budget()[0] for r in runs["random"]]
    finite = [v for v in finals if math.isfinite(v)]
    return statistics.fmean(finite) if finite else None
