"""Training-free scores on a tabular benchmark: how well does each score, computed at
initialisation (nasrl.core.scoring), rank the table's networks by their trained validation accuracy?

    .venv/bin/python bench/screening.py --table bench/tables/zoph_mnist5k.jsonl.gz
        [--scores params,flops,synflow,naswot] [--batch 64] [--out DIR]

Prints, per score, the Spearman and Kendall rank correlations with the best validation accuracy
over every network of the table, and the milliseconds per network (one CPU thread). Writes
OUT/scores_NAME.json with every network's scores, which ``bench/tabular.py --screen`` replays
(computed here once instead of in every run). naswot uses one fixed mini-batch of ``--batch``
training images (seed 0).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"


def scores_path(table: Path, out: Path = RESULTS) -> Path:
    from nasrl.core.table import read_table

    return out / f"scores_{read_table(table).name}.json"


def compute(table: Path, kinds: list[str], batch: int) -> dict[str, Any]:
    import torch
    from scipy.stats import kendalltau, spearmanr

    from bench.replay.lookup import Lookup
    from nasrl.core.arch import parse
    from nasrl.core.scoring import score
    from trainer_service import data

    torch.set_num_threads(1)
    lookup = Lookup(table)
    dataset = data.load(lookup.table.dataset)
    pick = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(0))
    images = dataset.x_train[pick[:batch]]
    archs = sorted(lookup.rows)
    accuracy = [lookup.rows[a][0] for a in archs]
    report: dict[str, Any] = {
        "table": lookup.table.name,
        "networks": len(archs),
        "batch": batch,
        "scores": {},
        "values": {},
    }
    for kind in kinds:
        began = time.perf_counter()
        values = [score(kind, parse(a), dataset.shape, images) for a in archs]
        ms = 1000 * (time.perf_counter() - began) / len(archs)
        finite = [v if math.isfinite(v) else -1e300 for v in values]
        report["scores"][kind] = {
            "spearman": float(spearmanr(finite, accuracy).statistic),
            "kendall": float(kendalltau(finite, accuracy).statistic),
            "ms_per_network": round(ms, 2),
            "non_finite": sum(not math.isfinite(v) for v in values),
        }
        report["values"][kind] = dict(zip(archs, finite))
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--scores", default="params,flops,synflow,naswot")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    report = compute(args.table, args.scores.split(","), args.batch)
    print(
        f"{report['table']}: {report['networks']} networks; rank correlation of each "
        "training-free score with the trained best validation accuracy"
    )
    print(f"{'score':10s} {'Spearman':>9s} {'Kendall':>8s} {'ms/network':>11s}")
    for kind, s in report["scores"].items():
        print(f"{kind:10s} {s['spearman']:9.3f} {s['kendall']:8.3f} {s['ms_per_network']:11.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = scores_path(args.table, args.out)
    path.write_text(json.dumps(report))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
