"""``nasrl search``, ``nasrl leaderboard`` and ``nasrl searches``: the runner with a progress
bar, the leaderboard table, the JSON summary, the plot and the exported best network."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nasrl.cli.datasets_cmd import dataset_shape
from nasrl.core import codec, formats
from nasrl.core.agent_settings import AGENT_SETTINGS, parse_assignments, setting_infos
from nasrl.core.errors import ArchError
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc.client import Candidate, ControllerClient, LeaderboardEntry
from nasrl.rpc.security import add_client_flags, client_security
from nasrl.runner import Runner, RunnerEvents, TrainerPool
from protos import controller_pb2 as cpb

__all__ = ["add_search_commands", "failure_verdict", "SEARCH_FAILED", "agent_setting_help"]

SEARCH_FAILED = 3  # exit code: the search ran, but too many of its children failed

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


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


def _create(c: ControllerClient, args: argparse.Namespace, pool: TrainerPool) -> str:
    dataset = args.dataset
    space = _space(args)
    settings = TrainSettings(epochs=3 if args.epochs is None else args.epochs, seed=args.seed)
    if args.space_from_table:
        if args.space or args.skeleton is not None or args.cell_ops is not None:
            raise ValueError("give --space (with its settings) or --space-from-table, not both")
        space, dataset, built = _from_table(args.space_from_table)
        settings = replace(built, epochs=built.epochs if args.epochs is None else args.epochs)
    settings = settings.validate()
    search = c.create_search(
        agent=codec.agent_spec_to_proto(args.agent, args.agent_values),
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
        screening=cpb.Screening(score=args.screen or "", factor=args.screen_factor),
        dataset_shape=dataset_shape(pool.clients(), dataset),
    )
    return search.search_id


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


def leaderboard_table(entries: list[LeaderboardEntry], title: str) -> Table:
    table = Table(title=title)
    for col in ("#", "architecture", "val acc", "test acc", "params", "MFLOPs", "seconds"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for rank, e in enumerate(entries, start=1):
        table.add_row(
            str(rank),
            e.architecture,
            formats.accuracy(e.accuracy),
            formats.accuracy(e.test_accuracy),
            formats.count(e.params),
            formats.mflops(e.flops),
            formats.seconds(e.seconds),
        )
    return table


class SearchDisplay:
    """The search's progress on ``console`` (default stderr). On a terminal a bar: evaluations
    out of the budget, best so far, trainer-seconds, the running child's epoch. Elsewhere (a
    pipe, a file, a CI log) a bar is drawn once, cut to 80 columns, so instead one full line
    per finished child: ``child 12/20  #17  C(32,3,1) GAP SM(10)  val 0.9512  best 0.9601
    3.2 s on HOST:PORT``. ``done`` and ``best``: the search's so far (a resumed one)."""

    def __init__(
        self,
        c: ControllerClient,
        search_id: str,
        budget: int,
        quiet: bool,
        console: Console | None = None,
        done: int = 0,
        best: float | None = None,
    ) -> None:
        self.c, self.search_id, self.budget = c, search_id, budget
        self.console = console or err
        self.lines = not quiet and not self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]search {task.fields[sid]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[tsec]} trainer-s"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet or self.lines,
            transient=False,
        )
        self.task = self.progress.add_task(
            "search", total=budget, sid=search_id, best="-", tsec="0", note=""
        )
        self.trainer_seconds = 0.0
        self.done, self.best = done, best
        self._last_poll = 0.0
        self._lock = threading.Lock()

    def on_epoch(self, cand: Candidate, target: str, e: EpochRecord) -> None:
        self.progress.update(
            self.task,
            note=f"child {cand.id} on {target}: epoch "
            f"{e.epoch}/{e.epochs} val {e.validation_accuracy:.3f}",
        )

    def on_wait(self, cand: Candidate, target: str, reason: str) -> None:
        self.progress.update(
            self.task, note=f"child {cand.id} waits for a trainer that is up ({target} is down)"
        )

    def on_result(
        self, cand: Candidate, target: str | None, r: TrainOutcome | None, failure: str | None
    ) -> None:
        with self._lock:
            if r is not None and target is not None:
                self.trainer_seconds += r.seconds
            line = self._line(cand, target, r, failure)
        if self.lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif failure:
            self.console.print(f"child {cand.id} failed: {failure}", markup=False)

    def _line(
        self, cand: Candidate, target: str | None, r: TrainOutcome | None, failure: str | None
    ) -> str:
        """One finished child, in full (the lock held)."""
        if r is None:
            self.done += 1
            head = f"child {self.done}/{self.budget}  #{cand.id}  {cand.text}"
            return f"{head}  failed: {_one_line(failure or 'no reason given', 2000)}"
        acc = r.validation_accuracy
        self.best = acc if self.best is None else max(self.best, acc)
        if target is None:  # evaluated before: no budget spent
            head, where = f"cached  #{cand.id}  {cand.text}", "(trained before)"
        else:
            self.done += 1
            head = f"child {self.done}/{self.budget}  #{cand.id}  {cand.text}"
            where = f"{r.seconds:.1f} s on {target}"
        return f"{head}  val {acc:.4f}  best {self.best:.4f}  {where}"

    def tick(self) -> None:
        if self.lines or time.monotonic() - self._last_poll < 1.0:
            return
        self._last_poll = time.monotonic()
        try:
            s = self.c.get_search(self.search_id)
        except Exception:  # noqa: BLE001 - the display waits for the controller like the runner
            return
        self.progress.update(
            self.task,
            completed=s.counts.evaluated + s.counts.failed,
            best=formats.best(None if s.best is None else s.best.accuracy),
            tsec=formats.trainer_seconds(self.trainer_seconds),
        )


