"""How well the learned predictor (controller_service/predictor.py) ranks networks it has not
seen: fit on n networks drawn at random from a table, predict every other network of the
table, and compare with the table's accuracy (Spearman's rho and Kendall's tau), over seeds.

    .venv/bin/python bench/predictor_quality.py [--tables T1,T2,...] [--sizes 25,50,100]
        [--seeds 10] [--out DIR]

Default tables: the committed Zoph and MetaQNN tables, and the NB201 table when it has been
converted (bench/build_table.py nb201; skipped with a note otherwise). Writes
OUT/predictor_quality.json (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from google.protobuf import json_format  # noqa: E402
from scipy import stats  # noqa: E402

from controller_service.codec import space_from_proto  # noqa: E402
from controller_service.predictor import Predictor  # noqa: E402
from controller_service.spaces import Decisions, Space, encode  # noqa: E402
from nasrl.core.arch import parse  # noqa: E402
from nasrl.core.datasets import input_shape  # noqa: E402
from nasrl.core.table import read_table  # noqa: E402
from protos import controller_pb2 as cpb  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_TABLES = (
    ROOT / "bench" / "tables" / "zoph_mnist5k.jsonl.gz",
    ROOT / "bench" / "tables" / "metaqnn_mnist5k.jsonl.gz",
    RESULTS / "nb201_cifar10.jsonl.gz",
)


Network = tuple[Decisions, tuple[int, int], float]  # decisions, (params, flops), accuracy


def load(path: Path) -> tuple[Space, list[Network]]:
    """The table's space and every network: decisions, size and best validation accuracy."""
    table = read_table(path)
    space = space_from_proto(json_format.ParseDict(table.space, cpb.SearchSpace()))
    if space is None:
        raise ValueError(f"{path} names no search space")
    space = space.bind(input_shape(table.dataset))
    networks = [
        (encode(space, parse(text)), (row.params, row.flops), row.best_validation)
        for text, row in sorted(table.primary().items())
    ]
    return space, networks


def quality(space: Space, networks: list[Network], n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    order = list(networks)
    rng.shuffle(order)
    train, rest = order[:n], order[n:]
    predictor = Predictor(space, seed)
    began = time.perf_counter()
    predictor.fit([d for d, _, _ in train], [s for _, s, _ in train], [a for _, _, a in train])
    fit_seconds = time.perf_counter() - began
    mean, _ = predictor.predict([d for d, _, _ in rest], [s for _, s, _ in rest])
    truth = [a for _, _, a in rest]
    return {
        "spearman": float(stats.spearmanr(mean, truth).statistic),
        "kendall": float(stats.kendalltau(mean, truth).statistic),
        "fit_seconds": fit_seconds,
    }


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def run(tables: list[Path], sizes: list[int], seeds: int) -> dict[str, Any]:
    report: dict[str, Any] = {"sizes": sizes, "seeds": seeds, "tables": {}}
    for path in tables:
        if not path.exists():
            print(f"{path.name}: not found, skipped (bench/build_table.py builds it)")
            continue
        space, networks = load(path)
        per: dict[str, Any] = {"networks": len(networks)}
        for n in sizes:
            runs = [quality(space, networks, n, s) for s in range(seeds)]
            per[str(n)] = {k: summarize([r[k] for r in runs]) for k in runs[0]}
        report["tables"][path.name] = per
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"predictor rank quality over {report['seeds']} seeds (mean ± std)")
    print(f"{'table':28} {'results':>7} {'spearman':>15} {'kendall':>15} {'fit s':>7}")
    for name, per in report["tables"].items():
        for n in report["sizes"]:
            q = per[str(n)]
            print(
                f"{name:28} {n:7d} {q['spearman']['mean']:7.3f} ± {q['spearman']['std']:5.3f} "
                f"{q['kendall']['mean']:7.3f} ± {q['kendall']['std']:5.3f} "
                f"{q['fit_seconds']['mean']:7.3f}"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", default=",".join(str(t) for t in DEFAULT_TABLES))
    p.add_argument("--sizes", default="25,50,100")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    report = run(
        [Path(t) for t in args.tables.split(",") if t],
        [int(s) for s in args.sizes.split(",")],
        args.seeds,
    )
    print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predictor_quality.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
