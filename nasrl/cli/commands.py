"""Every ``nasrl`` command but ``health`` (see ``nasrl.cli``, which dispatches here).

nasrl train "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)" --trainer HOST:PORT --dataset digits
nasrl demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from nasrl.cli.dashboard_cmd import add_dashboard_command
from nasrl.cli.datasets_cmd import add_datasets_command
from nasrl.cli.demo import add_demo_command
from nasrl.cli.export_cmd import add_export_command
from nasrl.cli.health import add_health_command
from nasrl.cli.search_flags import add_search_commands
from nasrl.core.arch import ArchError, parse
from nasrl.core.results import (
    OPTIMIZERS,
    SCHEDULES,
    EpochRecord,
    SettingsError,
    TrainOutcome,
    TrainSettings,
)
from nasrl.rpc.client import NasrlError, TrainerClient
from nasrl.rpc.security import add_client_flags, client_security

__all__ = ["main"]

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _add_training_flags(p: argparse.ArgumentParser) -> None:
    d = TrainSettings()
    p.add_argument(
        "--dataset",
        default="digits",
        help="digits, mnist5k, mnist, fashion_mnist, "
        "cifar10, cifar100, svhn or a user's dataset in the trainer's --data-dir "
        "(nasrl datasets lists them; default digits)",
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=None, help="default 0.3 for sgd, 0.003 for adam")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--seed", type=int, default=d.seed)


def _settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        seed=args.seed,
    ).validate()


def _print_epoch(e: EpochRecord) -> None:
    err.print(
        f"epoch {e.epoch}/{e.epochs}  loss {e.train_loss:.4f}  train {e.train_accuracy:.4f}  "
        f"val {e.validation_accuracy:.4f}  {e.seconds:.1f}s"
    )


def _print_result(r: TrainOutcome) -> None:
    table = Table(show_header=False, box=None)
    for key, value in [
        ("architecture", r.architecture),
        ("validation accuracy (best)", f"{r.validation_accuracy:.4f}"),
        ("validation accuracy (max last 5)", f"{r.validation_accuracy_last5:.4f}"),
        ("test accuracy", f"{r.test_accuracy:.4f}"),
        ("parameters", f"{r.params:,}"),
        ("FLOPs per image", f"{r.flops:,}"),
        ("seconds", f"{r.seconds:.1f}"),
        ("device", r.device),
    ]:
        table.add_row(key, value)
    out.print(table)


def cmd_train(args: argparse.Namespace) -> int:
    arch = parse(args.arch)
    with TrainerClient(
        args.trainer, timeout=args.timeout, security=client_security(args)
    ) as client:
        result = client.train(
            arch, args.dataset, _settings(args), on_epoch=None if args.quiet else _print_epoch
        )
    if args.json:
        print(json.dumps(result.to_json()))
    elif args.katib:
        _print_katib(result)
    else:
        _print_result(result)
    return 0


def _print_katib(r: TrainOutcome) -> None:
    """``name=value`` lines, what Katib's StdOut metrics collector reads from a trial."""
    for name, value in (
        ("accuracy", r.validation_accuracy),
        ("test_accuracy", r.test_accuracy),
        ("params", r.params),
        ("flops", r.flops),
        ("seconds", round(r.seconds, 3)),
    ):
        print(f"{name}={value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasrl", description="Neural architecture search with reinforcement learning."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one architecture on a trainer")
    t.add_argument("arch", help='architecture text, e.g. "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)"')
    t.add_argument(
        "--trainer",
        default=os.environ.get("NASRL_TRAINER", "127.0.0.1:50052"),
        help="trainer address HOST:PORT [NASRL_TRAINER]",
    )
    _add_training_flags(t)
    t.add_argument("--timeout", type=float, default=3600.0, help="deadline of the call, seconds")
    t.add_argument("--json", action="store_true", help="print one JSON object with the result")
    t.add_argument(
        "--katib",
        action="store_true",
        help="print the result as Katib metrics lines (accuracy=..., test_accuracy=..., "
        "params=..., flops=..., seconds=...): the trial command of deploy/katib",
    )
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    add_client_flags(t)
    t.set_defaults(func=cmd_train)

    add_search_commands(sub, os.environ.get("NASRL_CONTROLLER", "127.0.0.1:50051"))
    add_export_command(sub, os.environ.get("NASRL_CONTROLLER", "127.0.0.1:50051"))
    add_datasets_command(sub, os.environ.get("NASRL_TRAINER", "127.0.0.1:50052"))
    add_dashboard_command(sub, os.environ.get("NASRL_CONTROLLER", "127.0.0.1:50051"))

    add_health_command(sub)

    add_demo_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ArchError, SettingsError, ValueError) as exc:
        print(f"nasrl: error: {exc}", file=sys.stderr)
        return 2
    except NasrlError as exc:
        print(f"nasrl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nasrl: interrupted", file=sys.stderr)
        return 130
