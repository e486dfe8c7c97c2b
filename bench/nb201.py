"""NAS-Bench-201's search protocol (Dong & Yang, ICLR 2020) replayed over its CIFAR-10 table:
nasrl's agents (and Optuna TPE) against the paper's Table 5, and best-so-far curves.

    .venv/bin/python bench/nb201.py [--source CSV] [--runs 500]
        [--budget-seconds 12000,20000] [--agents ...] [--curve-runs 200]
        [--curve-evaluations 1000] [--workers 2] [--out DIR]

The table is the NAS-Bench-201 CSV (every one of the 15,625 cells: 12-epoch validation
accuracy, 200-epoch test accuracy, estimated 12-epoch training seconds); ``--source``, else
$NASRL_NB201_CSV, else the shared copy beside the repository.

Protocol. Each run drives an agent as the controller does (``agent.sample(1)``, then
``agent.update(decisions, reward)``) and answers every proposal from the table: the reward is
the 12-epoch validation accuracy as a fraction (cubed for an agent whose default reward is
"zoph": nasrl's reinforce), and the evaluation costs the cell's estimated 12-epoch training
seconds. A run stops at the first proposal whose cost would take the total past the budget
(that proposal is neither counted nor learnt from), as NAS-Bench-201's REA and random search
scripts do. Its score is the 200-epoch test accuracy of the cell with the best reward found
(ties: the first found).

Arms. ``*-paper`` arms pay for every proposal, as NAS-Bench-201's scripts do (no dedup):
``random-paper`` (RandomAgent), ``rea-paper`` (EvolutionAgent, population 10, sample 3),
``reinforce-paper`` (ReinforceAgent with ``independent`` softmaxes per edge, Adam 0.01, baseline
decay 0.9, batch 1, reward = validation accuracy). The other arms run as the controller runs
them, with its defaults and its dedup: a cell isomorphic to one evaluated before in the run
(same ``arch_hash``) is answered with the stored result for free, is not an evaluation, and
the agent learns from it. ``tpe`` is Optuna's TPESampler over the six edges (seeded), with the
same dedup. qlearning's epsilon schedule is fitted to budget / mean seconds per cell
evaluations (110 at 12,000 s, 183 at 20,000 s; 1,000 for the curves). A dedup run that makes
``STALL`` proposals in a row without a new cell is stopped as stalled (reported).

Curves: the best-so-far validation accuracy after 10/50/100/200/500/1,000 evaluations (an
evaluation budget, not seconds) over the first ``--curve-runs`` seeds, with 95 % intervals,
and random search's exact expectation (order statistics over the table, draws with
replacement), which ``random-paper`` must match. Writes OUT/nb201_protocol.json and
OUT/nb201_curves.png (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gzip
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.nb201_priors import CellPriors  # noqa: E402
from bench.report import draw_band, mean_std  # noqa: E402
from controller_service.spec_parts import Convergence  # noqa: E402
from nasrl.core.presets import PRESETS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_SOURCE = ROOT.parent / "shared" / "nb201" / "nb201_cifar10.csv.gz"
CHECKPOINTS = (10, 50, 100, 200, 500, 1000)
STALL = 500  # consecutive proposals without a new cell: a stalled dedup run
#: arms whose runs of 1,000 evaluations take 4-13 s each (Optuna TPE's ask grows with the
#: trials; qlearning replays 100 trajectories per result, cached ones too; reinforce's LSTM
#: samples every proposal, and converged runs re-propose known cells): fewer curves
SLOW = ("tpe", "qlearning", "reinforce")
#: NAS-Bench-201's Table 5, CIFAR-10 test accuracy (%) at 12,000 s, 500 runs: mean, std
PAPER = {
    "REA": (93.92, 0.30),
    "REINFORCE": (93.85, 0.37),
    "random": (93.70, 0.36),
    "BOHB": (93.61, 0.52),
}
PAPER_RUNS = 500
TOP = Convergence().top  # the convergence rule's default: mutations of the 5 best
PAPER_BUDGET = 12000.0
PAPER_OPTIMUM = 94.37


@dataclass(frozen=True)
class Arm:
    agent: str  # a nasrl agent or "tpe"
    settings: dict[str, Any] = field(default_factory=dict)
    dedup: bool = True
    reward: str = ""  # "accuracy" or "zoph"; "" = the agent's default
    paper: str | None = None  # the Table 5 row it is compared with
    budget_dependent: bool = False  # the agent's schedule is fitted to the budget
    about: str = ""
    screen: int = 0  # predictor screening: proposals per child (0: none); bench/nb201_priors
    explore: bool = False  # the controller's convergence rule (explore)
    mutate: int = 0  # its draws: mutations of the best ``mutate`` cells (0: uniform draws)


ARMS: dict[str, Arm] = {
    "random-paper": Arm(
        "random", dedup=False, reward="accuracy", paper="random", about="pays every proposal"
    ),
    "rea-paper": Arm(
        "evolution",
        {"population": 10, "sample_size": 3},
        dedup=False,
        reward="accuracy",
        paper="REA",
        about="population 10, sample 3, pays every proposal",
    ),
    "reinforce-paper": Arm(
        "reinforce",
        {"independent": True, "learning_rate": 0.01, "baseline_decay": 0.9, "batch": 1},
        dedup=False,
        reward="accuracy",
        paper="REINFORCE",
        about="a softmax per edge, Adam 0.01, baseline decay 0.9, batch 1, reward = accuracy, "
        "pays every proposal",
    ),
    "random": Arm("random", paper="random", about="defaults, dedup"),
    "evolution": Arm("evolution", paper="REA", about="defaults (population 20, sample 5), dedup"),
    "reinforce": Arm(
        "reinforce",
        paper="REINFORCE",
        about="defaults (LSTM, Adam 6e-4, batch 8, baseline decay 0.95, reward = accuracy^3), "
        "dedup",
    ),
    "qlearning": Arm(
        "qlearning",
        budget_dependent=True,
        about="defaults (epsilon schedule fitted to the budget), dedup",
    ),
    "tpe": Arm("tpe", paper="BOHB", about="Optuna TPESampler over the 6 edges, dedup"),
    "reinforce-efficient": Arm(
        "reinforce",
        PRESETS["reinforce"]["efficient"],
        paper="REINFORCE",
        about="preset efficient (a softmax per edge, standardized advantages, elite 10), dedup",
    ),
    "qlearning-efficient": Arm(
        "qlearning",
        PRESETS["qlearning"]["efficient"],
        budget_dependent=True,
        about="preset efficient (alpha 0.1, a fifth of the budget at epsilon 1), dedup",
    ),
    "reinforce-efficient+predictor+explore": Arm(
        "reinforce",
        PRESETS["reinforce"]["efficient"],
        paper="REINFORCE",
        about="preset efficient with the controller's predictor screening (4 proposals per "
        "child, defaults) and convergence rule (explore by uniform draws), dedup",
        screen=4,
        explore=True,
    ),
    "reinforce-efficient+predictor+mutate": Arm(
        "reinforce",
        PRESETS["reinforce"]["efficient"],
        paper="REINFORCE",
        about="preset efficient with the controller's defaults for predictor screening (4 "
        "proposals per child) and the convergence rule (explore by mutating one of the 5 best "
        "cells after 100 known proposals), dedup",
        screen=4,
        explore=True,
        mutate=TOP,
    ),
    "qlearning-efficient+predictor+explore": Arm(
        "qlearning",
        PRESETS["qlearning"]["efficient"],
        budget_dependent=True,
        about="preset efficient with the controller's predictor screening (4 proposals per "
        "child, defaults) and convergence rule (explore by uniform draws), dedup",
        screen=4,
        explore=True,
    ),
    "evolution+predictor": Arm(
        "evolution",
        paper="REA",
        about="defaults with the controller's predictor screening (4 per child), dedup",
        screen=4,
    ),
}
#: the RL arms with the controller's priors, also with 10 model-based policy steps on the
#: predictor's rewards after each refit (reinforce's ``model_steps``)
for _name in ("reinforce-efficient+predictor+explore", "reinforce-efficient+predictor+mutate"):
    _arm = ARMS[_name]
    ARMS[_name + "+model"] = replace(
        _arm,
        settings={**_arm.settings, "model_steps": 10},
        about=f"as {_name}, with 10 model-based policy steps on the predictor's rewards after "
        "each refit",
    )


# ------------------------------------------------------------------------------ the table


def default_source() -> Path:
    env = os.environ.get("NASRL_NB201_CSV")
    return Path(env) if env else DEFAULT_SOURCE


class Table:
    """The CSV as the replay needs it: per row (NAS-Bench-201 index order) the path of its
    6 edge operations, validation (12 epochs, %), test (200 epochs, %), seconds (12 epochs)
    and the ``arch_hash`` of its cell (isomorphic cells share it)."""

    def __init__(self, path: Path) -> None:
        from controller_service.spaces.nb201 import Nb201Space
        from nasrl.core.arch import arch_hash
        from nasrl.core.cell_text import parse_cell

        self.path = path
        self.space = Nb201Space()
        self.cells: list[str] = []
        self.valid: list[float] = []
        self.test: list[float] = []
        self.seconds: list[float] = []
        self.hashes: list[str] = []
        self.row: dict[tuple[str, ...], int] = {}
        with gzip.open(path, "rt", newline="") as f:
            for r in csv.DictReader(f):
                cell = parse_cell(r["cell"])[0]
                ops = tuple(op.value for op in cell.ops)
                self.row[ops] = len(self.cells)
                self.cells.append(r["cell"])
                self.valid.append(float(r["cifar10_valid_12ep"]))
                self.test.append(float(r["cifar10_test_200ep"]))
                self.seconds.append(float(r["train_seconds_12ep_estimate"]))
                self.hashes.append(arch_hash(self.space.decode(list(ops))))
        self.mean_seconds = statistics.fmean(self.seconds)

    def index(self, path: Sequence[str]) -> int:
        return self.row[tuple(path)]

    def stats(self) -> dict[str, Any]:
        best = max(range(len(self.valid)), key=lambda i: self.valid[i])
        return {
            "cells": len(self.cells),
            "isomorphism_classes": len(set(self.hashes)),
            "validation_optimum": self.valid[best],
            "test_of_validation_optimum": self.test[best],
            "test_optimum": max(self.test),
            "mean_seconds": self.mean_seconds,
            "seconds": {"min": min(self.seconds), "max": max(self.seconds)},
        }


def expected_best_of_random(values: Sequence[float], n: int) -> float:
    """E[max of ``n`` draws with replacement, uniform over ``values``]: with the values sorted,
    v_(i) is the maximum with probability (i/N)^n - ((i-1)/N)^n."""
    vals = sorted(values)
    count = len(vals)
    total, below = 0.0, 0.0
    for i, v in enumerate(vals, start=1):
        p = (i / count) ** n
        total += v * (p - below)
        below = p
    return total


_TABLES: dict[str, Table] = {}


def _table(path: str) -> Table:
    if path not in _TABLES:
        _TABLES[path] = Table(Path(path))
    return _TABLES[path]


# -------------------------------------------------------------------------- the replay


class TpeAgent:
    """Optuna's TPESampler behind the agent interface: ``sample(1)`` asks a trial (one
    categorical choice per edge), ``update`` tells it."""

    def __init__(self, space: Any, seed: int) -> None:
        import optuna

        from nasrl.core.cell import EDGES

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space, self.edges = space, [f"{i}<-{j}" for j, i in EDGES]
        self.study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )

    def sample(self, n: int) -> list[Any]:
        from controller_service.agents.base import Proposal

        out = []
        for _ in range(n):
            trial = self.study.ask()
            path = [str(trial.suggest_categorical(e, list(self.space.ops))) for e in self.edges]
            out.append(Proposal(self.space.decode(path), {"path": path, "trial": trial.number}))
        return out

    def update(self, decisions: dict[str, Any], reward: float | None) -> None:
        self.study.tell(decisions["trial"], reward)


@dataclass(frozen=True)
class Job:
    arm: str
    seed: int
    budget_seconds: float | None  # stop before the proposal that would pass it
    evaluations: int | None  # and not before this many evaluations (the curve runs)
    agent_budget: int  # the budget an agent's schedule is fitted to (qlearning)
    budgets: tuple[float, ...]  # the budgets scored from this run's prefix
    tag: str  # "shared", "budget <B>" or "curve"


def replay(table: Table, job: Job) -> dict[str, Any]:
    """One run; returns per budget its score and evaluations, and the best-so-far curve."""
    import torch

    from controller_service.agents import agent_class

    torch.set_num_threads(1)
    began = time.process_time()
    arm = ARMS[job.arm]
    agent: Any
    if arm.agent == "tpe":
        agent, reward_kind = TpeAgent(table.space, job.seed), "accuracy"
    else:
        cls = agent_class(arm.agent)
        agent = cls(table.space, arm.settings, job.seed, job.agent_budget)
        reward_kind = arm.reward or cls.default_reward
    argmax = arm.agent == "reinforce" and bool(arm.settings.get("independent"))
    known: dict[str, float] = {}  # arch_hash -> validation of its first evaluation
    seconds: list[float] = []  # cumulative, per evaluation
    best: list[float] = []  # best-so-far validation, per evaluation
    test: list[float] = []  # 200-epoch test of that best cell
    proposals_at: list[int] = []  # proposals made up to each evaluation
    argmax_test: list[float] = []  # reinforce-paper: test of the policy's argmax cell
    spent, proposals, streak, stalled = 0.0, 0, 0, False
    priors = CellPriors(table, job.seed, arm.screen, arm.explore, arm.mutate)
    queue: list[Any] = []
    while True:
        if job.budget_seconds is None and job.evaluations is not None:
            if len(best) >= job.evaluations:
                break
        if streak >= STALL:
            stalled = True
            break
        if arm.screen or arm.explore:
            queue = queue or priors.group(agent, set(known))
            proposal = queue.pop(0)
        else:
            (proposal,) = agent.sample(1)
        i = table.index(proposal.decisions["path"])
        key = table.hashes[i]
        proposals += 1
        if arm.dedup and key in known:
            validation = known[key]
            streak += 1
        else:
            cost = table.seconds[i]
            over = job.budget_seconds is not None and spent + cost > job.budget_seconds
            enough = job.evaluations is None or len(best) >= job.evaluations
            if over and enough:
                break
            validation = table.valid[i]
            known.setdefault(key, validation)
            spent += cost
            streak = 0
            seconds.append(spent)
            if not best or validation > best[-1]:
                best.append(validation)
                test.append(table.test[i])
            else:
                best.append(best[-1])
                test.append(test[-1])
            proposals_at.append(proposals)
        fraction = validation / 100
        reward = fraction**3 if reward_kind == "zoph" else fraction
        if streak == 0 and (arm.screen or arm.explore):
            priors.learnt(i, reward)  # a new result: the predictor's data
        agent.update(proposal.decisions, reward)
        if argmax and len(argmax_test) < len(best):
            logits = agent.policy.logits.detach()
            path = [table.space.ops[k] for k in logits.argmax(dim=1).tolist()]
            argmax_test.append(table.test[table.index(path)])
    out: dict[str, Any] = {
        "arm": job.arm,
        "seed": job.seed,
        "tag": job.tag,
        "stalled": stalled,
        "evaluations": len(best),
        "proposals": proposals,
        "cpu_seconds": time.process_time() - began,
    }
    out["budgets"] = {}
    for b in job.budgets:
        k = bisect.bisect_right(seconds, b)
        out["budgets"][str(int(b))] = {
            "score": test[k - 1] if k else None,
            "validation": best[k - 1] if k else None,
            "evaluations": k,
            "cached": (proposals_at[k - 1] - k) if k else 0,
            # it stalled before the budget was spent
            "stalled": stalled and k == len(best),
            "argmax_score": argmax_test[k - 1] if argmax and k else None,
        }
    if job.evaluations is not None:
        curve = best[: job.evaluations]
        out["curve"] = curve + [curve[-1]] * (job.evaluations - len(curve)) if curve else []
    return out


def _one(job: Job, source: str) -> dict[str, Any]:
    return replay(_table(source), job)


def _one_packed(args: tuple[Job, str]) -> dict[str, Any]:
    return _one(*args)


def make_jobs(
    arms: list[str],
    runs: int,
    budgets: list[float],
    curve_runs: int,
    curve_evaluations: int,
    mean_seconds: float,
    slow_curve_runs: int | None = None,
) -> list[Job]:
    """A budget-independent arm runs once per seed to the largest budget (and, for its first
    curve seeds, to ``curve_evaluations`` evaluations too); each budget's result is the
    run's prefix that fits it (the stopping rule makes a smaller budget's run exactly that
    prefix). An arm whose schedule depends on the budget runs once per budget and once more
    for the curves. The ``SLOW`` arms draw ``slow_curve_runs`` curves. The longest jobs
    come first, so that the workers finish together."""
    top = max(budgets) if budgets else None
    jobs: list[Job] = []
    for a in arms:
        curves = curve_runs
        if a in SLOW and slow_curve_runs is not None:
            curves = min(curve_runs, slow_curve_runs)
        for seed in range(max(runs, curves)):
            if not ARMS[a].budget_dependent:
                jobs.append(
                    Job(
                        a,
                        seed,
                        top if seed < runs else None,
                        curve_evaluations if seed < curves else None,
                        round((top or 0) / mean_seconds) or curve_evaluations,
                        tuple(budgets) if seed < runs else (),
                        "shared",
                    )
                )
                continue
            if seed < runs:
                jobs += [
                    Job(a, seed, b, None, round(b / mean_seconds), (b,), f"budget {int(b)}")
                    for b in budgets
                ]
            if seed < curves:
                jobs.append(Job(a, seed, None, curve_evaluations, curve_evaluations, (), "curve"))

    def cost(job: Job) -> float:
        evaluations = job.evaluations or job.agent_budget
        return evaluations * (10.0 if job.arm in SLOW else 1.0)

    return sorted(jobs, key=cost, reverse=True)


# ----------------------------------------------------------------------------- reporting


def paper_comparison(score: dict[str, Any], paper: tuple[float, float]) -> dict[str, Any]:
    """Two readings of "within the paper's interval": the mean difference within the paper's
    std, and a 95 % interval on the difference of the two means (Welch, normal quantile,
    the paper's 500 runs) that contains 0."""
    mean, std = paper
    diff = score["mean"] - mean
    half = 1.96 * math.sqrt(score["std"] ** 2 / score["n"] + std**2 / PAPER_RUNS)
    return {
        "paper_mean": mean,
        "paper_std": std,
        "difference": diff,
        "difference_ci95": [diff - half, diff + half],
        "within_paper_std": abs(diff) <= std,
        "difference_ci_contains_zero": diff - half <= 0 <= diff + half,
    }


def summarize_budgets(
    runs: list[dict[str, Any]], arms: list[str], budgets: list[float], optimum: float
) -> dict[str, Any]:
    """Per arm and budget: the score, the best validation accuracy, evaluations, cache hits,
    stalled runs, runs that found the table's validation optimum, and the paper's row."""
    out: dict[str, Any] = {}
    for a in arms:
        out[a] = {}
        for b in budgets:
            key = str(int(b))
            rows = [r["budgets"][key] for r in runs if r["arm"] == a and key in r["budgets"]]
            s: dict[str, Any] = {
                "runs": len(rows),
                "score": mean_std([r["score"] for r in rows]),
                "validation": mean_std([r["validation"] for r in rows]),
                "evaluations": mean_std([float(r["evaluations"]) for r in rows]),
                "cached": mean_std([float(r["cached"]) for r in rows]),
                "stalled": sum(r["stalled"] for r in rows),
                "found_optimum": sum(r["validation"] == optimum for r in rows),
            }
            if rows and rows[0]["argmax_score"] is not None:
                s["argmax_score"] = mean_std([r["argmax_score"] for r in rows])
            paper = ARMS[a].paper
            if paper and b == PAPER_BUDGET and s["score"]["n"] > 1:
                s["paper"] = {"row": paper, **paper_comparison(s["score"], PAPER[paper])}
                if "argmax_score" in s:
                    s["paper_argmax"] = paper_comparison(s["argmax_score"], PAPER[paper])
            out[a][key] = s
    return out


def summarize_curves(
    runs: list[dict[str, Any]], arms: list[str], evaluations: int, exact: dict[int, float]
) -> dict[str, Any]:
    checkpoints = sorted({c for c in CHECKPOINTS if c <= evaluations} | {evaluations})
    out: dict[str, Any] = {"checkpoints": checkpoints, "arms": {}}
    for a in arms:
        curves = [r["curve"] for r in runs if r["arm"] == a and r.get("curve")]
        if not curves:
            continue
        mean: list[float | None] = []
        low: list[float | None] = []
        high: list[float | None] = []
        for n in range(evaluations):
            s = mean_std([c[n] for c in curves])
            m, ci = s["mean"], s["ci95"]
            mean.append(m)
            low.append(None if m is None or ci is None else m - ci)
            high.append(None if m is None or ci is None else m + ci)
        at = {str(n): mean_std([c[n - 1] for c in curves]) for n in checkpoints}
        stalled = [
            r["evaluations"] for r in runs if r["arm"] == a and r.get("curve") and r["stalled"]
        ]
        out["arms"][a] = {
            "runs": len(curves),
            "stalled": len(stalled),
            # a stalled run keeps its last best-so-far from here on
            "stalled_after": mean_std([float(n) for n in stalled]),
            "at": at,
            "mean": mean,
            "low": low,
            "high": high,
        }
    out["exact_random"] = {str(n): exact[n] for n in checkpoints}
    # the exact expectation is for draws with replacement: random-paper's; nasrl's random
    # (dedup: distinct isomorphism classes) lies above it, shown for comparison
    for a in ("random-paper", "random"):
        if a in out["arms"]:
            at = out["arms"][a]["at"]
            out["arms"][a]["vs_exact"] = {
                str(n): {
                    "difference": at[str(n)]["mean"] - exact[n],
                    "ci95": at[str(n)]["ci95"],
                    "within": abs(at[str(n)]["mean"] - exact[n]) <= at[str(n)]["ci95"],
                }
                for n in checkpoints
            }
    return out


def fmt2(s: dict[str, Any], spread: str = "std") -> str:
    return "-" if s["mean"] is None else f"{s['mean']:.2f} ± {s[spread]:.2f}"


def print_report(report: dict[str, Any]) -> None:
    t = report["table"]
    print(
        f"NAS-Bench-201 CIFAR-10: {t['cells']:,} cells ({t['isomorphism_classes']:,} "
        f"isomorphism classes); validation optimum {t['validation_optimum']:.2f} % (its test "
        f"{t['test_of_validation_optimum']:.2f} %), test optimum {t['test_optimum']:.2f} %; "
        f"mean {t['mean_seconds']:.1f} s per evaluation"
    )
    budgets = report["budgets"]
    head = (
        f"{'arm':16s} {'budget':>7s} {'test % (mean ± std)':>20s} {'paper (Table 5)':>24s} "
        f"{'diff [95 % CI]':>22s} {'within std':>10s} {'evals':>7s} {'cached':>7s} {'stalled':>7s}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for a, per in report["results"].items():
        for b in budgets:
            s = per[str(int(b))]
            p = s.get("paper")
            ref = f"{p['row']} {p['paper_mean']:.2f} ± {p['paper_std']:.2f}" if p else "-"
            diff = (
                f"{p['difference']:+.2f} [{p['difference_ci95'][0]:+.2f}, "
                f"{p['difference_ci95'][1]:+.2f}]"
                if p
                else "-"
            )
            within = ("yes" if p["within_paper_std"] else "no") if p else "-"
            print(
                f"{a:16s} {int(b):>7d} {fmt2(s['score']):>20s} {ref:>24s} {diff:>22s} "
                f"{within:>10s} {s['evaluations']['mean']:7.1f} {s['cached']['mean']:7.1f} "
                f"{s['stalled']:>7d}"
            )
            if "argmax_score" in s:
                pa = s.get("paper_argmax")
                d = (
                    f"{pa['difference']:+.2f} [{pa['difference_ci95'][0]:+.2f}, "
                    f"{pa['difference_ci95'][1]:+.2f}]"
                    if pa
                    else "-"
                )
                w = ("yes" if pa["within_paper_std"] else "no") if pa else "-"
                print(
                    f"{'  policy argmax':16s} {int(b):>7d} {fmt2(s['argmax_score']):>20s} "
                    f"{ref:>24s} {d:>22s} {w:>10s}"
                )
    c = report["curves"]
    if not c["arms"]:
        return
    cps = c["checkpoints"]
    print(
        "\nbest-so-far 12-epoch validation accuracy (%) after n evaluations, mean ± 95 % CI "
        "(a stalled run keeps its last value)"
    )
    head = (
        f"{'arm':16s} {'runs':>5s} "
        + " ".join(f"{'n=' + str(n):>14s}" for n in cps)
        + f" {'stalled':>7s} {'after':>6s}"
    )
    print(head + "\n" + "-" * len(head))
    exact = " ".join(f"{c['exact_random'][str(n)]:14.2f}" for n in cps)
    print(f"{'random, exact':16s} {'':>5s} {exact}")
    for a, s in c["arms"].items():
        cells = " ".join(f"{fmt2(s['at'][str(n)], 'ci95'):>14s}" for n in cps)
        after = s["stalled_after"]["mean"]
        print(
            f"{a:16s} {s['runs']:5d} {cells} {s['stalled']:>7d} "
            f"{'-' if after is None else f'{after:.0f}':>6s}"
        )
    for a in ("random-paper", "random"):
        v = c["arms"].get(a, {}).get("vs_exact")
        if v:
            outside = [n for n, x in v.items() if not x["within"]]
            print(
                f"{a}: "
                + (
                    "within its 95 % CI of the exact expectation at every checkpoint"
                    if not outside
                    else f"outside its 95 % CI of the exact expectation at n = {', '.join(outside)}"
                )
                + ("" if a == "random-paper" else " (dedup: not expected to match)")
            )


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 5.2), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    c = report["curves"]
    exact = report["exact_random_curve"]
    for a, s in c["arms"].items():
        xs = list(range(1, len(s["mean"]) + 1))
        draw_band(left, xs, s["mean"], s["low"], s["high"], a)
    if exact:
        left.plot(
            [int(n) for n in exact],
            list(exact.values()),
            color="black",
            linestyle="--",
            linewidth=1,
            label="random, exact expectation",
        )
    left.axhline(
        report["table"]["validation_optimum"],
        color="grey",
        linestyle=":",
        linewidth=1,
        label="table optimum",
    )
    left.set_xscale("log")
    left.set_xlim(5, max(5, len(next(iter(c["arms"].values()))["mean"])) if c["arms"] else None)
    left.set_ylim(78, report["table"]["validation_optimum"] + 0.3)
    runs = sorted({s["runs"] for s in c["arms"].values()}, reverse=True)
    left.set_title(
        "best-so-far 12-epoch validation accuracy, "
        f"{' / '.join(map(str, runs))} runs, mean ± 95 % CI"
    )
    left.set_xlabel("evaluations")
    left.set_ylabel("validation accuracy (%)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")

    arms = list(report["results"])
    budgets = report["budgets"]
    slots = len(budgets) + 1  # each budget's score, then the paper's row

    def offset(k: int) -> float:
        return (k - (slots - 1) / 2) * 0.8 / slots

    for k, b in enumerate(budgets):
        ys = [report["results"][a][str(int(b))]["score"] for a in arms]
        where = [i + offset(k) for i in range(len(arms))]
        right.errorbar(
            where,
            [y["mean"] if y["mean"] is not None else math.nan for y in ys],
            yerr=[y["std"] if y["std"] is not None else 0.0 for y in ys],
            fmt="o",
            capsize=3,
            label=f"{int(b):,} s",
        )
    labelled = False
    for i, a in enumerate(arms):
        row = ARMS[a].paper if a in ARMS else None
        if row is None:
            continue
        m, sd = PAPER[row]
        right.errorbar(
            [i + offset(len(budgets))],
            [m],
            yerr=[sd],
            fmt="D",
            color="black",
            markersize=4,
            capsize=3,
            alpha=0.6,
            label=None if labelled else "paper's Table 5 (12,000 s)",
        )
        right.annotate(
            row,
            (i + offset(len(budgets)), m - sd),
            fontsize=6,
            ha="center",
            va="top",
            alpha=0.7,
        )
        labelled = True
    right.axhline(PAPER_OPTIMUM, color="grey", linestyle=":", linewidth=1, label="optimum")
    right.set_xticks(range(len(arms)), arms, rotation=35, ha="right", fontsize=8)
    right.set_ylabel("200-epoch test accuracy of the best cell found (%)")
    right.set_title(f"protocol score, {report['runs']} runs, mean ± std")
    right.grid(alpha=0.3, axis="y")
    right.legend(fontsize=8, loc="lower left")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--source", type=Path, help="the NAS-Bench-201 CSV (default: $NASRL_NB201_CSV, else shared)"
    )
    p.add_argument("--runs", type=int, default=500, help="runs per arm and budget (seeds 0..)")
    p.add_argument("--budget-seconds", default="12000,20000")
    p.add_argument("--agents", default=",".join(ARMS), help="comma-separated arms")
    p.add_argument("--curve-runs", type=int, default=200, help="runs per arm for the curves")
    p.add_argument(
        "--slow-curve-runs",
        type=int,
        default=40,
        help=f"curve runs of the slow arms ({', '.join(SLOW)}), at most --curve-runs",
    )
    p.add_argument("--curve-evaluations", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--replot", action="store_true", help="only redraw OUT/nb201_curves.png from its JSON"
    )
    args = p.parse_args(argv)
    if args.replot:
        saved: dict[str, Any] = json.loads((args.out / "nb201_protocol.json").read_text())
        plot(saved, args.out / "nb201_curves.png")
        return saved
    source = args.source or default_source()
    if not source.is_file():
        print(
            f"The NAS-Bench-201 CSV is not at {source}: pass --source FILE or set "
            "NASRL_NB201_CSV to nb201_cifar10.csv.gz.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    arms = [a for a in args.agents.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    budgets = sorted(float(b) for b in args.budget_seconds.split(","))
    began = time.perf_counter()
    table = _table(str(source))  # loaded before the workers fork
    jobs = make_jobs(
        arms,
        args.runs,
        budgets,
        args.curve_runs,
        args.curve_evaluations,
        table.mean_seconds,
        args.slow_curve_runs,
    )
    packed = [(j, str(source)) for j in jobs]
    if args.workers <= 1:
        runs = [_one_packed(x) for x in packed]
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            runs = list(pool.map(_one_packed, packed))
    replay_seconds = time.perf_counter() - began
    checkpoints = sorted({c for c in CHECKPOINTS if c <= args.curve_evaluations})
    checkpoints = sorted(set(checkpoints) | {args.curve_evaluations})
    exact = {n: expected_best_of_random(table.valid, n) for n in checkpoints}
    grid = sorted(
        {round(10 ** (k / 20)) for k in range(0, 1 + int(20 * math.log10(args.curve_evaluations)))}
        | set(checkpoints)
    )
    curve_runs = [r for r in runs if "curve" in r]
    report: dict[str, Any] = {
        "source": source.name,
        "table": table.stats(),
        "runs": args.runs,
        "budgets": budgets,
        "stop_rule": "a run stops at the first proposal whose cost would take the total past "
        "the budget (NAS-Bench-201's REA and random search scripts)",
        "score": "200-epoch test accuracy (%) of the cell with the best 12-epoch validation "
        "accuracy found",
        "paper_test": "difference of means with a 95 % interval (Welch, the paper's 500 runs); "
        "within_paper_std: |difference| <= the paper's std",
        "arms": {a: {**ARMS[a].__dict__} for a in arms},
        "agent_budget": {str(int(b)): round(b / table.mean_seconds) for b in budgets},
        "stall": STALL,
        "results": summarize_budgets(runs, arms, budgets, table.stats()["validation_optimum"])
        if args.runs
        else {},
        "curves": summarize_curves(curve_runs, arms, args.curve_evaluations, exact)
        if args.curve_runs
        else {"arms": {}, "checkpoints": []},
        "exact_random_curve": {str(n): expected_best_of_random(table.valid, n) for n in grid}
        if args.curve_runs
        else {},
        "jobs": len(jobs),
        "cpu_seconds": {
            a: round(sum(r["cpu_seconds"] for r in runs if r["arm"] == a), 1) for a in arms
        },
        "wall_seconds": round(time.perf_counter() - began, 1),
        "replay_seconds": round(replay_seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.workers} worker(s)",
        "command": "python bench/nb201.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nb201_protocol.json").write_text(json.dumps(report, indent=1))
    if args.runs and args.curve_runs:
        plot(report, args.out / "nb201_curves.png")
    print(
        f"\n{len(jobs)} runs in {report['wall_seconds']:.0f} s; wrote "
        f"{args.out / 'nb201_protocol.json'} and nb201_curves.png"
    )
    return report


if __name__ == "__main__":
    main()
