"""What ``nasrl search`` sends to create a search: the space (named, nb201 with its skeleton
and operations, or a tabular benchmark's), the warm start, the constraints."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from nasrl.cli.datasets_cmd import dataset_shape
from nasrl.core import codec
from nasrl.core.errors import ArchError
from nasrl.core.results import TrainSettings
from nasrl.rpc.client import ControllerClient
from nasrl.runner import TrainerPool
from protos import controller_pb2 as cpb

__all__ = ["create_search", "screening", "convergence"]

#: the flags that set up the predictor, by their names in ``args``
_PREDICTOR_FLAGS = {
    "screen_acquisition": "--screen-acquisition",
    "screen_kappa": "--screen-kappa",
    "screen_cold_start": "--screen-cold-start",
    "screen_cold_start_score": "--screen-cold-start-score",
    "screen_refit_every": "--screen-refit-every",
}


def _from_table(path: str) -> tuple[cpb.SearchSpace, str, TrainSettings]:
    """The space, dataset and training settings a tabular benchmark was built with."""
    from google.protobuf import json_format

    from nasrl.core.table import read_table

    table = read_table(path)
    space = json_format.ParseDict(table.space, cpb.SearchSpace())
    return space, table.dataset, TrainSettings(**table.header["training"])


def _space(args: argparse.Namespace) -> cpb.SearchSpace:
    """The space ``--space`` names; for nb201 with ``--skeleton`` and ``--cell-ops``."""
    if args.skeleton is None and args.cell_ops is None:
        return cpb.SearchSpace(name=args.space) if args.space else cpb.SearchSpace()
    if args.space != "nb201":
        raise ValueError("--skeleton and --cell-ops set up the nb201 space: add --space nb201")
    from nasrl.core.cell import CellOp
    from nasrl.core.cell_text import parse_skeleton

    space = cpb.Nb201Space()
    if args.skeleton is not None:
        try:
            skeleton = parse_skeleton(args.skeleton)
        except ArchError as exc:
            raise ValueError(f"--skeleton {args.skeleton!r}: {exc}") from None
        space.skeleton.CopyFrom(codec.skeleton_to_proto(skeleton))
    for name in args.cell_ops.split(",") if args.cell_ops is not None else ():
        try:
            space.ops.append(codec.cell_op_to_proto(CellOp(name.strip())))
        except ValueError:
            names = ", ".join(op.value for op in CellOp)
            raise ValueError(f"--cell-ops: {name.strip()!r} is not one of {names}") from None
    return cpb.SearchSpace(nb201=space)


def create_search(c: ControllerClient, args: argparse.Namespace, pool: TrainerPool) -> str:
    """Create the search the flags describe; its id."""
    space, dataset, settings = _space_and_training(args)
    search = c.create_search(
        agent=codec.agent_spec_to_proto(args.agent, args.agent_values, args.preset),
        space=space,
        dataset=dataset,
        training=codec.settings_to_proto(settings),
        budget=args.budget,
        seed=args.seed,
        name=args.name or f"{args.agent} on {dataset}",
        lease_seconds=args.lease,
        early_stopping=cpb.EarlyStopping(rule=args.early_stopping, eta=args.eta),
        warm_start=_warm_start(args),
        constraints=_constraints(args),
        screening=screening(args),
        dataset_shape=dataset_shape(pool.clients(), dataset),
        evaluation=_evaluation(args),
        convergence=convergence(args),
    )
    return search.search_id


def screening(args: argparse.Namespace) -> cpb.Screening:
    """--screen and its settings; the predictor's unset ones left for the controller to fill
    (GetSearch returns them)."""
    if args.screen != "predictor":
        given = [flag for name, flag in _PREDICTOR_FLAGS.items() if getattr(args, name) is not None]
        if given:
            flags = " and ".join([", ".join(given[:-1]), given[-1]] if given[:-1] else given)
            need = "needs" if len(given) == 1 else "need"
            raise ValueError(f"{flags} {need} --screen predictor")
    msg = cpb.Screening(
        score=args.screen or "",
        factor=args.screen_factor,
        acquisition=args.screen_acquisition or "",
        cold_start_results=args.screen_cold_start or 0,
        cold_start_score=_cold_start_score(args.screen_cold_start_score),
        refit_every=args.screen_refit_every or 0,
    )
    if args.screen_kappa is not None:
        msg.kappa = args.screen_kappa
    return msg


def _cold_start_score(flag: str | None) -> str:
    return "" if flag in (None, "none") else str(flag)


def convergence(args: argparse.Namespace) -> cpb.Convergence:
    """--converged-after, --when-converged, --explore-by and --explore-top (unset: the
    controller's defaults)."""
    return cpb.Convergence(
        patience=args.converged_after or 0,
        action=args.when_converged or "",
        draws=args.explore_by or "",
        top=args.explore_top or 0,
    )


def _evaluation(args: argparse.Namespace) -> cpb.SearchEvaluation:
    shared = args.evaluation == "shared"
    if not shared and (args.shared_steps or args.warmup_children or args.top_k):
        raise ValueError("--shared-steps, --warmup-children and --top-k need --evaluation shared")
    modes = cpb.SearchEvaluation
    return cpb.SearchEvaluation(
        mode=modes.EVALUATION_MODE_SHARED if shared else modes.EVALUATION_MODE_FULL,
        steps=args.shared_steps,
        warmup_children=args.warmup_children,
        top_k=args.top_k,
    )


def _space_and_training(args: argparse.Namespace) -> tuple[cpb.SearchSpace, str, TrainSettings]:
    """The space, dataset and training settings: the flags', or ``--space-from-table``'s."""
    space = _space(args)
    if not args.space_from_table:
        settings = TrainSettings(epochs=3 if args.epochs is None else args.epochs, seed=args.seed)
        return space, args.dataset, settings.validate()
    if args.space or args.skeleton is not None or args.cell_ops is not None:
        raise ValueError("give --space (with its settings) or --space-from-table, not both")
    space, dataset, built = _from_table(args.space_from_table)
    settings = replace(built, epochs=built.epochs if args.epochs is None else args.epochs)
    return space, dataset, settings.validate()


def _warm_start(args: argparse.Namespace) -> cpb.WarmStart:
    """--warm-start SEARCH_ID|FILE: an earlier search, or a file of networks (one per line in
    the text form; blank lines and # comments are skipped)."""
    warm = cpb.WarmStart(pretrain_steps=args.pretrain_steps, top=args.warm_top)
    source = args.warm_start
    if not source:
        return warm
    path = Path(source)
    if path.is_file():
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--warm-start {source}: cannot read it ({exc})") from exc
        archs = [line.split("#", 1)[0].strip() for line in lines]
        warm.architectures.extend(a for a in archs if a)
        if not warm.architectures:
            raise ValueError(f"--warm-start {source}: the file lists no network")
    elif "/" in source or "." in source:
        raise ValueError(
            f"--warm-start {source}: no such file (give a file of networks or a search id)"
        )
    else:
        warm.search_id = source
    return warm


def _constraints(args: argparse.Namespace) -> cpb.Constraints:
    msg = cpb.Constraints(max_params=args.max_params, max_flops=args.max_flops)
    if args.cost:
        msg.cost_metric, msg.cost_target = args.cost, args.cost_target or 0.0
        msg.cost_weight = args.cost_weight
    elif args.cost_target is not None:
        raise ValueError("--cost-target needs --cost params|flops")
    return msg