def failure_verdict(evaluated: int, failed: int, max_fraction: float) -> str | None:
    """Why a finished search counts as failed (None when it does not): no child trained, or
    more than ``max_fraction`` of the trained-or-failed children failed."""
    done = evaluated + failed
    if evaluated == 0:
        return f"all {failed} children failed" if failed else "no child was trained"
    if failed / done > max_fraction:
        return (
            f"{failed} of {done} children failed ({failed / done:.0%}, more than "
            f"--max-failure-fraction {max_fraction:g})"
        )
    return None


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finish(
    c: ControllerClient,
    pool: TrainerPool,
    args: argparse.Namespace,
    search_id: str,
    stats: Any,
    began: float,
) -> int:
    s = c.get_search(search_id)
    entries = c.leaderboard(search_id, top=1000)
    if args.plot and entries:
        from nasrl.cli.plot import plot_search

        ordered = sorted(entries, key=lambda e: e.candidate_id)
        plot_search(
            [(i, e.accuracy) for i, e in enumerate(ordered, start=1)],
            args.plot,
            f"search {search_id}: {s.spec.agent} on {s.spec.dataset}",
        )
    exported = None
    if args.export_best and entries:
        from nasrl.cli.export_cmd import export_entry

        exported = export_entry(
            pool.clients(), s, entries[0], 1, args.export_best, args.export_format
        )
        err.print(f"exported {exported.module}: {exported.note}", markup=False)
    summary = {
        "search_id": search_id,
        "state": s.state.value,
        "evaluated": s.counts.evaluated,
        "failed": s.counts.failed,
        "cached": s.counts.cached,
        "budget": s.spec.budget,
        "exported": None
        if exported is None
        else {
            "module": str(exported.module),
            "format": exported.format,
            "weights": None if exported.weights is None else str(exported.weights),
            "retrained_on": exported.retrained_on,
        },
        "best": None
        if not entries
        else {
            "arch": entries[0].architecture,
            "accuracy": entries[0].accuracy,
            "test_accuracy": entries[0].test_accuracy,
            "params": entries[0].params,
            "flops": entries[0].flops,
        },
        "trained_this_run": stats.trained,
        "stopped_early_this_run": stats.stopped_early,
        "trainer_seconds_this_run": round(stats.trainer_seconds, 3),
        "per_trainer": dict(stats.per_trainer),
        "wall_seconds": round(time.perf_counter() - began, 3),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        out.print(leaderboard_table(entries[:10], f"search {search_id} — top 10 of {len(entries)}"))
        out.print(
            f"evaluated {s.counts.evaluated}, failed {s.counts.failed}, cached "
            f"{s.counts.cached}; trainer split {dict(stats.per_trainer)}; "
            f"{summary['wall_seconds']:.0f}s"
        )
    verdict = failure_verdict(s.counts.evaluated, s.counts.failed, args.max_failure_fraction)
    if verdict is None:
        return 0
    last = f"; last failure: {_one_line(stats.last_failure)}" if stats.last_failure else ""
    print(f"nasrl: error: search {search_id}: {verdict}{last}", file=sys.stderr)
    return SEARCH_FAILED


def cmd_search(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    if args.agent_setting and args.resume:
        raise ValueError("--agent-setting sets up a new search; a --resume keeps its settings")
    # checked here, before any connection: a bad name or value fails at once
    args.agent_values = parse_assignments(args.agent, args.agent_setting)
    if not 0.0 <= args.max_failure_fraction <= 1.0:
        raise ValueError(
            f"--max-failure-fraction must be between 0 and 1, not {args.max_failure_fraction:g}"
        )
    if args.export_best:  # a bad name or a missing package fails now, not after the search
        from nasrl.cli.export_cmd import check_export_target

        args.export_format = check_export_target(args.export_best, args.export_format)
    security = client_security(args)
    pool = TrainerPool(args.trainers, args.slots_per_trainer, security=security)
    with ControllerClient(args.controller, timeout=args.timeout, security=security) as c:
        search_id = args.resume or _create(c, args, pool)
        s = c.get_search(search_id)
        display = SearchDisplay(
            c,
            search_id,
            s.spec.budget,
            args.quiet or args.json,
            done=s.counts.evaluated + s.counts.failed,
            best=None if s.best is None else s.best.accuracy,
        )
        stopping = s.spec.early_stopping not in ("", "none")
        runner = Runner(
            c,
            pool,
            search_id,
            RunnerEvents(
                on_epoch=display.on_epoch, on_result=display.on_result, on_wait=display.on_wait
            ),
            retries=args.retries,
            controller_wait=args.controller_wait,
            early_stopping=stopping,
            trainer_wait=args.trainer_wait,
        )
        if args.resume:
            runner.reclaim(max(pool.total_slots(), s.counts.in_flight))
        try:
            with display.progress:
                stats = runner.run(tick=display.tick)
            return _finish(c, pool, args, search_id, stats, began)
        except KeyboardInterrupt:
            runner.stop()
            err.print(
                f"interrupted: running children were cancelled and nothing half-written; "
                f"continue with --resume {search_id}"
            )
            return 130
        finally:
            pool.close()


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with ControllerClient(
        args.controller, timeout=args.timeout, security=client_security(args)
    ) as c:
        entries = c.leaderboard(args.search_id, top=args.top, pareto=args.pareto or "")
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "candidate_id": e.candidate_id,
                        "arch": e.architecture,
                        "accuracy": e.accuracy,
                        "test_accuracy": e.test_accuracy,
                        "params": e.params,
                        "flops": e.flops,
                        "seconds": e.seconds,
                    }
                    for e in entries
                ]
            )
        )
    else:
        out.print(leaderboard_table(entries, f"search {args.search_id}"))
    return 0


