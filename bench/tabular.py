"""Search efficiency on a tabular benchmark: every agent (and Optuna TPE) replayed against a
table built by bench/build_table.py, over many seeds, in minutes.

    .venv/bin/python bench/tabular.py --table bench/tables/zoph_mnist5k.jsonl.gz
        [--agents reinforce,random,evolution,tpe] [--seeds 50] [--evaluations N]
        [--variant paper|budget|both] [--workers 2] [--out DIR]

Each run drives the agent exactly as the controller does (``agent.sample(1)``, then
``agent.update(decisions, reward)`` with the agent's default reward: (max validation accuracy
of the last 5 epochs)^3 for reinforce, validation accuracy for the others), but answers every
proposal from the table instead of training it. As in the controller, a network already
evaluated in the run costs nothing: the agent learns its stored reward and it does not count
as an evaluation. A run ends after ``--evaluations`` distinct networks (default: a quarter of
the table) or after 20 x that many proposals (a stalled agent).

TPE is Optuna's TPESampler (``pip install -e '.[bench]'``) over the same decisions (Zoph
tables only), with the same dedup. Variants: ``paper`` runs every agent with its defaults
(the papers' values); ``budget`` runs settings fitted to budgets of a few hundred children
(reported separately): reinforce with a 20x larger learning rate (0.012) and batch 4, qlearning
with its epsilon schedule scaled to a third of the budget spent at epsilon 1.

Reported per agent: the mean best-so-far validation accuracy (and the test accuracy of that
best network) after 50 / 100 / 200 / 500 evaluations with 95 % confidence intervals; the
evaluations and trainer-seconds (the table's recorded seconds of the networks evaluated) a run
needs to reach random search's mean final best; the final regret against the table's optimum.
Writes OUT/tabular_NAME.json and OUT/tabular_NAME.png (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import draw_band, first_reaching, fmt, mean_std  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHECKPOINTS = (50, 100, 200, 500)
ZOPH_AGENTS = ("reinforce", "random", "evolution", "tpe")
METAQNN_AGENTS = ("qlearning", "random", "evolution")
BUDGET_SETTINGS: dict[str, dict[str, Any]] = {
    "reinforce": {"learning_rate": 0.012, "batch": 4},
    "qlearning": {"schedule_scale": -1.0},  # filled in per run: a third of the budget at 1.0
}


@dataclass
class Run:
    agent: str
    seed: int
    best: list[float] = field(default_factory=list)  # best-so-far validation per evaluation
    test: list[float] = field(default_factory=list)  # test accuracy of that best network
    seconds: list[float] = field(default_factory=list)  # cumulative trainer-seconds
    cached: int = 0
    proposals: int = 0
    stalled: bool = False

    def record(self, validation: float, test: float, seconds: float) -> None:
        if not self.best or validation > self.best[-1]:
            self.best.append(validation)
            self.test.append(test)
        else:
            self.best.append(self.best[-1])
            self.test.append(self.test[-1])
        self.seconds.append((self.seconds[-1] if self.seconds else 0.0) + seconds)

    def at(self, n: int) -> tuple[float, float] | None:
        if len(self.best) < n:
            return None
        return self.best[n - 1], self.test[n - 1]

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "seed": self.seed, "best": self.best, "test": self.test,
                "seconds": self.seconds, "cached": self.cached, "proposals": self.proposals,
                "stalled": self.stalled}


# ------------------------------------------------------------------------ the replay itself


class Lookup:
    """The table as the agents see it: canonical text -> (validation, last5, test, seconds)."""

    def __init__(self, path: Path) -> None:
        from google.protobuf import json_format
        from protos import controller_pb2 as cpb

        from controller_service.codec import space_from_proto
        from nasrl.datasets import input_shape
        from nasrl.table import read_table

        self.table = read_table(path)
        space = space_from_proto(json_format.ParseDict(self.table.space, cpb.SearchSpace()))
        assert space is not None
        self.space = space.bind(input_shape(self.table.dataset))
        self.rows = {a: (r.best_validation, max(r.validation[-5:]), r.test_accuracy, r.seconds)
                     for a, r in self.table.primary().items()}
        self.optimum = max(v[0] for v in self.rows.values())

    def get(self, arch: Any) -> tuple[float, float, float, float]:
        from nasrl.arch import canonical, format_arch

        text = format_arch(canonical(arch))
        try:
            return self.rows[text]
        except KeyError:
            raise KeyError(f"{text} is not in the table") from None


def _agent_settings(agent: str, variant: str, evaluations: int) -> dict[str, Any]:
    if variant != "budget" or agent not in BUDGET_SETTINGS:
        return {}
    settings = dict(BUDGET_SETTINGS[agent])
    if agent == "qlearning":  # the paper spends 1,500 of 2,700 models at epsilon 1
        settings["schedule_scale"] = (evaluations / 3) / 1500
    return settings


def replay_agent(lookup: Lookup, agent_name: str, seed: int, evaluations: int,
                 variant: str = "paper") -> Run:
    """One search by a nasrl agent against the table, with the controller's dedup."""
    import torch

    from controller_service.agents import agent_class
    from nasrl.arch import canonical, format_arch

    torch.set_num_threads(1)
    cls = agent_class(agent_name)
    agent = cls(lookup.space, _agent_settings(agent_name, variant, evaluations), seed,
                evaluations)
    zoph_reward = cls.default_reward == "zoph"
    run, seen = Run(agent_name, seed), set()
    while len(run.best) < evaluations:
        if run.proposals >= 20 * evaluations:
            run.stalled = True
            break
        (proposal,) = agent.sample(1)
        run.proposals += 1
        validation, last5, test, seconds = lookup.get(proposal.arch)
        text = format_arch(canonical(proposal.arch))
        if text in seen:
            run.cached += 1
        else:
            seen.add(text)
            run.record(validation, test, seconds)
        agent.update(proposal.decisions, last5 ** 3 if zoph_reward else validation)
    return run


