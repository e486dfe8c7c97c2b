"""The searches of the benchmark: one search of a nasrl agent, driven by nasrl's own runner
until its trainer-second budget is spent, and every agent and seed on one dataset."""

from __future__ import annotations

import time
from typing import Any

from bench.efficiency.output import print_table
from bench.efficiency.runlog import RunLog
from bench.efficiency.settings import agent_spec, space_of, space_proto
from bench.efficiency.stats import curves, random_target, summarize
from bench.efficiency.tpe import run_tpe
from bench.efficiency.trainers import Services, warm_up
from nasrl.core import codec
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import Candidate, ControllerClient
from nasrl.runner import Runner, RunnerEvents, TrainerPool

__all__ = ["run_nasrl", "bench_dataset", "qlearning_scale"]

CHILD_BUDGET = 1000  # the searches' child budget: never the limit, the trainer-seconds are


def run_nasrl(
    controller: str,
    trainers: list[str],
    log: RunLog,
    settings: TrainSettings,
    qlearning_scale: float,
) -> dict[str, Any]:
    """One search of a nasrl agent, one child in flight per trainer, until the trainer-second
    budget is spent: then the runner stops, cancelling the children still training (they
    stay unreported), and the search is stopped."""
    with ControllerClient(controller) as ctl:
        sid = ctl.create_search(
            agent=agent_spec(log.agent, qlearning_scale),
            space=space_proto(log.agent),
            dataset=log.dataset,
            training=codec.settings_to_proto(settings),
            budget=CHILD_BUDGET,
            seed=log.seed,
            name=f"bench {log.agent} {log.dataset} seed {log.seed}",
        ).search_id
        pool = TrainerPool(",".join(trainers))
        runner: Runner | None = None

        def on_result(
            cand: Candidate, trainer: str | None, result: TrainOutcome | None, failure: str | None
        ) -> None:
            if result is None:
                log.add_failed(0.0)  # the runner does not say how long a failure took
            elif trainer is None:
                log.add_cached(result)
            else:
                log.add_trained(result)
            if log.exhausted() and runner is not None:
                runner.stop()

        runner = Runner(ctl, pool, sid, RunnerEvents(on_result=on_result))
        try:
            runner.run()
        finally:
            pool.close()
        search = ctl.stop_search(sid)
        log.add_abandoned(search.counts.in_flight)
        return {
            "search_id": sid,
            "counts": {
                k: int(getattr(search.counts, k))
                for k in ("sampled", "evaluated", "cached", "failed", "reissued")
            },
            "progress": dict(search.progress),
        }


def qlearning_scale(budget: float, child_seconds: float | None) -> tuple[float | None, float]:
    """(expected children, epsilon schedule scale): qlearning's schedule fitted to the number
    of children the budget is expected to buy, as its default fits it to a child budget."""
    if not child_seconds:
        return None, 0.0
    expected = budget / child_seconds
    return expected, max(1e-4, min(1.0, expected / 2700))


def bench_dataset(
    services: Services,
    dataset: str,
    agents: list[str],
    seeds: list[int],
    budget: float,
    settings: TrainSettings,
) -> dict[str, Any]:
    """Every agent and seed on ``dataset``, after a warm-up; the dataset's part of the
    report."""
    began = time.perf_counter()
    trainers = services.trainers
    q_seconds = warm_up(trainers, dataset, settings, 2 if "qlearning" in agents else 0)
    expected, q_scale = qlearning_scale(budget, q_seconds)
    if q_seconds:
        print(
            f"{dataset}: warm-up done; random MetaQNN children take {q_seconds:.2f}s → "
            f"qlearning's schedule fitted to ~{expected:.0f} children (scale {q_scale:.4f})"
        )
    runs: dict[str, list[RunLog]] = {a: [] for a in agents}
    extra: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    for seed in seeds:  # seed-major: load drift on a shared machine hits every agent alike
        for agent in agents:
            log = RunLog(agent, dataset, seed, budget)
            t0 = time.perf_counter()
            if agent == "tpe":
                info = run_tpe(trainers, log, settings)
            else:
                info = run_nasrl(
                    services.controller, services.trainer_targets, log, settings, q_scale
                )
            val, test, _ = log.at_budget()
            print(
                f"{dataset} {agent:9s} seed {seed}: best val {val:.4f} (test {test:.4f}), "
                f"{log.trained} trained, {log.cached} cached ({log.saved_seconds:.1f}s saved)"
                f", {log.spent:.1f} trainer-s in {time.perf_counter() - t0:.0f}s wall"
                + (" [stalled]" if log.stalled else ""),
                flush=True,
            )
            runs[agent].append(log)
            extra[agent].append(info)
    target = random_target(runs)
    summary = {a: summarize(rs, target) for a, rs in runs.items()}
    print_table(dataset, budget, target, summary)
    return {
        "budget_trainer_seconds": budget,
        "epochs": settings.epochs,
        "seeds": len(seeds),
        "random_target": target,
        "qlearning_schedule": {
            "metaqnn_child_seconds": q_seconds,
            "expected_children": expected,
            "schedule_scale": q_scale,
        },
        "summary": summary,
        "curves": {a: curves(rs, budget) for a, rs in runs.items()},
        "runs": {
            a: [
                {
                    "seed": r.seed,
                    "space": space_of(a),
                    "trained": r.trained,
                    "trained_within_budget": r.trained_within(),
                    "abandoned": r.abandoned,
                    "cached": r.cached,
                    "dedup_saved_seconds": r.saved_seconds,
                    "failed": r.failed,
                    "stalled": r.stalled,
                    "trainer_seconds": r.spent,
                    "best_at_budget": list(r.at_budget()),
                    "best_architecture": r.best_arch(),
                    "trajectory": r.trajectory,
                    **info,
                }
                for r, info in zip(rs, extra[a])
            ]
            for a, rs in runs.items()
        },
        "wall_seconds": time.perf_counter() - began,
    }