def cmd_searches(args: argparse.Namespace) -> int:
    with ControllerClient(
        args.controller, timeout=args.timeout, security=client_security(args)
    ) as c:
        searches = c.list_searches()
    table = Table(title=f"searches on {args.controller}")
    for col in ("id", "name", "agent", "dataset", "state", "evaluated", "budget", "best"):
        table.add_column(col)
    for s in searches:
        best = formats.best(None if s.best is None else s.best.accuracy)
        table.add_row(
            s.search_id,
            s.name,
            s.spec.agent,
            s.spec.dataset,
            s.state.value,
            str(s.counts.evaluated),
            str(s.spec.budget),
            best,
        )
    out.print(table)
    return 0


def agent_setting_help() -> str:
    """--agent-setting's help: every agent's settings, from their settings classes."""
    names = "; ".join(
        f"{agent}: {', '.join(i.name for i in setting_infos(cls))}"
        for agent, cls in AGENT_SETTINGS.items()
    )
    return (
        "a setting of the agent, NAME=VALUE (repeatable; unset ones take their defaults), "
        f"e.g. --agent-setting layers_step=0. {names}. `nasrl agents` lists their defaults "
        "and ranges"
    )


def cmd_agents(args: argparse.Namespace) -> int:
    rows = [
        {
            "agent": agent,
            "setting": i.name,
            "type": i.kind.__name__,
            "default": i.default,
            "range": i.range,
            "help": i.help,
        }
        for agent, cls in AGENT_SETTINGS.items()
        for i in setting_infos(cls)
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title="agents and their settings (nasrl search --agent A --agent-setting N=V)")
    for col in ("agent", "setting", "default", "range", "what"):
        table.add_column(col)
    for agent, cls in AGENT_SETTINGS.items():
        for i in setting_infos(cls):
            table.add_row(agent, i.name, i.default_text, i.range, i.help)
    out.print(table)
    return 0


