"""Search efficiency of the agents with real training, at the same budget in trainer-seconds.

    .venv/bin/python bench/search_efficiency.py --quick      # what `make bench` runs
    .venv/bin/python bench/search_efficiency.py [--datasets digits,mnist5k]
        [--agents reinforce,qlearning,random,evolution,tpe] [--seeds 3]
        [--trainer-seconds 60 | --trainer-seconds digits=40,mnist5k=60] [--epochs 1] [--out DIR]

Starts one controller and two trainers (one CPU thread each) on loopback. For every dataset,
agent and seed it runs a search with two workers (one per trainer; nasrl's agents through
``nasrl.runner``, as ``nasrl search`` does) until the trained children's summed
``TrainOutcome.seconds`` (trainer-seconds) reaches the budget; then stops the search.

* reinforce, random and evolution search the same small Zoph space (4 layers: filter sizes
  1/3/5, strides 1/2, 8/16/24 filters, skip connections). qlearning cannot search a Zoph space:
  it searches a small MetaQNN space (conv filters 8/16/24, FC 64/32, depth <= 5), so its
  numbers compare budgets, not spaces. Its epsilon schedule is fitted to the number of children
  the budget is expected to buy (from a few warm-up trainings), as its default fits it to a
  child budget.
* tpe is Optuna's TPESampler (benchmark-only dependency, ``pip install -e '.[bench]'``) over
  the same Zoph decisions (five categorical indices per layer and the skip bits), decoded with
  ``ZophSpace.decode`` and trained by the same trainers. Like the controller, it never trains a
  network twice (it tells the stored value) and waits for a twin that is in flight.
* dedup savings: a candidate answered from the search's results costs no training; the saved
  trainer-seconds are the stored result's ``seconds``.

Metrics per run are taken at exactly the budget B: the best validation accuracy among the
children whose completion kept the cumulative trainer-seconds <= B (the child that crosses B
still trains and is recorded, but counts only in the trajectory), and the test accuracy of that
child. "Seconds to random's best": the target is the mean over seeds of random search's final
best validation accuracy on that dataset; a run reaches it at the cumulative trainer-seconds
where its best-so-far first is >= the target (within B), else "not reached".

Writes OUT/search_efficiency.json and OUT/search_efficiency.png (OUT: bench/results). This
file is the command line; the benchmark's parts are in bench/efficiency/, one module per
concern.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.efficiency.output import plot, settings_report  # noqa: E402
from bench.efficiency.runs import bench_dataset  # noqa: E402
from bench.efficiency.settings import AGENTS, DATASETS  # noqa: E402
from bench.efficiency.trainers import local_services  # noqa: E402
from nasrl.core.datasets import input_shape  # noqa: E402
from nasrl.core.results import TrainSettings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: trainer-seconds per run of --quick (what `make bench` runs)
QUICK_SECONDS = {"digits": 20.0, "mnist5k": 30.0}
#: trainer-seconds per run without --quick or --trainer-seconds
FULL_SECONDS = {"digits": 60.0, "mnist5k": 120.0}


def parse_budgets(text: str | None, datasets: Sequence[str], quick: bool) -> dict[str, float]:
    base = QUICK_SECONDS if quick else FULL_SECONDS
    budgets = {d: base.get(d, 60.0) for d in datasets}
    if text:
        for part in text.split(","):
            name, sep, value = part.rpartition("=")
            if sep:
                budgets[name.strip()] = float(value)
            else:
                budgets = {d: float(value) for d in datasets}
    for d, b in budgets.items():
        if not b > 0:
            raise SystemExit(f"--trainer-seconds for {d} must be positive, got {b}")
    return {d: budgets[d] for d in datasets}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Search efficiency of nasrl's agents and Optuna's TPE at equal "
        "trainer-seconds, with real training."
    )
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per agent (default 3)")
    p.add_argument(
        "--trainer-seconds",
        default=None,
        help="budget per run: one number, or DATASET=S,...; default "
        f"{FULL_SECONDS} ({QUICK_SECONDS} with --quick)",
    )
    p.add_argument("--epochs", type=int, default=1, help="epochs per child (default 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the settings `make bench` uses: a few minutes on 2 cores",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help=f"output folder (default {RESULTS})")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    for a in agents:
        if a not in AGENTS:
            raise SystemExit(f"unknown agent {a!r}; choose from {', '.join(AGENTS)}")
    for d in datasets:
        input_shape(d)
    if args.seeds < 1 or args.epochs < 1:
        raise SystemExit("--seeds and --epochs must be at least 1")
    skipped: dict[str, str] = {}
    if "tpe" in agents:
        try:
            import optuna  # noqa: F401
        except ImportError:
            skipped["tpe"] = (
                "optuna is not installed (pip install -e '.[bench]'); the tpe agent is skipped"
            )
            print(f"note: {skipped['tpe']}", file=sys.stderr)
            agents.remove("tpe")
    budgets = parse_budgets(args.trainer_seconds, datasets, args.quick)
    seeds = list(range(args.seeds))
    settings = TrainSettings(epochs=args.epochs)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "settings": settings_report(
            datasets, agents, skipped, seeds, budgets, args.quick, settings
        ),
        "datasets": {},
    }
    with local_services() as services:
        for dataset in datasets:
            report["datasets"][dataset] = bench_dataset(
                services, dataset, agents, seeds, budgets[dataset], settings
            )
    report["wall_seconds"] = time.perf_counter() - began
    json_path, png_path = out / "search_efficiency.json", out / "search_efficiency.png"
    json_path.write_text(json.dumps(report, indent=1))
    plot(report, png_path)
    for name in skipped.values():
        print(f"note: {name}")
    if "qlearning" in agents:
        print(
            "note: qlearning searches the MetaQNN space (it cannot search the Zoph space); "
            "the others search the same Zoph space."
        )
    print(f"\nwrote {json_path} and {png_path} in {report['wall_seconds']:.0f}s wall")
    return report


if __name__ == "__main__":
    main()
