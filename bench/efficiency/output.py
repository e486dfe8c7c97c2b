"""What a benchmark run shows and writes: the table printed per dataset, the settings recorded
in the JSON report, and the plot."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import Any

from bench.efficiency.settings import METAQNN, ZOPH, space_of
from bench.efficiency.trainers import TRAINERS
from bench.report import draw_band, fmt
from nasrl.core.results import TrainSettings

__all__ = ["print_table", "plot", "settings_report"]


def print_table(
    dataset: str, budget: float, target: float | None, summary: dict[str, dict[str, Any]]
) -> None:
    head = (
        f"{'agent':10s} {'space':8s} {'best val acc':>17s} {'its test acc':>17s} "
        f"{'t→random best (s)':>22s} {'dedup saved (s)':>15s} {'cached':>7s} "
        f"{'trained':>8s}"
    )
    print(
        f"\n{dataset}: budget {budget:g} trainer-seconds per run; random's final best "
        f"(mean over seeds) = {f'{target:.4f}' if target is not None else 'n/a'}"
    )
    print(head)
    print("-" * len(head))
    for agent, s in summary.items():
        reach = s["seconds_to_random_best"]
        if target is None:
            reached = "n/a"
        elif reach["reached"] == 0:
            reached = f"not reached 0/{reach['runs']}"
        else:
            reached = f"{fmt(reach, 1)} {reach['reached']}/{reach['runs']}"
        print(
            f"{agent:10s} {space_of(agent):8s} {fmt(s['best_validation_accuracy']):>17s} "
            f"{fmt(s['test_accuracy_of_best']):>17s} {reached:>22s} "
            f"{fmt(s['dedup_saved_seconds'], 1):>15s} {s['cached_hits']['mean']:7.1f} "
            f"{s['children_trained']['mean']:8.1f}"
        )


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per dataset, one curve per agent: the mean best-so-far validation accuracy
    over seeds against trainer-seconds, shaded between the seeds' min and max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = list(report["datasets"])
    fig = Figure(figsize=(6.2 * max(1, len(datasets)), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(datasets)), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        d = report["datasets"][dataset]
        lows: list[float] = []
        for agent, c in d["curves"].items():
            xs = c["seconds"]
            label = f"{agent} ({space_of(agent)})" if agent == "qlearning" else agent
            draw_band(ax, xs, c["mean"], c["min"], c["max"], label)
            lows += [v for v in c["mean"][len(xs) // 4 :] if v is not None]
        if d["random_target"] is not None:
            ax.axhline(
                d["random_target"],
                color="grey",
                linestyle=":",
                linewidth=1,
                label="random's final best",
            )
        if lows:
            bottom = min(lows)
            ax.set_ylim(max(0.0, bottom - 0.15 * (1.0 - bottom)), None)
        ax.set_title(f"{dataset}: {d['seeds']} seeds, {d['epochs']} epoch(s) per child")
        ax.set_xlabel("trainer-seconds")
        ax.set_ylabel("best validation accuracy so far")
        ax.set_xlim(0, d["budget_trainer_seconds"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


def settings_report(
    datasets: list[str],
    agents: list[str],
    skipped: dict[str, str],
    seeds: list[int],
    budgets: dict[str, float],
    quick: bool,
    training: TrainSettings,
) -> dict[str, Any]:
    """The settings of a benchmark run, as the JSON report records them."""
    return {
        "datasets": datasets,
        "agents": agents,
        "skipped": skipped,
        "seeds": seeds,
        "epochs": training.epochs,
        "budgets_trainer_seconds": budgets,
        "quick": quick,
        "workers": TRAINERS,
        "trainer_threads": 1,
        "training": dataclasses.asdict(training),
        "zoph_space": {
            "filter_sizes": ZOPH.filter_sizes,
            "strides": ZOPH.strides,
            "filters": ZOPH.filters,
            "layers": ZOPH.max_layers,
            "skip_connections": ZOPH.skip_connections,
        },
        "metaqnn_space": {
            "conv_sizes": METAQNN.conv_sizes,
            "conv_filters": METAQNN.conv_filters,
            "pools": METAQNN.pools,
            "fc_units": METAQNN.fc_units,
            "max_depth": METAQNN.max_depth,
        },
        "agent_settings": {
            "reinforce": "defaults (depth curriculum capped at 4 layers)",
            "random": {"layers": 4},
            "evolution": {"population": 8, "sample_size": 3, "layers": 4},
            "qlearning": "defaults, schedule_scale fitted to the expected children",
            "tpe": "optuna.samplers.TPESampler(seed=seed), library defaults",
        },
        "definitions": {
            "best_validation_accuracy": "best among children completed within the budget",
            "seconds_to_random_best": "cumulative trainer-seconds at which the run's "
            "best-so-far first reaches the mean over seeds of random's final best",
            "children_trained": "children completed within the budget (the one that "
            "crosses it is trained and kept in the trajectory; others then in flight are "
            "cancelled)",
            "dedup_saved_seconds": "sum of the stored seconds of duplicates answered "
            "without training (nasrl: Sample's cached candidates; tpe: own cache)",
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
