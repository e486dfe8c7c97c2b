"""``nasrl demo``: start a trainer on loopback, train a few example networks over gRPC and
print a table. Needs no network and no GPU."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from nasrl.client import TrainerClient, wait_until_serving
from nasrl.local import LocalService
from nasrl.results import EpochRecord, TrainSettings

EXAMPLES = [
    "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)",
    "C(24,5,1) P(2,2) C(48,3,1) P(2,2) FC(128) SM(10)",
    "C(16,3,2) C(32,3,1)@[0,1] C(32,5,2)@[0,2] GAP SM(10)",
]

console = Console(highlight=False)


def run_demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    console.print("[bold]nasrl demo[/]: starting a trainer on loopback ...")
    with LocalService("trainer_service", ["--slots", "1"]) as trainer:
        wait_until_serving(trainer.target)
        console.print(f"trainer up at {trainer.target}; training {len(EXAMPLES)} networks "
                      f"on {args.dataset}, {args.epochs} epochs each")
        table = Table(title=f"{args.dataset}, {args.epochs} epochs, trained over gRPC")
        for column in ("architecture", "val acc", "test acc", "params", "MFLOPs", "seconds"):
            table.add_column(column, justify="left" if column == "architecture" else "right")
        with TrainerClient(trainer.target) as client:
            for text in EXAMPLES:
                console.print(f"  {text}")

                def progress(e: EpochRecord) -> None:
                    console.print(f"    epoch {e.epoch}/{e.epochs}: val {e.validation_accuracy:.3f}"
                                  f" ({e.seconds:.1f}s)")

                r = client.train(text, args.dataset, TrainSettings(epochs=args.epochs),
                                 on_epoch=progress)
                table.add_row(r.architecture, f"{r.validation_accuracy:.3f}",
                              f"{r.test_accuracy:.3f}", f"{r.params:,}",
                              f"{r.flops / 1e6:.1f}", f"{r.seconds:.1f}")
    console.print(table)
    console.print(f"demo finished in {time.perf_counter() - began:.0f}s. Next, start a trainer "
                  "yourself and train your own network:\n"
                  "  .venv/bin/python -m trainer_service --port 50052 &\n"
                  '  .venv/bin/nasrl train "C(64,3,1) P(2,2) C(128,3,1) GAP SM(10)" '
                  "--trainer 127.0.0.1:50052 --dataset mnist5k")
    return 0
