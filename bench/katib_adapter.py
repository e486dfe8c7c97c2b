"""GetSuggestions latency of the Katib adapter with thousands of existing trials.

    .venv/bin/python bench/katib_adapter.py [--trials 2000] [--calls 200] [--agent random]

Starts a controller and the adapter as processes, drives one experiment with the Katib-shaped
client (bench/katib_client.py) to TRIALS finished trials, then times CALLS calls that each
send every trial and ask for 3 new ones (as Katib does with parallelTrialCount 3; the 3 are
finished before the next call, so each call also reports 3 results). Then kill -9 and restart
the adapter and time the first call (it re-reports every trial: its cache is gone) and 20
more. Writes bench/results/katib_adapter.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.katib_client import Katib, experiment  # noqa: E402
from nasrl.cli.local import LocalService  # noqa: E402
from protos import katib_api_pb2 as kpb  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _finish_running(katib: Katib) -> None:
    for t in katib.running():
        acc = 0.5 + zlib.crc32(katib.assigned(t).encode()) % 400 / 1000
        katib.finish(t, kpb.TrialStatus.SUCCEEDED, accuracy=acc)


def _timed(katib: Katib, n: int) -> float:
    began = time.perf_counter()
    katib.suggest(n)
    elapsed = time.perf_counter() - began
    _finish_running(katib)
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--agent", default="random")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="nasrl-katib-bench-"))
    with (
        LocalService("controller_service", ["--db", str(folder / "c.db")], folder) as c,
        LocalService("katib_adapter", ["--controller", c.target], folder) as adapter,
    ):
        katib = Katib(
            adapter.target,
            experiment("bench", 1_000_000, 3, {"agent": args.agent, "dataset": "digits"}),
        )
        began = time.perf_counter()
        while len(katib.trials) < args.trials:
            katib.suggest(min(100, args.trials - len(katib.trials)))
            _finish_running(katib)
        build = time.perf_counter() - began
        warm = [_timed(katib, 3) for _ in range(args.calls)]
        adapter.kill()
        adapter.restart()
        cold = _timed(katib, 3)
        after = [_timed(katib, 3) for _ in range(20)]
    report = {
        "agent": args.agent,
        "trials_at_start": args.trials,
        "calls": args.calls,
        "trials_at_end": len(katib.trials),
        "build_seconds": round(build, 1),
        "get_suggestions_ms": {
            "p50": pct(warm, 0.5),
            "p99": pct(warm, 0.99),
            "max": pct(warm, 1.0),
        },
        "after_kill_9_first_call_ms": round(cold * 1000, 1),
        "after_kill_9_next_20_ms": {"p50": pct(after, 0.5), "max": pct(after, 1.0)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "katib_adapter.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
