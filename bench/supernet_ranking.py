"""How well weight sharing ranks children: train a supernet (ENAS's shared-weights phase, a
uniformly sampled child per mini-batch) and compare each child's validation accuracy under
the shared weights with the ground truth.

* Zoph table (``bench/tables/zoph_mnist5k.jsonl.gz``, 2,048 networks, each trained 3 epochs
  from scratch) and MetaQNN table (1,720 networks of convolutions, max pools and GAP):
  Spearman's rho and Kendall's tau between shared-weights accuracy and the
  table's best validation accuracy over every network, and the overlap of the two top-10s,
  after each of ``--epochs`` supernet epochs (an epoch: one pass over mnist5k's training
  split), for each supernet seed and both ways of normalising at evaluation (the shared
  running statistics, or each evaluation batch's own). The parameter count's Spearman is
  printed as a training-free reference.
* NB201 cell space on mnist5k (``--nb201-cells`` random cells, skeleton C=16, N=1, 3
  stages): no ground truth; the Spearman between the rankings of two supernet seeds.

    .venv/bin/python bench/supernet_ranking.py [--tables T1,T2] [--epochs 1,3,10] [--seeds 0]
        [--nb201-seeds 0,1]
        [--nb201-cells 500] [--nb201-epochs 1,3] [--lr 0.05] [--val N] [--out DIR]

Writes OUT/supernet_ranking.json (OUT: bench/results). Torch runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from scipy import stats  # noqa: E402

from nasrl.core.arch import Architecture, parse  # noqa: E402
from nasrl.core.cell import CELL_OPS, Cell, Skeleton  # noqa: E402
from nasrl.core.supernet import ZophBounds, ZophSupernet  # noqa: E402
from nasrl.core.supernet_cell import CellSupernet  # noqa: E402
from nasrl.core.supernet_train import BN_MODES, SharedSGD, evaluate, train_child  # noqa: E402
from nasrl.core.table import Table, read_table  # noqa: E402
from trainer_service.data import Dataset, load  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TABLES = ROOT / "bench" / "tables"
NB201_SKELETON = Skeleton(channels=16, cells_per_stage=1, stages=3)


def train_epochs(
    net: Any,
    plans: Sequence[Any],
    data: Dataset,
    epochs: Sequence[int],
    seed: int,
    lr: float,
    on_mark: Callable[[int, float], None],
    batch_size: int = 32,
) -> None:
    """Train ``net`` up to ``max(epochs)`` epochs, a uniformly drawn plan per batch; call
    ``on_mark(epoch, seconds of training so far)`` after each epoch listed in ``epochs``."""
    opt = SharedSGD(dict(net.named_parameters()), lr=lr)
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    trained = 0.0
    for epoch in range(1, max(epochs) + 1):
        began = time.perf_counter()
        order = torch.randperm(n, generator=g)
        for start in range(0, n - 1, batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                break
            train_child(net, rng.choice(plans), data.x_train[idx], data.y_train[idx], opt)
        trained += time.perf_counter() - began
        if epoch in epochs:
            on_mark(epoch, trained)


def accuracies(net: Any, plans: Sequence[Any], data: Dataset, bn: str) -> list[float]:
    return [evaluate(net, p, data.x_val, data.y_val, bn=bn) for p in plans]


def top_overlap(a: Sequence[float], b: Sequence[float], k: int = 10) -> int:
    def top(v: Sequence[float]) -> set[int]:
        return set(sorted(range(len(v)), key=lambda i: -v[i])[:k])

    return len(top(a) & top(b))


def bounds_of(table: Table) -> ZophBounds:
    """The layer supernet for a table's space: Zoph's maxima, or MetaQNN's (its longest
    network's length; its pools and GAP have no weights)."""
    texts = table.primary()
    if "zoph" in table.space:
        space = table.space["zoph"]
        return ZophBounds(max(space["filterSizes"]), max(space["filters"]), space["maxLayers"])
    space = table.space["metaqnn"]
    longest = max(len(parse(t).layers) for t in texts)
    return ZophBounds(max(space["convSizes"]), max(space["convFilters"]), longest)


