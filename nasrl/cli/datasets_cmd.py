"""Users' datasets on the client side: ``nasrl datasets`` lists what a trainer can train on,
and ``dataset_shape`` reads a user dataset's input shape from the trainers, for CreateSearch
(the controller checks every proposal against it before anything is trained)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from nasrl.core.datasets import DATASET_SHAPES
from nasrl.rpc.client import NasrlError, TrainerClient
from nasrl.rpc.security import add_client_flags, client_security
from protos import controller_pb2 as cpb
from protos import trainer_pb2

__all__ = ["add_datasets_command", "dataset_shape"]

out = Console(highlight=False)


def dataset_shape(clients: list[TrainerClient], name: str) -> cpb.DatasetShape | None:
    """None for a built-in dataset; else the shape the first trainer that serves ``name``
    reports. NasrlError FAILED_PRECONDITION when a trainer has it but cannot use it,
    NOT_FOUND when none has it."""
    if name in DATASET_SHAPES:
        return None
    broken = None
    for client in clients:
        for info in client.list_datasets(name):
            if info.name != name:
                continue
            if info.error:
                broken = f"{client.target}: {info.error}"
                continue
            return cpb.DatasetShape(
                channels=info.channels, height=info.height, width=info.width, classes=info.classes
            )
    if broken:
        raise NasrlError(grpc.StatusCode.FAILED_PRECONDITION, broken)
    raise NasrlError(
        grpc.StatusCode.NOT_FOUND,
        f"dataset {name!r} is not built in ({', '.join(DATASET_SHAPES)}) and no "
        f"trainer in --trainers serves it: put {name}.npz or "
        f"{name}/train/CLASS/*.png in a trainer's --data-dir",
    )


def _row(d: trainer_pb2.DatasetInfo) -> list[str]:
    shape = f"{d.channels}x{d.height}x{d.width}" if d.channels else "-"
    sizes = (
        f"{d.train_examples:,}/{d.validation_examples:,}/{d.test_examples:,}"
        if d.train_examples
        else "-"
    )
    norm = ", ".join(f"{m:.3f}±{s:.3f}" for m, s in zip(d.mean, d.std)) or "-"
    return [d.name, d.source, shape, str(d.classes or "-"), sizes, norm, d.error or d.path or ""]


def cmd_datasets(args: argparse.Namespace) -> int:
    with TrainerClient(args.trainer, security=client_security(args)) as client:
        datasets = client.list_datasets()
    if args.json:
        print(
            json.dumps(
                [json_format.MessageToDict(d, preserving_proto_field_name=True) for d in datasets]
            )
        )
        return 0
    table = Table(title=f"datasets on {args.trainer}")
    for col in ("name", "source", "C×H×W", "classes", "train/val/test", "mean±std", "path / error"):
        table.add_column(col)
    for d in datasets:
        table.add_row(*_row(d))
    out.print(table)
    return 0


def add_datasets_command(sub: Any, trainer_default: str) -> None:
    d = sub.add_parser(
        "datasets",
        help="the datasets a trainer can train on: built-in ones and "
        "users' .npz files and image folders in its --data-dir",
    )
    d.add_argument("--trainer", default=trainer_default, help="HOST:PORT [NASRL_TRAINER]")
    d.add_argument("--json", action="store_true", help="print a JSON list")
    add_client_flags(d)
    d.set_defaults(func=cmd_datasets)
