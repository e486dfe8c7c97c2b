"""The whole stack on a table: a real controller process, one table trainer process
(``python -m trainer_service --table``) and ``nasrl search --space-from-table``, timed.

    .venv/bin/python bench/table_stack.py --table bench/tables/zoph_mnist5k.jsonl.gz
        [--agents random,reinforce] [--budget 1000] [--slots 16]

Prints, per agent, the wall-clock seconds of the search command (process start to exit, the
controller and trainer already serving), the evaluations it made and evaluations per second;
writes OUT/table_stack.json (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasrl.cli.local import LocalService  # noqa: E402
from nasrl.rpc.client import wait_until_serving  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--agents", default="random,reinforce")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    results: dict[str, object] = {
        "table": str(args.table),
        "budget": args.budget,
        "slots": args.slots,
        "agents": {},
    }
    with tempfile.TemporaryDirectory(prefix="nasrl-table-stack-") as tmp:
        folder = Path(tmp)
        controller = LocalService(
            "controller_service", ["--db", str(folder / "c.db")], log_dir=folder
        )
        trainer = LocalService(
            "trainer_service",
            ["--table", str(args.table), "--slots", str(args.slots)],
            log_dir=folder,
        )
        with controller, trainer:
            for service in (controller, trainer):
                wait_until_serving(service.target, timeout=120)
            for agent in args.agents.split(","):
                began = time.perf_counter()
                r = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "nasrl.cli",
                        "search",
                        "--controller",
                        controller.target,
                        "--trainers",
                        trainer.target,
                        "--slots-per-trainer",
                        str(args.slots),
                        "--agent",
                        agent,
                        "--space-from-table",
                        str(args.table),
                        "--budget",
                        str(args.budget),
                        "--json",
                        "--quiet",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                wall = time.perf_counter() - began
                if r.returncode != 0:
                    raise SystemExit(f"{agent}: nasrl search failed: {r.stderr[-2000:]}")
                summary = json.loads(r.stdout)
                row = {
                    "wall_seconds": round(wall, 2),
                    "evaluated": summary["evaluated"],
                    "cached": summary["cached"],
                    "failed": summary["failed"],
                    "evaluations_per_second": round(summary["evaluated"] / wall, 1),
                    "best": summary["best"],
                }
                results["agents"][agent] = row  # type: ignore[index]
                print(
                    f"{agent:10s} {summary['evaluated']:5d} evaluations "
                    f"({summary['cached']} cached, {summary['failed']} failed) in {wall:6.1f}s "
                    f"= {row['evaluations_per_second']}/s; best "
                    f"{summary['best']['accuracy']:.4f} {summary['best']['arch']}",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table_stack.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
