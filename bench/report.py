"""Reporting shared by the search-efficiency benchmarks (real training and tabular): summary
statistics with confidence intervals, "time to reach a target" and best-so-far curves drawn as
a line with a shaded band."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["mean_std", "fmt", "draw_band", "first_reaching", "T95"]

# two-sided 95 % Student-t quantiles by degrees of freedom (n - 1); 1.96 beyond the table
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    15: 2.131,
    20: 2.086,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def _t95(df: int) -> float:
    if df in T95:
        return T95[df]
    lower = [k for k in T95 if k <= df]
    return T95[max(lower)] if lower and df < 120 else 1.96


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean, standard deviation, the half-width of the 95 % confidence interval of the mean
    (Student t), min, max and n of the finite values (all None when there are none)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "ci95": None, "min": None, "max": None, "n": 0}
    std = statistics.stdev(vals) if len(vals) > 1 else 0.0
    ci = _t95(len(vals) - 1) * std / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
    return {
        "mean": statistics.fmean(vals),
        "std": std,
        "ci95": ci,
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def fmt(stat: dict[str, Any], digits: int = 4, spread: str = "std") -> str:
    """``mean ± std`` (or ``± ci95`` with ``spread="ci95"``); "-" without values."""
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat[spread]:.{digits}f}"


def first_reaching(
    xs: Sequence[float], best_so_far: Sequence[float], target: float
) -> float | None:
    """The first x whose best-so-far is at least ``target`` (None: never)."""
    for x, v in zip(xs, best_so_far):
        if v >= target:
            return x
    return None


def draw_band(
    ax: Any,
    xs: Sequence[float],
    mean: Sequence[float | None],
    low: Sequence[float | None],
    high: Sequence[float | None],
    label: str,
) -> None:
    """A step line of ``mean`` with the band [low, high] shaded in its colour, and a dot at
    the end so that a curve that starts late stays visible."""
    nan = float("nan")
    m = [nan if v is None else v for v in mean]
    lo = [nan if v is None else v for v in low]
    hi = [nan if v is None else v for v in high]
    (line,) = ax.plot(xs, m, drawstyle="steps-post", label=label, linewidth=1.6)
    ax.fill_between(xs, lo, hi, step="post", alpha=0.15, color=line.get_color())
    if m and math.isfinite(m[-1]):
        ax.plot([xs[-1]], [m[-1]], marker="o", markersize=4, color=line.get_color(), clip_on=False)
