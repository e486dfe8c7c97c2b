"""Early stopping with real training: the same random search on mnist5k run twice through a
local controller and trainers — without early stopping and with ASHA — reporting the
trainer-seconds each spent and the best network each found.

    .venv/bin/python bench/real_early_stopping.py [--budget 60] [--epochs 9] [--trainers 2]
        [--rules none,asha] [--seed 0] [--out DIR]

The space is the Zoph table's (filter sizes 1/3, strides 1/2, filters 8/16, up to 2 layers);
each trainer has one slot (one child at a time, one CPU core). With 9 epochs ASHA (eta 3) has
rungs at epochs 1 and 3. Both runs use the same seed, so they propose the same networks until
their learning diverges (random search never learns: the same networks, in the same order).
Writes OUT/real_early_stopping.json (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasrl.cli.local import LocalService  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def run(rule: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    services = [
        LocalService("controller_service", ["--db", str(folder / f"{rule}.db")], log_dir=folder)
    ]
    services += [
        LocalService("trainer_service", ["--slots", "1"], log_dir=folder)
        for _ in range(args.trainers)
    ]
    try:
        for s in services:
            s.start()
        controller, trainers = services[0].target, [s.target for s in services[1:]]
        began = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "nasrl.cli",
                "search",
                "--controller",
                controller,
                "--trainers",
                ",".join(trainers),
                "--agent",
                "random",
                "--dataset",
                "mnist5k",
                "--space-from-table",
                str(ROOT / "bench" / "tables" / "zoph_mnist5k.jsonl.gz"),
                "--epochs",
                str(args.epochs),
                "--budget",
                str(args.budget),
                "--seed",
                str(args.seed),
                "--early-stopping",
                rule,
                "--json",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - began
    finally:
        for s in services:
            s.stop()
    if r.returncode != 0:
        raise SystemExit(f"search with --early-stopping {rule} failed:\n{r.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(r.stdout)
    summary["wall_seconds_measured"] = wall
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=60)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--trainers", type=int, default=2)
    p.add_argument("--rules", default="none,asha")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="nasrl-real-es-"))
    runs = {rule: run(rule, args, folder) for rule in args.rules.split(",")}
    base = runs.get("none")
    print(
        f"random search on mnist5k, {args.budget} children of {args.epochs} epochs, "
        f"{args.trainers} trainers with one slot each"
    )
    print(
        f"{'rule':8s} {'trainer-s':>10s} {'vs none':>8s} {'wall s':>7s} {'stopped':>8s} "
        f"{'best val':>9s} {'its test':>9s}  best network"
    )
    for rule, s in runs.items():
        ratio = s["trainer_seconds_this_run"] / base["trainer_seconds_this_run"] if base else 1.0
        best = s["best"]
        print(
            f"{rule:8s} {s['trainer_seconds_this_run']:10.0f} {ratio:7.2f}x "
            f"{s['wall_seconds']:7.0f} {s['stopped_early_this_run']:8d} "
            f"{best['accuracy']:9.4f} {best['test_accuracy']:9.4f}  {best['arch']}"
        )
    report = {
        "budget": args.budget,
        "epochs": args.epochs,
        "trainers": args.trainers,
        "seed": args.seed,
        "runs": runs,
        "command": "python bench/real_early_stopping.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_early_stopping.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
