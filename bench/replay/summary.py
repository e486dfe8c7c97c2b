"""The statistics of many replayed runs: best-so-far at checkpoints, regret, the cost of
reaching random search's best, curves with 95 % bands, and the table's own noise."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.replay.lookup import Lookup
from bench.report import first_reaching, mean_std

__all__ = [
    "CHECKPOINTS",
    "table_stats",
    "summarize",
    "curves",
    "seconds_grid",
    "stopping_summary",
]

CHECKPOINTS = (50, 100, 200, 500)


def table_stats(lookup: Lookup, path: Path) -> dict[str, Any]:
    """Size, build time and the seed-to-seed noise of a table: for every network of the noise
    subset, the best validation accuracy of seed 0 and seed 1 give the per-network standard
    deviation |a - b| / sqrt(2) (reported as its root mean square) and the Spearman rank
    correlation between the seeds."""
    import statistics

    from scipy.stats import spearmanr

    table = lookup.table
    pairs = [
        (r.best_validation, table.rows[(a, 1)].best_validation)
        for (a, s), r in table.rows.items()
        if s == 0 and (a, 1) in table.rows
    ]
    vals = sorted(v[0] for v in lookup.rows.values())
    out: dict[str, Any] = {
        "architectures": len(lookup.rows),
        "rows": len(table.rows),
        "epochs": table.header["training"]["epochs"],
        "bytes": path.stat().st_size,
        "build_seconds": round(table.build_seconds(), 1),
        "validation": {"min": vals[0], "median": statistics.median(vals), "max": vals[-1]},
        "best_network": max(lookup.rows, key=lambda a: lookup.rows[a][0]),
        "noise_pairs": len(pairs),
    }
    if len(pairs) >= 3:
        diffs = [(a - b) ** 2 / 2 for a, b in pairs]
        rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        out["seed_std"] = math.sqrt(statistics.fmean(diffs))
        out["mean_abs_seed_difference"] = statistics.fmean(abs(a - b) for a, b in pairs)
        out["spearman"] = float(rho.statistic)
        out["spearman_p"] = float(rho.pvalue)
    return out


def summarize(
    runs: list[dict[str, Any]],
    evaluations: int,
    target: float | None,
    optimum: float,
    seconds_per_evaluation: float = 0.0,
) -> dict[str, Any]:
    checkpoints = sorted({c for c in CHECKPOINTS if c <= evaluations} | {evaluations})
    out: dict[str, Any] = {
        "runs": len(runs),
        "stalled": sum(r["stalled"] for r in runs),
        "cached": mean_std([float(r["cached"]) for r in runs]),
        "at": {},
    }
    for n in checkpoints:
        vals = [_at(r, "best", n) for r in runs]
        tests = [_at(r, "test", n) for r in runs]
        out["at"][str(n)] = {"validation": mean_std(vals), "test": mean_std(tests)}
    finals = [r["best"][-1] for r in runs if r["best"]]
    out["final_regret"] = mean_std([optimum - v for v in finals])
    out["found_optimum"] = sum(v >= optimum for v in finals)
    if target is not None:
        evals = [first_reaching(range(1, len(r["best"]) + 1), r["best"], target) for r in runs]
        secs = [first_reaching(r["seconds"], r["best"], target) for r in runs]
        # a warm start's proxy search is part of what reaching the target cost
        secs = [None if s is None else s + r.get("proxy_seconds", 0.0) for s, r in zip(secs, runs)]
        out["proxy_seconds"] = mean_std([r.get("proxy_seconds", 0.0) for r in runs])
        out["to_random_best"] = {
            "reached": sum(e is not None for e in evals),
            "runs": len(runs),
            # runs that never reach it count as the whole budget of evaluations and its
            # expected trainer-seconds (a lower bound; a stalled run too)
            "evaluations": mean_std(
                [float(e) if e is not None else float(evaluations) for e in evals]
            ),
            "trainer_seconds": mean_std(
                [
                    s
                    if s is not None
                    else max(
                        r["seconds"][-1] if r["seconds"] else 0.0,
                        evaluations * seconds_per_evaluation,
                    )
                    + r.get("proxy_seconds", 0.0)
                    for s, r in zip(secs, runs)
                ]
            ),
        }
    return out


def _at(run: dict[str, Any], key: str, n: int) -> float | None:
    """The run's value after ``n`` evaluations; a stalled run keeps its last value (it found
    nothing new), an unfinished one has none."""
    values = run[key]
    if len(values) >= n:
        return float(values[n - 1])
    return float(values[-1]) if run["stalled"] and values else None


def curves(runs: list[dict[str, Any]], evaluations: int) -> dict[str, list[float | None]]:
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for n in range(1, evaluations + 1):
        s = mean_std([_at(r, "best", n) for r in runs])
        m, ci = s["mean"], s["ci95"]
        if m is None or ci is None:
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(m)
            low.append(m - ci)
            high.append(m + ci)
    return {"mean": mean, "low": low, "high": high}


def seconds_grid(runs: list[dict[str, Any]], budget: float, points: int = 100) -> dict[str, Any]:
    """Mean best-so-far (± 95 % CI) over runs on a grid of trainer-seconds."""
    xs = [budget * (i + 1) / points for i in range(points)]
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for x in xs:
        values = []
        for r in runs:
            k = sum(1 for t in r["seconds"] if t <= x)
            values.append(r["best"][k - 1] if k else None)
        st = mean_std(values)
        m, ci = st["mean"], st["ci95"]
        if m is None or ci is None or st["n"] != len(runs):
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(m)
            low.append(m - ci)
            high.append(m + ci)
    return {"seconds": xs, "mean": mean, "low": low, "high": high}


def stopping_summary(
    runs: list[dict[str, Any]], budget: float, target: float | None
) -> dict[str, Any]:
    def best_at(r: dict[str, Any]) -> float | None:
        k = sum(1 for t in r["seconds"] if t <= budget)
        return r["best"][k - 1] if k else None

    out: dict[str, Any] = {
        "runs": len(runs),
        "best_at_budget": mean_std([best_at(r) for r in runs]),
        "children": mean_std([float(len(r["best"])) for r in runs]),
        "stopped": mean_std([float(r["stopped"]) for r in runs]),
    }
    if target is not None:
        secs = [first_reaching(r["seconds"], r["best"], target) for r in runs]
        out["to_target"] = {
            "reached": sum(x is not None for x in secs),
            "runs": len(runs),
            "trainer_seconds": mean_std([x if x is not None else budget for x in secs]),
        }
    return out
