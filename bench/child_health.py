"""Child health: how often the trainer's defaults collapse a child to chance, and at what mean
accuracy, for the 20 children of ``make demo`` (reinforce, mnist5k, seed 0) over several seeds.

    .venv/bin/python bench/child_health.py [--seeds 3] [--epochs 2] [--workers 2] [--out DIR]

A "variant" is a set of TrainSettings overrides; the default compares the old defaults
(SGD lr 0.3, no gradient clipping), the paper's SGD rate (lr 0.1, no clipping) and today's
defaults (SGD lr 0.3 with gradient-norm clipping at 1.0). A run counts as collapsed when its
best validation accuracy is at most ``--chance`` (0.2; a one-class net scores about 0.11 on
mnist5k). The reference GAP net (``C(32,3,1) P(2,2) C(64,3,1) GAP``, 3 epochs) is trained
under every variant too: it is the child a lower rate hurts. Every run trains in a worker
process with one torch thread; the table is printed and written to child_health.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasrl.core.arch import parse  # noqa: E402
from nasrl.core.results import TrainOutcome, TrainSettings  # noqa: E402

CHILDREN = ROOT / "bench" / "data" / "demo_children.txt"
REFERENCE = "C(32,3,1) P(2,2) C(64,3,1) GAP"
VARIANTS: dict[str, dict[str, Any]] = {
    "lr 0.3, no clip (old default)": {"learning_rate": 0.3, "grad_clip": 0.0},
    "lr 0.1, no clip (paper's rate)": {"learning_rate": 0.1, "grad_clip": 0.0},
    "lr 0.3, clip 1.0 (default)": {"learning_rate": 0.3, "grad_clip": 1.0},
}


def _train(job: tuple[str, str, dict[str, Any], int, int]) -> dict[str, Any]:
    import torch

    from trainer_service import data
    from trainer_service.train import train

    torch.set_num_threads(1)
    arch, dataset, overrides, seed, epochs = job
    settings = replace(TrainSettings(epochs=epochs, seed=seed), **overrides)
    outcome = None
    for event in train(parse(arch), data.load(dataset), settings, torch.device("cpu")):
        if isinstance(event, TrainOutcome):
            outcome = event
    assert outcome is not None
    return {
        "arch": arch,
        "seed": seed,
        "validation_accuracy": outcome.validation_accuracy,
        "test_accuracy": outcome.test_accuracy,
        "seconds": outcome.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chance", type=float, default=0.2)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    children = [line.strip() for line in CHILDREN.read_text().splitlines() if line.strip()]
    report: dict[str, Any] = {
        "children": len(children),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "dataset": args.dataset,
        "variants": {},
    }
    print(
        f"{len(children)} demo children x {args.seeds} seeds, {args.epochs} epochs on "
        f"{args.dataset}; reference {REFERENCE} 3 epochs seed 0"
    )
    print(
        f"{'variant':34s} {'collapsed':>10s} {'mean val':>9s} {'mean test':>9s} "
        f"{'reference val':>13s}"
    )
    with ProcessPoolExecutor(args.workers) as pool:
        for name, overrides in VARIANTS.items():
            jobs = [
                (a, args.dataset, overrides, s, args.epochs)
                for a in children
                for s in range(args.seeds)
            ]
            runs = list(pool.map(_train, jobs))
            ref = _train((REFERENCE, args.dataset, overrides, 0, 3))
            collapsed = [r for r in runs if r["validation_accuracy"] <= args.chance]
            row = {
                "collapsed": len(collapsed),
                "runs": len(runs),
                "mean_validation": statistics.fmean(r["validation_accuracy"] for r in runs),
                "mean_test": statistics.fmean(r["test_accuracy"] for r in runs),
                "reference_validation": ref["validation_accuracy"],
                "collapsed_children": sorted({r["arch"] for r in collapsed}),
                "runs_detail": runs,
            }
            report["variants"][name] = row
            print(
                f"{name:34s} {len(collapsed):>4d}/{len(runs):<5d} "
                f"{row['mean_validation']:9.4f} {row['mean_test']:9.4f} "
                f"{row['reference_validation']:13.4f}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "child_health.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