def replay_tpe(lookup: Lookup, seed: int, evaluations: int) -> Run:
    """Optuna TPE over the Zoph decisions against the table, with the same dedup."""
    import optuna

    from bench.search_efficiency import zoph_trial
    from nasrl.arch import canonical, format_arch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    run, seen = Run("tpe", seed), set()
    while len(run.best) < evaluations:
        if run.proposals >= 20 * evaluations:
            run.stalled = True
            break
        trial = study.ask()
        arch = zoph_trial(trial, lookup.space)
        run.proposals += 1
        validation, _, test, seconds = lookup.get(arch)
        text = format_arch(canonical(arch))
        if text in seen:
            run.cached += 1
        else:
            seen.add(text)
            run.record(validation, test, seconds)
        study.tell(trial, validation)
    return run


def _one(job: tuple[str, str, int, int, str]) -> dict[str, Any]:
    path, agent, seed, evaluations, variant = job
    lookup = _lookup(path)
    if agent == "tpe":
        run = replay_tpe(lookup, seed, evaluations)
    else:
        run = replay_agent(lookup, agent, seed, evaluations, variant)
    return run.to_json()


_LOOKUPS: dict[str, Lookup] = {}


def _lookup(path: str) -> Lookup:
    if path not in _LOOKUPS:
        _LOOKUPS[path] = Lookup(Path(path))
    return _LOOKUPS[path]


# ----------------------------------------------------------------------------- reporting


