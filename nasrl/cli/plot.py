"""Plot a search's progress: each child's validation accuracy and the best so far.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so plotting changes no
global backend or figure state and works without a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["best_so_far", "plot_search"]


def best_so_far(points: Sequence[tuple[int, float]]) -> list[float]:
    """The running maximum of the accuracies, one value per point."""
    best: list[float] = []
    for _, accuracy in points:
        best.append(max(best[-1], accuracy) if best else accuracy)
    return best


def _check(points: Sequence[tuple[int, float]]) -> None:
    if not points:
        raise ValueError("there is nothing to plot: the search has no evaluated child networks")
    for index, accuracy in points:
        if not math.isfinite(accuracy):
            raise ValueError(
                f"evaluation {index} has accuracy {accuracy}; expected a finite number"
            )


def plot_search(points: Sequence[tuple[int, float]], path: str | Path, title: str) -> None:
    """Write a PNG to ``path`` of (evaluation index, validation accuracy) ``points``, given in
    evaluation order: every child as a dot and the best so far as a step line."""
    _check(points)
    evaluations = [index for index, _ in points]
    figure = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter(
        evaluations,
        [a for _, a in points],
        s=16,
        alpha=0.6,
        color="tab:blue",
        label="child network",
    )
    axes.step(
        evaluations,
        best_so_far(points),
        where="post",
        linewidth=2,
        color="tab:orange",
        label="best so far",
    )
    axes.set_xlabel("evaluation")
    axes.set_ylabel("validation accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.savefig(Path(path), format="png")