def add_search_commands(sub: Any, controller_default: str) -> None:
    s = sub.add_parser("search", help="run a whole search over a controller and trainers")
    s.add_argument("--controller", default=controller_default, help="HOST:PORT [NASRL_CONTROLLER]")
    s.add_argument(
        "--trainers",
        default="127.0.0.1:50052",
        help="HOST:PORT[,HOST:PORT...] or dns:///NAME:PORT (every address it resolves to)",
    )
    s.add_argument("--agent", default="reinforce", choices=tuple(AGENT_SETTINGS))
    s.add_argument(
        "--agent-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=agent_setting_help(),
    )
    s.add_argument(
        "--space",
        choices=("zoph", "metaqnn", "nb201"),
        default=None,
        help="search space (default: the agent's own); nb201 is NAS-Bench-201's cell space",
    )
    s.add_argument(
        "--skeleton",
        metavar="C=16,N=5,S=3",
        default=None,
        help="nb201: the skeleton every child is built on, the values that differ from "
        "NAS-Bench-201's (stem channels C, cells per stage N, stages S), e.g. N=1",
    )
    s.add_argument(
        "--cell-ops",
        metavar="OP,OP,...",
        default=None,
        help="nb201: the operations an edge may take (default all five: none, skip_connect, "
        "nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)",
    )
    s.add_argument(
        "--space-from-table",
        metavar="TABLE",
        help="search the space of a tabular benchmark (bench/build_table.py) on its "
        "dataset with its training settings; pair with trainers started with --table",
    )
    s.add_argument("--dataset", default="digits")
    s.add_argument("--budget", type=int, default=20, help="children to train")
    s.add_argument(
        "--epochs", type=int, default=None, help="epochs per child (default 3, or the table's)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--early-stopping",
        choices=("none", "median", "asha"),
        default="none",
        help="stop children early by the controller's rule (default none, as the "
        "papers); each epoch is reported with Report and a STOP ends the child",
    )
    s.add_argument("--eta", type=int, default=3, help="asha's reduction factor (default 3)")
    s.add_argument(
        "--warm-start",
        metavar="SEARCH_ID|FILE",
        help="start from an earlier search (its results are reused, its best are "
        "priors) or from a file of networks, one per line (trained first)",
    )
    s.add_argument(
        "--warm-top",
        type=int,
        default=10,
        help="how many of the earlier search's best become priors (default 10)",
    )
    s.add_argument(
        "--pretrain-steps",
        type=int,
        default=50,
        help="reinforce: likelihood steps on the priors (default 50)",
    )
    s.add_argument(
        "--max-params",
        type=int,
        default=0,
        help="reject networks with more parameters before training (no budget spent)",
    )
    s.add_argument("--max-flops", type=int, default=0, help="the same for FLOPs")
    s.add_argument(
        "--cost",
        choices=("params", "flops"),
        help="cost-aware reward: reward x (cost / --cost-target)^--cost-weight",
    )
    s.add_argument("--cost-target", type=float, default=None)
    s.add_argument(
        "--cost-weight",
        type=float,
        default=-0.07,
        help="exponent of the cost term (default -0.07, MnasNet)",
    )
    s.add_argument(
        "--screen",
        choices=("synflow", "params", "flops"),
        help="training-free screening: of --screen-factor proposals per child, "
        "train only the best by this score at initialisation",
    )
    s.add_argument(
        "--screen-factor",
        type=int,
        default=4,
        help="proposals scored per child trained (default 4)",
    )
    s.add_argument("--name", default="")
    s.add_argument(
        "--lease",
        type=float,
        default=3600.0,
        help="seconds before an unreported child is handed out again",
    )
    s.add_argument("--slots-per-trainer", type=int, default=1)
    s.add_argument(
        "--retries",
        type=int,
        default=3,
        help="tries per child on trainers that answer with an error (a trainer that is "
        "down costs none: the child waits for one that is up)",
    )
    s.add_argument(
        "--max-failure-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="exit with code 3 when more than this fraction of the children failed, "
        "or when every child failed (default 0.5)",
    )
    s.add_argument(
        "--controller-wait",
        type=float,
        default=600.0,
        help="seconds to wait for an unreachable controller before giving up",
    )
    s.add_argument(
        "--trainer-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds with every trainer down before the search stops with an error "
        "(default 300); the children in flight stay leased for --resume",
    )
    s.add_argument("--resume", metavar="SEARCH_ID", help="continue this search")
    s.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    s.add_argument("--plot", metavar="FILE.png", help="accuracy per child and best so far")
    s.add_argument(
        "--export-best",
        metavar="FILE",
        help="the best network with its trained weights (retrained if no trainer "
        "still holds them): FILE.py, a standalone PyTorch module with FILE.pt beside "
        "it; FILE.onnx; or FILE.pt/.ts, TorchScript (see nasrl export)",
    )
    s.add_argument(
        "--export-format",
        choices=("python", "onnx", "torchscript"),
        help="the format of --export-best (default: from its suffix)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--timeout", type=float, default=30.0, help="deadline of controller calls")
    add_client_flags(s)
    s.set_defaults(func=cmd_search)

    lb = sub.add_parser("leaderboard", help="the best results of a search")
    lb.add_argument("search_id")
    lb.add_argument("--controller", default=controller_default)
    lb.add_argument("--top", type=int, default=10)
    lb.add_argument(
        "--pareto",
        choices=("params", "flops"),
        help="the accuracy/cost Pareto front instead of the most accurate",
    )
    lb.add_argument("--json", action="store_true")
    lb.add_argument("--timeout", type=float, default=30.0)
    add_client_flags(lb)
    lb.set_defaults(func=cmd_leaderboard)

    ag = sub.add_parser("agents", help="every agent and its settings: defaults and ranges")
    ag.add_argument("--json", action="store_true", help="one JSON list of settings")
    ag.set_defaults(func=cmd_agents)

    ls = sub.add_parser("searches", help="every search on a controller")
    ls.add_argument("--controller", default=controller_default)
    ls.add_argument("--timeout", type=float, default=30.0)
    add_client_flags(ls)
    ls.set_defaults(func=cmd_searches)
