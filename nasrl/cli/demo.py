"""``nasrl demo``: a whole search on one machine, no Docker, no network, no GPU.

Starts a controller and two trainers as local processes on free loopback ports, runs a small
search on the embedded ``mnist5k`` (a few minutes on 2 CPU cores), prints the leaderboard,
writes the plot and the best network, shuts everything down and says what to try next.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console

from nasrl.cli.local import LocalService
from nasrl.cli.plot import plot_search
from nasrl.cli.search_display import SearchDisplay, leaderboard_table
from nasrl.cli.trained_export import export_trained
from nasrl.core import codec
from nasrl.core.agent_settings import AGENT_SETTINGS
from nasrl.core.results import TrainSettings
from nasrl.rpc.client import ControllerClient, wait_until_serving
from nasrl.runner import Runner, RunnerEvents, TrainerPool
from protos import controller_pb2 as cpb

__all__ = ["run_demo", "DEMO_SPACES"]

console = Console(highlight=False)

#: small spaces so that a CPU-only demo finishes in minutes
DEMO_SPACES = {
    "zoph": cpb.SearchSpace(
        zoph=cpb.ZophSpace(
            filter_sizes=[1, 3, 5], strides=[1, 2], filters=[8, 16, 24], max_layers=4
        )
    ),
    "metaqnn": cpb.SearchSpace(
        metaqnn=cpb.MetaQNNSpace(conv_filters=[8, 16, 32], fc_units=[64, 32], max_depth=6)
    ),
}


def _services(folder: Path, db: Path) -> tuple[LocalService, list[LocalService]]:
    controller = LocalService("controller_service", ["--db", str(db)], log_dir=folder)
    # Two trainers share the cores (one thread each) instead of fighting over them.
    threads = str(max(1, (os.cpu_count() or 2) // 2))
    trainers = [
        LocalService("trainer_service", ["--device", "cpu", "--threads", threads], log_dir=folder)
        for _ in range(2)
    ]
    return controller, trainers


def run_demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    space_name = "metaqnn" if args.agent == "qlearning" else "zoph"
    with tempfile.TemporaryDirectory(prefix="nasrl-demo-") as tmp:
        # the database stays in the output folder: `nasrl dashboard` can show the search
        controller, trainers = _services(Path(tmp), out / "demo.db")
        console.print("[bold]nasrl demo[/]: starting a controller and two trainers on loopback ...")
        with controller:
            for t in trainers:
                t.start()
            try:
                for service in (controller, *trainers):
                    wait_until_serving(service.target, timeout=60)
                return _search(
                    args, controller.target, [t.target for t in trainers], space_name, out, began
                )
            finally:
                for t in trainers:
                    t.stop()


def _search(
    args: argparse.Namespace,
    controller: str,
    trainers: list[str],
    space_name: str,
    out: Path,
    began: float,
) -> int:
    console.print(
        f"controller {controller}, trainers {', '.join(trainers)}; searching with "
        f"[bold]{args.agent}[/] on {args.dataset}: {args.budget} children, "
        f"{args.epochs} epoch(s) each"
    )
    settings = TrainSettings(epochs=args.epochs)
    with ControllerClient(controller) as c:
        sid = c.create_search(
            agent=cpb.AgentSpec(name=args.agent),
            space=DEMO_SPACES[space_name],
            dataset=args.dataset,
            training=codec.settings_to_proto(settings),
            budget=args.budget,
            seed=args.seed,
            name="nasrl demo",
        ).search_id
        pool = TrainerPool(",".join(trainers))
        display = SearchDisplay(c, sid, args.budget, quiet=False)
        runner = Runner(c, pool, sid, RunnerEvents(display.on_epoch, display.on_result))
        try:
            with display.progress:
                stats = runner.run(tick=display.tick)
            entries = c.leaderboard(sid, top=1000)
            best = out / "best.py"
            exported = export_trained(
                pool.clients(),
                entries[0].architecture,
                args.dataset,
                settings,
                best,
                title=f"best of the nasrl demo ({entries[0].accuracy:.4f} val acc)",
            )
        except KeyboardInterrupt:
            runner.stop()
            console.print("interrupted")
            return 130
        finally:
            pool.close()
    console.print(leaderboard_table(entries[:10], f"nasrl demo — top 10 of {len(entries)}"))
    ordered = sorted(entries, key=lambda e: e.candidate_id)
    plot = out / "search.png"
    plot_search(
        [(i, e.accuracy) for i, e in enumerate(ordered, start=1)],
        plot,
        f"nasrl demo: {args.agent} on {args.dataset}",
    )
    console.print(
        f"trained {stats.trained} children ({stats.trainer_seconds:.0f} trainer-seconds; split "
        f"{dict(stats.per_trainer)}) in {time.perf_counter() - began:.0f}s wall.\n"
        f"plot: {plot}   best network (standalone PyTorch): {best}\n{exported.note}\n\n"
        "Next:\n"
        f"  .venv/bin/python -m controller_service --port 50051 --db {out / 'demo.db'} &\n"
        "  .venv/bin/nasrl dashboard --controller 127.0.0.1:50051   "
        "# this search in a browser: http://127.0.0.1:8080/\n"
        "  .venv/bin/python -m controller_service --port 50051 --db nasrl.db &\n"
        "  .venv/bin/python -m trainer_service --port 50052 &\n"
        "  .venv/bin/nasrl search --controller 127.0.0.1:50051 --trainers 127.0.0.1:50052 "
        "--agent qlearning --dataset digits --budget 20 --epochs 2 --plot search.png\n"
        "  .venv/bin/nasrl searches --controller 127.0.0.1:50051\n"
        f"  (or: nasrl demo --agent qlearning; docker compose up --scale trainer=4, see README)"
    )
    return 0


def add_demo_command(sub: object) -> None:
    d = sub.add_parser("demo", help="a whole search on this machine: controller + 2 trainers")  # type: ignore[attr-defined]
    d.add_argument("--agent", default="reinforce", choices=tuple(AGENT_SETTINGS))
    d.add_argument("--dataset", default="mnist5k")
    d.add_argument("--budget", type=int, default=20)
    d.add_argument("--epochs", type=int, default=2)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--output",
        default=os.environ.get("NASRL_DEMO_OUTPUT", "demo-output"),
        help="folder for the plot and the best network (default demo-output)",
    )
    d.set_defaults(func=run_demo)