def table_stats(lookup: Lookup, path: Path) -> dict[str, Any]:
    """Size, build time and the seed-to-seed noise of a table: for every network of the noise
    subset, the best validation accuracy of seed 0 and seed 1 give the per-network standard
    deviation |a - b| / sqrt(2) (reported as its root mean square) and the Spearman rank
    correlation between the seeds."""
    import statistics

    from scipy.stats import spearmanr

    table = lookup.table
    pairs = [(r.best_validation, table.rows[(a, 1)].best_validation)
             for (a, s), r in table.rows.items() if s == 0 and (a, 1) in table.rows]
    vals = sorted(v[0] for v in lookup.rows.values())
    out: dict[str, Any] = {
        "architectures": len(lookup.rows), "rows": len(table.rows),
        "epochs": table.header["training"]["epochs"], "bytes": path.stat().st_size,
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


def summarize(runs: list[dict[str, Any]], evaluations: int, target: float | None,
              optimum: float) -> dict[str, Any]:
    checkpoints = sorted({c for c in CHECKPOINTS if c <= evaluations} | {evaluations})
    out: dict[str, Any] = {"runs": len(runs), "stalled": sum(r["stalled"] for r in runs),
                           "cached": mean_std([float(r["cached"]) for r in runs]),
                           "at": {}}
    for n in checkpoints:
        vals = [r["best"][n - 1] if len(r["best"]) >= n else None for r in runs]
        tests = [r["test"][n - 1] if len(r["test"]) >= n else None for r in runs]
        out["at"][str(n)] = {"validation": mean_std(vals), "test": mean_std(tests)}
    finals = [r["best"][-1] for r in runs if r["best"]]
    out["final_regret"] = mean_std([optimum - v for v in finals])
    out["found_optimum"] = sum(v >= optimum for v in finals)
    if target is not None:
        evals = [first_reaching(range(1, len(r["best"]) + 1), r["best"], target) for r in runs]
        secs = [first_reaching(r["seconds"], r["best"], target) for r in runs]
        out["to_random_best"] = {
            "reached": sum(e is not None for e in evals), "runs": len(runs),
            # runs that never reach it count as the whole budget (a lower bound)
            "evaluations": mean_std([float(e) if e is not None else float(evaluations)
                                     for e in evals]),
            "trainer_seconds": mean_std([s if s is not None else r["seconds"][-1]
                                         for s, r in zip(secs, runs)]),
        }
    return out


def curves(runs: list[dict[str, Any]], evaluations: int) -> dict[str, list[float | None]]:
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for n in range(1, evaluations + 1):
        s = mean_std([r["best"][n - 1] if len(r["best"]) >= n else None for r in runs])
        if s["mean"] is None:
            mean.append(None), low.append(None), high.append(None)
        else:
            mean.append(s["mean"])
            low.append(s["mean"] - s["ci95"])
            high.append(s["mean"] + s["ci95"])
    return {"mean": mean, "low": low, "high": high}


def print_report(report: dict[str, Any]) -> None:
    t = report["table_stats"]
    print(f"table {report['table']}: {t['architectures']} networks, {t['rows']} rows, "
          f"{t['epochs']} epochs each, {t['bytes'] / 1e6:.2f} MB, built in "
          f"{t['build_seconds'] / 3600:.2f} h; validation {t['validation']['min']:.3f} .. "
          f"{t['validation']['max']:.3f} (median {t['validation']['median']:.3f})")
    if "seed_std" in t:
        print(f"noise over {t['noise_pairs']} networks trained with two seeds: seed-to-seed std "
              f"{t['seed_std']:.4f}, mean |difference| {t['mean_abs_seed_difference']:.4f}, "
              f"Spearman {t['spearman']:.3f}")
    print(f"\n{report['table']}: {report['architectures']} networks, optimum "
          f"{report['optimum']:.4f}, {report['seeds']} seeds, {report['evaluations']} "
          f"evaluations per run; random's mean final best {report['random_target']:.4f}")
    for variant, agents in report["variants"].items():
        checkpoints = list(next(iter(agents.values()))["at"])
        head = f"{variant:7s} {'agent':10s} " + " ".join(f"{'val@' + c:>17s}" for c in checkpoints)
        head += f" {'test@' + checkpoints[-1]:>17s} {'evals→random':>16s} {'trainer-s→random':>18s}"
        head += f" {'regret':>17s}"
        print(head)
        print("-" * len(head))
        for agent, s in agents.items():
            cells = " ".join(f"{fmt(s['at'][c]['validation'], 4, 'ci95'):>17s}"
                             for c in checkpoints)
            reach = s.get("to_random_best")
            ev = f"{fmt(reach['evaluations'], 0, 'ci95')} {reach['reached']}/{reach['runs']}" \
                if reach else "-"
            ts = fmt(reach["trainer_seconds"], 0, "ci95") if reach else "-"
            print(f"{variant:7s} {agent:10s} {cells} "
                  f"{fmt(s['at'][checkpoints[-1]]['test'], 4, 'ci95'):>17s} {ev:>16s} "
                  f"{ts:>18s} {fmt(s['final_regret'], 4, 'ci95'):>17s}")


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
            lows += [v for v in c["mean"][len(xs) // 10:] if v is not None]
        ax.axhline(report["optimum"], color="black", linestyle="--", linewidth=1,
                   label="table optimum")
        ax.axhline(report["random_target"], color="grey", linestyle=":", linewidth=1,
                   label="random's final best")
        if lows:
            bottom = min(lows)
            ax.set_ylim(bottom - 0.1 * (report["optimum"] - bottom), None)
        ax.set_xscale("log")
        ax.set_title(f"{report['table']} ({variant} settings): {report['seeds']} seeds, "
                     "mean ± 95 % CI")
        ax.set_xlabel("distinct networks evaluated")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--agents", help="comma-separated (default: every agent of the table's space)")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--evaluations", type=int, help="default: a quarter of the table")
    p.add_argument("--variant", choices=("paper", "budget", "both"), default="both")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    began = time.perf_counter()
    lookup = _lookup(str(args.table))
    is_zoph = "zoph" in lookup.table.space
    agents = args.agents.split(",") if args.agents else list(
        ZOPH_AGENTS if is_zoph else METAQNN_AGENTS)
    if "tpe" in agents and not is_zoph:
        raise SystemExit("tpe runs on Zoph tables only")
    evaluations = args.evaluations or len(lookup.rows) // 4
    if not 1 <= evaluations <= len(lookup.rows):
        raise SystemExit(f"--evaluations must be between 1 and {len(lookup.rows)}")
    variants = ["paper", "budget"] if args.variant == "both" else [args.variant]
    # random search with the paper's (its only) settings is every variant's reference
    paper = agents if "paper" in variants else ["random"]
    jobs = [(str(args.table), a, s, evaluations, "paper") for a in paper
            for s in range(args.seeds)]
    jobs += [(str(args.table), a, s, evaluations, "budget") for a in agents
             if "budget" in variants and a in BUDGET_SETTINGS for s in range(args.seeds)]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        results = list(pool.map(_one, jobs, chunksize=4))
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for job, run in zip(jobs, results):
        by.setdefault(job[4], {}).setdefault(job[1], []).append(run)
    random_runs = by.get("paper", {}).get("random", [])
    target = mean_std([r["best"][-1] for r in random_runs])["mean"] if random_runs else None
    report: dict[str, Any] = {
        "table": lookup.table.name, "dataset": lookup.table.dataset,
        "architectures": len(lookup.rows), "optimum": lookup.optimum,
        "table_stats": table_stats(lookup, args.table),
        "seeds": args.seeds, "evaluations": evaluations, "random_target": target,
        "variants": {v: {a: summarize(runs, evaluations, target, lookup.optimum)
                         for a, runs in agents_runs.items()} for v, agents_runs in by.items()},
        "curves": {v: {a: curves(runs, evaluations) for a, runs in agents_runs.items()}
                   for v, agents_runs in by.items()},
        "settings": {a: _agent_settings(a, "budget", evaluations) for a in BUDGET_SETTINGS},
        "wall_seconds": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()}, {args.workers} worker process(es)",
        "command": "python bench/tabular.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:]),
    }
    if target is not None:
        print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"tabular_{lookup.table.name}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    if target is not None:
        plot(report, args.out / f"{stem}.png")
    print(f"\n{len(jobs)} runs in {report['wall_seconds']:.0f}s; wrote {args.out / stem}.json/.png")
    return report


if __name__ == "__main__":
    main()
