"""What ``bench/tabular.py`` prints and draws: the tables of the evaluation and
early-stopping studies and their plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import draw_band, fmt

__all__ = ["print_report", "print_stopping", "plot", "plot_stopping"]


def print_stopping(report: dict[str, Any]) -> None:
    es = report["early_stopping"]
    print(
        f"\nearly stopping at an equal budget of {es['budget_seconds']:.0f} trainer-seconds "
        f"per run (= {report['evaluations']} fully trained children); target: random "
        f"search's mean best without early stopping, {es['target']:.4f}"
    )
    head = (
        f"{'arm':18s} {'best at budget':>17s} {'children':>9s} {'stopped':>8s} "
        f"{'trainer-s to target':>22s} {'reached':>8s} {'vs random':>10s}"
    )
    print(head)
    print("-" * len(head))
    base = es["arms"]["random"]["to_target"]["trainer_seconds"]["mean"]
    for arm, s in es["arms"].items():
        t = s["to_target"]
        ratio = t["trainer_seconds"]["mean"] / base if base else float("nan")
        print(
            f"{arm:18s} {fmt(s['best_at_budget'], 4, 'ci95'):>17s} "
            f"{s['children']['mean']:9.1f} {s['stopped']['mean']:8.1f} "
            f"{fmt(t['trainer_seconds'], 0, 'ci95'):>22s} {t['reached']:>4d}/{t['runs']:<3d} "
            f"{ratio:9.2f}x"
        )


def print_report(report: dict[str, Any]) -> None:
    t = report["table_stats"]
    print(
        f"table {report['table']}: {t['architectures']} networks, {t['rows']} rows, "
        f"{t['epochs']} epochs each, {t['bytes'] / 1e6:.2f} MB, built in "
        f"{t['build_seconds'] / 3600:.2f} h; validation {t['validation']['min']:.3f} .. "
        f"{t['validation']['max']:.3f} (median {t['validation']['median']:.3f})"
    )
    if "seed_std" in t:
        print(
            f"noise over {t['noise_pairs']} networks trained with two seeds: seed-to-seed std "
            f"{t['seed_std']:.4f}, mean |difference| {t['mean_abs_seed_difference']:.4f}, "
            f"Spearman {t['spearman']:.3f}"
        )
    print(
        f"\n{report['table']}: {report['architectures']} networks, optimum "
        f"{report['optimum']:.4f}, {report['seeds']} seeds, {report['evaluations']} "
        f"evaluations per run; random's mean final best {report['random_target']:.4f}"
    )
    for variant, agents in report["variants"].items():
        checkpoints = list(next(iter(agents.values()))["at"])
        head = f"{variant:11s} {'agent':10s} " + " ".join(f"{'val@' + c:>17s}" for c in checkpoints)
        head += f" {'test@' + checkpoints[-1]:>17s} {'evals→random':>16s} {'trainer-s→random':>18s}"
        head += f" {'regret':>17s}"
        print(head)
        print("-" * len(head))
        for agent, s in agents.items():
            cells = " ".join(
                f"{fmt(s['at'][c]['validation'], 4, 'ci95'):>17s}" for c in checkpoints
            )
            reach = s.get("to_random_best")
            ev = (
                f"{fmt(reach['evaluations'], 0, 'ci95')} {reach['reached']}/{reach['runs']}"
                if reach
                else "-"
            )
            ts = fmt(reach["trainer_seconds"], 0, "ci95") if reach else "-"
            print(
                f"{variant:11s} {agent:10s} {cells} "
                f"{fmt(s['at'][checkpoints[-1]]['test'], 4, 'ci95'):>17s} {ev:>16s} "
                f"{ts:>18s} {fmt(s['final_regret'], 4, 'ci95'):>17s}"
            )


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    variants = list(report["curves"])
    fig = Figure(figsize=(6.4 * len(variants), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        lows: list[float] = []
        for agent, c in report["curves"][variant].items():
            xs = list(range(1, len(c["mean"]) + 1))
            draw_band(ax, xs, c["mean"], c["low"], c["high"], agent)
            lows += [v for v in c["mean"][len(xs) // 10 :] if v is not None]
        ax.axhline(
            report["optimum"], color="black", linestyle="--", linewidth=1, label="table optimum"
        )
        ax.axhline(
            report["random_target"],
            color="grey",
            linestyle=":",
            linewidth=1,
            label="random's final best",
        )
        if lows:
            bottom = min(lows)
            ax.set_ylim(bottom - 0.1 * (report["optimum"] - bottom), None)
        ax.set_xscale("log")
        ax.set_title(
            f"{report['table']} ({variant} settings): {report['seeds']} seeds, mean ± 95 % CI"
        )
        ax.set_xlabel("distinct networks evaluated")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


def plot_stopping(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    es = report["early_stopping"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for arm, c in es["curves"].items():
        draw_band(ax, c["seconds"], c["mean"], c["low"], c["high"], arm)
    if es["target"] is not None:
        ax.axhline(
            es["target"],
            color="grey",
            linestyle=":",
            linewidth=1,
            label="random's best (no early stopping)",
        )
    ax.set_title(f"{report['table']}: early stopping, {report['seeds']} seeds, mean ± 95 % CI")
    ax.set_xlabel("trainer-seconds")
    ax.set_ylabel("best validation accuracy so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=110)