def layer_table(path: Path, args: argparse.Namespace, data: Dataset) -> dict[str, Any]:
    table = read_table(path)
    bounds = bounds_of(table)
    texts = sorted(table.primary())
    truth = [table.primary()[t].best_validation for t in texts]
    params = [table.primary()[t].params for t in texts]
    print(f"{table.name}: {len(texts)} networks, {bounds}", flush=True)
    runs = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        net = ZophSupernet(data.shape, bounds)
        plans = [net.plan(parse(t)) for t in texts]

        def mark(epoch: int, seconds: float, seed: int = seed, net: Any = net) -> None:
            for bn in BN_MODES:
                began = time.perf_counter()
                shared = accuracies(net, plans, data, bn)
                row = {
                    "seed": seed,
                    "epoch": epoch,
                    "bn": bn,
                    "spearman": stats.spearmanr(shared, truth).statistic,
                    "kendall": stats.kendalltau(shared, truth).statistic,
                    "top10_overlap": top_overlap(shared, truth),
                    "shared_median": sorted(shared)[len(shared) // 2],
                    "train_seconds": seconds,
                    "eval_seconds": time.perf_counter() - began,
                }
                runs.append(row)
                print(json.dumps(row), flush=True)

        train_epochs(net, plans, data, args.epochs, seed, args.lr, mark)
    return {
        "table": str(path),
        "networks": len(texts),
        "bounds": bounds.__dict__,
        "params_spearman": stats.spearmanr(params, truth).statistic,
        "runs": runs,
    }


def nb201(args: argparse.Namespace, data: Dataset) -> dict[str, Any]:
    rng = random.Random(12345)
    cells = [
        Architecture(cell=Cell(tuple(rng.choice(CELL_OPS) for _ in range(6)), NB201_SKELETON))
        for _ in range(args.nb201_cells)
    ]
    shared: dict[tuple[int, int], list[float]] = {}
    seconds: dict[tuple[int, int], float] = {}
    for seed in args.nb201_seeds[:2]:
        torch.manual_seed(seed)
        net = CellSupernet(data.shape, NB201_SKELETON)
        plans = [net.plan(c) for c in cells]

        def mark(epoch: int, trained: float, seed: int = seed, net: Any = net) -> None:
            began = time.perf_counter()
            shared[seed, epoch] = accuracies(net, plans, data, args.nb201_bn)
            seconds[seed, epoch] = trained
            print(
                f"nb201 seed {seed} epoch {epoch}: trained {trained:.0f} s, evaluated "
                f"{time.perf_counter() - began:.0f} s",
                flush=True,
            )

        train_epochs(net, plans, data, args.nb201_epochs, seed, args.lr, mark)
    a, b = args.nb201_seeds[:2]
    rows = []
    for epoch in args.nb201_epochs:
        x, y = shared[a, epoch], shared[b, epoch]
        row = {
            "epoch": epoch,
            "spearman_between_seeds": stats.spearmanr(x, y).statistic,
            "kendall_between_seeds": stats.kendalltau(x, y).statistic,
            "top10_overlap_between_seeds": top_overlap(x, y),
            "median_accuracy": [sorted(x)[len(x) // 2], sorted(y)[len(y) // 2]],
            "train_seconds": [seconds[a, epoch], seconds[b, epoch]],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "skeleton": NB201_SKELETON.__dict__,
        "cells": len(cells),
        "bn": args.nb201_bn,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: tuple(int(v) for v in s.split(","))  # noqa: E731
    p.add_argument(
        "--tables",
        type=lambda s: tuple(Path(v) for v in s.split(",") if v),
        default=(TABLES / "zoph_mnist5k.jsonl.gz", TABLES / "metaqnn_mnist5k.jsonl.gz"),
        help="layer-space tables, comma separated ('' for none)",
    )
    p.add_argument("--epochs", type=ints, default=(1, 3, 10))
    p.add_argument("--seeds", type=ints, default=(0,), help="layer supernet seeds")
    p.add_argument("--nb201-seeds", type=ints, default=(0, 1), help="two NB201 supernet seeds")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--nb201-cells", type=int, default=500, help="0 skips the NB201 part")
    p.add_argument("--nb201-epochs", type=ints, default=(1, 3))
    p.add_argument("--nb201-bn", choices=BN_MODES, default="batch")
    p.add_argument(
        "--val", type=int, default=0, help="evaluate on the first N validation images (0: all)"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    # One thread: on a shared 2-core machine two threads made a step ~30x slower (spinning).
    torch.set_num_threads(1)
    data = load("mnist5k")
    if args.val:
        data = replace(data, x_val=data.x_val[: args.val], y_val=data.y_val[: args.val])
    began = time.perf_counter()
    report: dict[str, Any] = {"command": " ".join(["bench/supernet_ranking.py", *sys.argv[1:]])}
    report["lr"] = args.lr
    report["validation_images"] = len(data.y_val)
    report["tables"] = {str(t.name): layer_table(t, args, data) for t in args.tables}
    if args.nb201_cells:
        report["nb201"] = nb201(args, data)
    report["seconds"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "supernet_ranking.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out / 'supernet_ranking.json'} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
