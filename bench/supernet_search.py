"""What a SHARED search (weight sharing, ENAS) costs against a FULL one on the Zoph table.

For each seed, three searches over ``bench/tables/zoph_mnist5k.jsonl.gz`` (every network's
3-epoch mnist5k accuracy and the trainer seconds it took):

* **random** with ``--full-budget`` children replayed from the table: its best true accuracy is
  the seed's *target*;
* **FULL**: the agent (``--agent``, default evolution) with every child's reward replayed from
  the table; its cost is the table's trainer seconds of the children trained so far;
* **SHARED**: the same agent, each child scored under weights shared by all children — a real
  supernet on mnist5k, trained in this process (``nasrl.core.supernet``, one torch thread),
  ``--steps`` mini-batches per child, the first ``--warmup`` children uniform — then the
  ``--top-k`` networks with the best shared scores "trained fully" from the table, best first.
  Its cost is the supernet's measured seconds (training and scoring) plus the table's
  seconds of the top-k networks trained so far.

Reported per arm: the trainer-seconds until a network whose TRUE (table) accuracy reaches the
seed's target (a SHARED search knows a network's true accuracy only once its top-k stage has
trained it), with a 95 % interval over the seeds (t distribution), and the ratio SHARED/FULL.
The domain code runs in process (the controller's agents, the trainer's supernet), not over
gRPC: the same calls, without the processes.

    .venv/bin/python bench/supernet_search.py [--seeds 5] [--budget 150] [--steps 20]
        [--warmup 30] [--top-k 5] [--full-budget 100] [--agent evolution] [--val 400]

Writes OUT/supernet_search.json (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from scipy import stats  # noqa: E402

from bench.replay.lookup import Lookup  # noqa: E402
from controller_service.agents import AGENTS, Agent  # noqa: E402
from controller_service.agents.proposals import random_proposal  # noqa: E402
from controller_service.spaces import ZophSpace  # noqa: E402
from nasrl.core.supernet import ZophBounds, ZophSupernet  # noqa: E402
from nasrl.core.supernet_train import SharedSGD, evaluate, train_child  # noqa: E402
from trainer_service.data import Dataset, load  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TABLE = ROOT / "bench" / "tables" / "zoph_mnist5k.jsonl.gz"


def replay(agent: Agent, table: Lookup, budget: int, target: float) -> dict[str, Any]:
    """A FULL search replayed from the table: its best and the seconds until ``target``."""
    seconds, best, reached = 0.0, 0.0, math.inf
    seen: set[str] = set()
    for _ in range(budget * 50):
        if len(seen) >= budget:
            break
        (p,) = agent.sample(1)
        text = table.text(p.arch)
        accuracy, _, _, cost = table.rows[text]
        if text not in seen:  # a network already trained is answered from its result
            seen.add(text)
            seconds += cost
            best = max(best, accuracy)
            if accuracy >= target and reached == math.inf:
                reached = seconds
        agent.update(p.decisions, accuracy)
    return {"best": best, "seconds": seconds, "to_target": reached, "children": len(seen)}


def shared_search(
    agent: Agent, table: Lookup, data: Dataset, args: argparse.Namespace, seed: int, target: float
) -> dict[str, Any]:
    """A SHARED search: shared scores from a real supernet, then the top-k from the table."""
    space = table.space
    assert isinstance(space, ZophSpace), "the bench runs on a Zoph table"
    torch.manual_seed(seed)
    net = ZophSupernet(
        data.shape, ZophBounds(max(space.filter_sizes), max(space.filters), space.max_layers)
    )
    opt = SharedSGD(dict(net.named_parameters()), lr=args.lr)
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    x_val, y_val = data.x_val[: args.val], data.y_val[: args.val]
    n = len(data.y_train)
    scores: dict[str, float] = {}
    began = time.perf_counter()
    children = 0
    for _ in range(args.budget * 50):
        if children >= args.budget:
            break
        warm = children < args.warmup
        p = random_proposal(space, rng, space.max_layers) if warm else agent.sample(1)[0]
        text = table.text(p.arch)
        if text not in scores:  # dedup, as the controller: never evaluated twice
            plan = net.plan(p.arch)
            for _ in range(args.steps):
                idx = torch.randperm(n, generator=g)[:32]
                train_child(net, plan, data.x_train[idx], data.y_train[idx], opt)
            scores[text] = evaluate(net, plan, x_val, y_val)
            children += 1
        if not warm:  # the agent learns from none of the warm-up
            agent.update(p.decisions, scores[text])
    supernet = time.perf_counter() - began
    truth = [table.rows[t][0] for t in scores]
    seconds, reached, best = supernet, math.inf, 0.0
    for text in sorted(scores, key=lambda t: -scores[t])[: args.top_k]:
        accuracy, _, _, cost = table.rows[text]
        seconds += cost
        best = max(best, accuracy)
        if accuracy >= target and reached == math.inf:
            reached = seconds
    return {
        "best": best,
        "supernet_seconds": supernet,
        "seconds": seconds,
        "to_target": reached,
        "children": children,
        "spearman": float(stats.spearmanr(list(scores.values()), truth).statistic),
    }


def interval(values: list[float]) -> dict[str, float] | None:
    """Mean and 95 % interval (t) of the finite values; None when fewer than two."""
    xs = [v for v in values if math.isfinite(v)]
    if len(xs) < 2:
        return None
    mean, sd = statistics.mean(xs), statistics.stdev(xs)
    half = float(stats.t.ppf(0.975, len(xs) - 1)) * sd / math.sqrt(len(xs))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(xs)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default=str(TABLE))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--agent", default="evolution", choices=("evolution", "reinforce", "random"))
    p.add_argument("--budget", type=int, default=150, help="SHARED children")
    p.add_argument("--steps", type=int, default=20, help="shared-weight steps per child")
    p.add_argument("--warmup", type=int, default=30, help="uniform children first")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--full-budget", type=int, default=100, help="random's and FULL's children")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--val", type=int, default=400, help="validation images per shared score")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    began = time.perf_counter()
    table, data = Lookup(Path(args.table)), load("mnist5k")
    runs = []
    for seed in range(args.seeds):
        make = AGENTS[args.agent]
        rand = replay(
            AGENTS["random"](table.space, {}, seed, args.full_budget), table, args.full_budget, 2.0
        )
        target = rand["best"]
        full = replay(
            make(table.space, {}, seed, args.full_budget), table, args.full_budget * 3, target
        )
        shared = shared_search(
            make(table.space, {}, seed, args.budget), table, data, args, seed, target
        )
        run = {"seed": seed, "target": target, "random": rand, "full": full, "shared": shared}
        runs.append(run)
        print(json.dumps(run), flush=True)
    report = summary(args, runs, time.perf_counter() - began)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "supernet_search.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2, default=str))
    return report


def summary(args: argparse.Namespace, runs: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    full = [r["full"]["to_target"] for r in runs]
    shared = [r["shared"]["to_target"] for r in runs]
    both = [(s, f) for s, f in zip(shared, full) if math.isfinite(s) and math.isfinite(f)]
    return {
        "settings": vars(args),
        "wall_seconds": wall,
        "full_to_target": interval(full),
        "full_reached": sum(map(math.isfinite, full)),
        "shared_to_target": interval(shared),
        "shared_reached": sum(map(math.isfinite, shared)),
        "ratio_shared_over_full": interval([s / f for s, f in both]),
        "shared_supernet_seconds": interval([r["shared"]["supernet_seconds"] for r in runs]),
        "shared_best_true": interval([r["shared"]["best"] for r in runs]),
        "shared_spearman": interval([r["shared"]["spearman"] for r in runs]),
        "runs": runs,
    }


if __name__ == "__main__":
    main()
