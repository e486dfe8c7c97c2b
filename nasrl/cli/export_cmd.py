"""``nasrl export SEARCH_ID --format onnx|torchscript|python [--rank N] [--output FILE]``: the
best (or N-th best) network of a search with its trained weights, and the same for
``nasrl search --export-best FILE``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from rich.console import Console

from nasrl.core.datasets import input_shape
from nasrl.core.shapes import InputShape
from nasrl.rpc.client import (
    ControllerClient,
    LeaderboardEntry,
    NasrlError,
    Search,
    TrainerClient,
)
from nasrl.rpc.security import ClientSecurity, add_client_flags, client_security
from nasrl.runner.targets import parse_trainers

if TYPE_CHECKING:
    from nasrl.cli.trained_export import ExportReport

__all__ = ["add_export_command", "check_export_target", "export_entry", "search_image"]

err = Console(stderr=True, highlight=False)
FORMATS = ("python", "onnx", "torchscript")  # nasrl.cli.export_formats.FORMATS (imports torch)


def search_image(search: Search) -> InputShape:
    """The input shape and classes the search's children take."""
    # dataset_shape: filled in by the controller (required for a user's dataset)
    return search.spec.dataset_shape or input_shape(search.spec.dataset)


def check_export_target(path: str, fmt: str | None) -> str:
    """The format to write ``path`` in; raises ValueError (before any work is done) for a
    name that names none or a format whose packages are missing."""
    from nasrl.cli.export_formats import format_for_path, require_onnx

    chosen = format_for_path(path, fmt)
    if chosen == "onnx":
        require_onnx()
    return chosen


def export_entry(
    clients: list[TrainerClient],
    search: Search,
    entry: LeaderboardEntry,
    rank: int,
    path: str | Path,
    fmt: str,
) -> ExportReport:
    """Write leaderboard ``entry`` of ``search`` to ``path`` in ``fmt`` with its weights."""
    from nasrl.cli.trained_export import UntrainedExport, export_trained

    title = (
        f"rank {rank} of search {search.search_id} ({entry.accuracy:.4f} val acc, "
        f"{entry.test_accuracy:.4f} test acc)"
    )
    try:
        return export_trained(
            clients,
            entry.architecture,
            search.spec.dataset,
            search.spec.training,
            path,
            title,
            fmt=fmt,
            image=search_image(search),
        )
    except UntrainedExport as exc:
        raise NasrlError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc


def _clients(spec: str, security: ClientSecurity) -> list[TrainerClient]:
    targets, _ = parse_trainers(spec)  # a dns:/// name: every address it resolves to
    return [TrainerClient(t, security=security) for t in targets]


def cmd_export(args: argparse.Namespace) -> int:
    if args.rank < 1:
        raise ValueError(f"--rank must be 1 or more, got {args.rank}")
    from nasrl.cli.export_formats import default_suffix

    output = args.output or f"search-{args.search_id}-rank{args.rank}{default_suffix(args.format)}"
    fmt = check_export_target(output, args.format)
    security = client_security(args)
    with ControllerClient(args.controller, timeout=args.timeout, security=security) as c:
        search = c.get_search(args.search_id)
        entries = c.leaderboard(args.search_id, top=min(args.rank, 1000))
    if len(entries) < args.rank:
        raise NasrlError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"search {args.search_id} has {len(entries)} result(s), so there is no "
            f"rank {args.rank}; see nasrl leaderboard {args.search_id}",
        )
    clients = _clients(args.trainers, security)
    try:
        report = export_entry(clients, search, entries[args.rank - 1], args.rank, output, fmt)
    finally:
        for client in clients:
            client.close()
    if args.json:
        print(json.dumps(_report_json(report, entries[args.rank - 1])))
    else:
        err.print(f"exported {report.module}: {report.note}", markup=False)
    return 0


def _report_json(report: ExportReport, entry: LeaderboardEntry) -> dict[str, Any]:
    return {
        "path": str(report.module),
        "format": report.format,
        "weights": None if report.weights is None else str(report.weights),
        "retrained_on": report.retrained_on,
        "architecture": entry.architecture,
        "accuracy": entry.accuracy,
        "test_accuracy": entry.test_accuracy,
    }


def add_export_command(sub: Any, controller_default: str) -> None:
    e = sub.add_parser(
        "export",
        help="write a search's best network with its trained weights "
        "as ONNX, TorchScript or a Python module",
    )
    e.add_argument("search_id")
    e.add_argument(
        "--format",
        choices=FORMATS,
        default="python",
        help="python (a module + .pt weights), onnx or torchscript (default python)",
    )
    e.add_argument("--rank", type=int, default=1, help="1 = the best (default), 2 = the runner-up…")
    e.add_argument(
        "--output",
        metavar="FILE",
        help="default search-ID-rankN.py / .onnx / .ts in the current folder",
    )
    e.add_argument("--controller", default=controller_default, help="HOST:PORT [NASRL_CONTROLLER]")
    e.add_argument(
        "--trainers",
        default="127.0.0.1:50052",
        help="trainers to fetch the weights from (or retrain on): HOST:PORT[,...]",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object about the file")
    e.add_argument("--timeout", type=float, default=30.0, help="deadline of controller calls")
    add_client_flags(e)
    e.set_defaults(func=cmd_export)
