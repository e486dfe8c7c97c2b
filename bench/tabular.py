"""Search efficiency on a tabular benchmark: every agent (and Optuna TPE) replayed against a
table built by bench/build_table.py, over many seeds, in minutes.

    .venv/bin/python bench/tabular.py --table bench/tables/zoph_mnist5k.jsonl.gz
        [--agents reinforce,random,evolution,tpe] [--seeds 50] [--evaluations N]
        [--variant paper|budget|efficient|both|all] [--priors predictor,explore,...]
        [--priors-agents LIST] [--workers 2] [--out DIR]

Each run drives the agent exactly as the controller does (``agent.sample(1)``, then
``agent.update(decisions, reward)`` with the agent's default reward: (max validation accuracy
of the last 5 epochs)^3 for reinforce, validation accuracy for the others), but answers every
proposal from the table instead of training it. As in the controller, a network already
evaluated in the run costs nothing: the agent learns its stored reward and it does not count
as an evaluation. A run ends after ``--evaluations`` distinct networks (default: a quarter of
the table) or after 4 x that many proposals (a stalled agent: it re-proposes known networks;
the report counts such runs, and their best-so-far stays at its last value).

TPE is Optuna's TPESampler (``pip install -e '.[bench]'``) over the same decisions (Zoph
tables only), with the same dedup. Variants: ``paper`` runs every agent with its defaults
(the papers' values); ``budget`` runs settings fitted to budgets of a few hundred children
(reported separately): reinforce with a 20x larger learning rate (0.012) and batch 4, qlearning
with its epsilon schedule scaled to a third of the budget spent at epsilon 1.

``--priors`` adds arms with the controller's priors outside the agents, replayed as the
controller runs them (tests/bench/test_replay_agrees.py holds the replay to it): screening by
the learned predictor (``--screen-factor`` proposals per child, the predictor's defaults: no
screening for the first 10 results, UCB with kappa 0.5, refitted every 10 results) and the
convergence rule (explore: after 100 known proposals in a row, a child whose proposals were
all known is followed by a uniformly random network; such runs end as stalled only after 40 x
the evaluations in proposals); ``+model`` arms add reinforce's model-based steps (``model_steps``
10 after each refit of the predictor).

Reported per agent: the mean best-so-far validation accuracy (and the test accuracy of that
best network) after 50 / 100 / 200 / 500 evaluations with 95 % confidence intervals; the
evaluations and trainer-seconds (the table's recorded seconds of the networks evaluated) a run
needs to reach random search's mean final best; the final regret against the table's optimum.
Writes OUT/tabular_NAME.json and OUT/tabular_NAME.png (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replay.lookup import Lookup, lookup  # noqa: E402
from bench.replay.output import plot, plot_stopping, print_report, print_stopping  # noqa: E402
from bench.replay.replay import BUDGET_SETTINGS, Job, agent_settings, run_job  # noqa: E402
from bench.replay.summary import (  # noqa: E402
    curves,
    seconds_grid,
    stopping_summary,
    summarize,
    table_stats,
)
from bench.report import mean_std  # noqa: E402
from nasrl.core.presets import PRESETS  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ZOPH_AGENTS = ("reinforce", "random", "evolution", "tpe")
METAQNN_AGENTS = ("qlearning", "random", "evolution")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--agents", help="comma-separated (default: every agent of the table's space)")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--evaluations", type=int, help="default: a quarter of the table")
    p.add_argument(
        "--variant",
        choices=("paper", "budget", "efficient", "both", "all"),
        default="both",
        help="paper: defaults; budget: the old budget-fitted settings; efficient: the agents' "
        "efficient presets (nasrl.core.presets); both: paper and budget; all: the three",
    )
    p.add_argument(
        "--early-stopping",
        default="",
        help="comma-separated rules (none,median,asha): run every agent under each "
        "rule to the same trainer-second budget instead of the evaluation study",
    )
    p.add_argument(
        "--warm-start",
        metavar="PROXY_TABLE",
        type=Path,
        help="also run every agent warm-started (variant 'warm'): priors are the "
        "best --warm-top networks a random search of --proxy-evaluations finds on "
        "this proxy table (the same space on a cheaper dataset); its trainer-seconds "
        "are added to the warm runs' cost",
    )
    p.add_argument("--proxy-evaluations", type=int, default=100)
    p.add_argument("--warm-top", type=int, default=10)
    p.add_argument(
        "--warm-stopping",
        default="none",
        help="comma-separated early-stopping rules for the warm runs (variant "
        "'warm+RULE' for each rule other than none)",
    )
    p.add_argument(
        "--screen",
        choices=("synflow", "params", "flops", "naswot", "predictor", "predictor/synflow"),
        help="also run every agent with screening by this score (variant SCOREx<factor>; "
        "training-free scores from bench/screening.py; predictor: the controller's learned "
        "predictor with its defaults, cold start unscreened or by the score after the /)",
    )
    p.add_argument(
        "--priors",
        default="",
        help="comma-separated combinations of the controller's priors to also run, each "
        "agent from its efficient preset where it has one, else its defaults: predictor "
        "(screening by the learned predictor, --screen-factor's first factor, cold start "
        "unscreened), explore (the convergence rule), predictor+explore, predictor+model and "
        "predictor+explore+model (reinforce only: model_steps 10, the agent's model-based "
        "steps), preset (the efficient preset alone, for an ablation); all: the six; "
        "predictor+mutate (the convergence rule with --converged-after 20 --explore-by "
        "mutations: exploring by one-decision mutations of the best 5 results); "
        "predictor+explore@20 and predictor+mutate@100 (patience and draws apart: uniform "
        "draws after 20 known proposals, mutations after 100)",
    )
    p.add_argument(
        "--priors-agents",
        help="comma-separated agents of the --priors arms (default: every agent run)",
    )
    p.add_argument(
        "--screen-factor",
        default="4",
        help="comma-separated proposals per evaluated child (default 4)",
    )
    p.add_argument(
        "--max-params",
        type=int,
        default=0,
        help="also run every agent with this parameter limit (variant 'max_params "
        "N'): proposals over it are rejected before training and learnt as failures",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    began = time.perf_counter()
    table = lookup(str(args.table))
    agents = _agents(args, table)
    evaluations = args.evaluations or len(table.rows) // 4
    if not 1 <= evaluations <= len(table.rows):
        raise SystemExit(f"--evaluations must be between 1 and {len(table.rows)}")
    if args.early_stopping:
        return early_stopping_study(args, table, agents, evaluations, began)
    jobs = _jobs(args, agents, evaluations)
    by = _by_arm(jobs, _replay(jobs, args.workers))
    report = _report(args, argv, table, evaluations, by, began)
    if report["random_target"] is not None:
        print_report(report)
    stem = (
        f"tabular_{table.table.name}"
        + ("_warm" if args.warm_start else "")
        + (f"_{args.screen}" if args.screen else "")
        + ("_max_params" if args.max_params else "")
    )
    _write(report, args.out, stem, plot if report["random_target"] is not None else None)
    print(f"\n{len(jobs)} runs in {report['wall_seconds']:.0f}s; wrote {args.out / stem}.json/.png")
    return report


def _agents(args: argparse.Namespace, table: Lookup) -> list[str]:
    is_zoph = "zoph" in table.table.space
    agents = list(ZOPH_AGENTS if is_zoph else METAQNN_AGENTS)
    if args.agents:
        agents = str(args.agents).split(",")
    if "tpe" in agents and not is_zoph:
        raise SystemExit("tpe runs on Zoph tables only")
    return agents


def _jobs(args: argparse.Namespace, agents: list[str], evaluations: int) -> list[Job]:
    """Every run of the evaluation study: the paper and budget settings, then the cheaper
    arms asked for (warm start, parameter limit, screening)."""
    variants = {"both": ["paper", "budget"], "all": ["paper", "budget", "efficient"]}.get(
        args.variant, [args.variant]
    )
    # random search with the paper's (its only) settings is every variant's reference
    paper = agents if "paper" in variants else ["random"]
    budget = [a for a in agents if "budget" in variants and a in BUDGET_SETTINGS]
    nasrl = [a for a in agents if a != "tpe"]
    arms: list[tuple[list[str], dict[str, Any]]] = [
        (paper, {"variant": "paper"}),
        (budget, {"variant": "budget"}),
        ([a for a in agents if "efficient" in variants and a in PRESETS], {"variant": "efficient"}),
    ]
    if args.warm_start:
        warm = (str(args.warm_start), args.proxy_evaluations, args.warm_top)
        for rule in args.warm_stopping.split(","):
            name = "warm" if rule == "none" else f"warm+{rule}"
            arms.append((nasrl, {"variant": name, "stopping": rule, "warm": warm}))
    if args.max_params:
        name = f"max_params {args.max_params:,}"
        arms.append((nasrl, {"variant": name, "max_params": args.max_params}))
    if args.screen:
        scores = "" if args.screen == "predictor" else str(_scores_file(args))
        for factor in (int(f) for f in args.screen_factor.split(",")):
            screen = (args.screen, factor, scores)
            arms.append((nasrl, {"variant": f"{args.screen}x{factor}", "screen": screen}))
    if args.priors:
        chosen = args.priors_agents.split(",") if args.priors_agents else nasrl
        arms += _priors(args.priors, chosen, int(args.screen_factor.split(",")[0]))
    return [
        Job(str(args.table), a, s, evaluations, **arm)
        for names, arm in arms
        for a in names
        for s in range(args.seeds)
    ]


#: the ablation's six (``--priors all``), then arms run on their own
ABLATION = (
    "preset",
    "predictor",
    "explore",
    "predictor+explore",
    "predictor+model",
    "predictor+explore+model",
)
PRIORS = (
    *ABLATION,
    "predictor+mutate",  # --converged-after 20 --explore-by mutations (top 5)
    "predictor+explore@20",  # uniform draws after 20 known proposals (patience apart from draws)
    "predictor+mutate@100",  # mutations after the default 100
)
#: model-based steps per predictor fit in the +model arms (agents that take them: reinforce)
MODEL_STEPS = 10


def _priors(combos: str, agents: list[str], factor: int) -> list[tuple[list[str], dict[str, Any]]]:
    """Arms of the controller's priors outside the agents (variant BASE+COMBO), each agent
    from its efficient preset if it has one (BASE efficient), else its defaults (paper)."""
    chosen = ABLATION if combos == "all" else tuple(combos.split(","))
    if unknown := [c for c in chosen if c not in PRIORS]:
        raise SystemExit(f"unknown --priors {unknown}; choose from {', '.join(PRIORS)} or all")
    arms: list[tuple[list[str], dict[str, Any]]] = []
    for combo in chosen:
        arm: dict[str, Any] = {"explore": "explore" in combo or "mutate" in combo}
        if "mutate" in combo:
            arm["mutate"] = 5
        if "@" in combo:
            arm["patience"] = int(combo.split("@")[1])
        if "predictor" in combo:
            arm["screen"] = ("predictor", factor, "")
        takers = agents
        if combo == "preset":  # the efficient preset alone (agents that have one)
            arms.append(([a for a in agents if a in PRESETS], {**arm, "variant": "efficient"}))
            continue
        if "model" in combo:
            arm["model_steps"] = MODEL_STEPS
            takers = [a for a in agents if a == "reinforce"]
        for base, names in (
            ("efficient", [a for a in takers if a in PRESETS]),
            ("paper", [a for a in takers if a not in PRESETS]),
        ):
            arms.append((names, {**arm, "variant": f"{base}+{combo}"}))
    return arms


def _scores_file(args: argparse.Namespace) -> Path:
    from bench.screening import scores_path

    scores = scores_path(args.table, args.out)
    if not scores.exists():
        raise SystemExit(
            f"{scores} is missing: run python bench/screening.py --table {args.table} first"
        )
    return scores


def _replay(jobs: list[Job], workers: int) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(run_job, jobs, chunksize=4))


def _by_arm(
    jobs: list[Job], runs: list[dict[str, Any]]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The runs by arm (variant), then by agent."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for job, run in zip(jobs, runs):
        by.setdefault(job.variant, {}).setdefault(job.agent, []).append(run)
    return by


def _report(
    args: argparse.Namespace,
    argv: list[str] | None,
    table: Lookup,
    evaluations: int,
    by: dict[str, dict[str, list[dict[str, Any]]]],
    began: float,
) -> dict[str, Any]:
    random_runs = by.get("paper", {}).get("random", [])
    target = mean_std([r["best"][-1] for r in random_runs])["mean"] if random_runs else None
    seconds = statistics.fmean(r[3] for r in table.rows.values())
    return {
        "table": table.table.name,
        "dataset": table.table.dataset,
        "architectures": len(table.rows),
        "optimum": table.optimum,
        "table_stats": table_stats(table, args.table),
        "seeds": args.seeds,
        "evaluations": evaluations,
        "random_target": target,
        "variants": {
            v: {
                a: summarize(runs, evaluations, target, table.optimum, seconds)
                for a, runs in agents_runs.items()
            }
            for v, agents_runs in by.items()
        },
        "curves": {
            v: {a: curves(runs, evaluations) for a, runs in agents_runs.items()}
            for v, agents_runs in by.items()
        },
        "settings": {a: agent_settings(a, "budget", evaluations) for a in BUDGET_SETTINGS},
        "warm_start": None if not args.warm_start else _warm_settings(args),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()}, {args.workers} worker process(es)",
        "command": "python bench/tabular.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }


def _warm_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "proxy_table": str(args.warm_start),
        "proxy_evaluations": args.proxy_evaluations,
        "top": args.warm_top,
        "stopping": args.warm_stopping,
    }


def _write(report: dict[str, Any], out: Path, stem: str, draw: Any) -> None:
    """OUT/STEM.json, and OUT/STEM.png drawn by ``draw`` (if any)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    if draw is not None:
        draw(report, out / f"{stem}.png")


def early_stopping_study(
    args: argparse.Namespace, table: Lookup, agents: list[str], evaluations: int, began: float
) -> dict[str, Any]:
    """Every agent under every rule, each run to the trainer-seconds that ``evaluations``
    fully trained children cost on average in this table."""
    rules = args.early_stopping.split(",")
    if "none" not in rules:
        rules.insert(0, "none")
    budget = evaluations * statistics.fmean(r.seconds for r in table.primary.values())
    jobs = [
        Job(str(args.table), a, s, len(table.rows), stopping=rule, budget_seconds=budget)
        for a in agents
        for rule in rules
        for s in range(args.seeds)
    ]
    arms: dict[str, list[dict[str, Any]]] = {}
    for job, run in zip(jobs, _replay(jobs, args.workers)):
        name = job.agent if job.stopping == "none" else f"{job.agent}+{job.stopping}"
        arms.setdefault(name, []).append(run)
    target = None
    if "random" in arms:
        target = stopping_summary(arms["random"], budget, None)["best_at_budget"]["mean"]
    report: dict[str, Any] = {
        "table": table.table.name,
        "seeds": args.seeds,
        "evaluations": evaluations,
        "early_stopping": {
            "budget_seconds": budget,
            "target": target,
            "rules": rules,
            "arms": {a: stopping_summary(runs, budget, target) for a, runs in arms.items()},
            "curves": {a: seconds_grid(runs, budget) for a, runs in arms.items()},
        },
        "wall_seconds": round(time.perf_counter() - began, 1),
        "command": "python bench/tabular.py " + " ".join(sys.argv[1:]),
    }
    if target is not None:
        print_stopping(report)
    stem = f"tabular_{table.table.name}_stopping"
    _write(report, args.out, stem, plot_stopping)
    print(f"\n{len(jobs)} runs in {report['wall_seconds']:.0f}s; wrote {args.out / stem}.json/.png")
    return report


if __name__ == "__main__":
    main()
