"""Sample and Update latency of the controller over real gRPC on loopback, per agent.

    .venv/bin/python bench/controller_latency.py [--rounds 300] [--agents reinforce,random]

Starts a controller process on a temporary database and, from this process, runs ROUNDS of
Sample(1) + Update with a synthetic result (one client, sequential). Prints p50/p99 in ms and
writes bench/results/controller_latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from protos import controller_pb2 as cpb

from nasrl.client import ControllerClient, wait_until_serving
from nasrl.local import LocalService
from nasrl.results import TrainOutcome

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(target: str, agent: str, rounds: int) -> dict[str, float]:
    sample_ms: list[float] = []
    update_ms: list[float] = []
    with ControllerClient(target) as c:
        sid = c.create_search(agent=cpb.AgentSpec(name=agent), dataset="digits",
                              budget=rounds * 2).search_id
        for _ in range(rounds):
            t0 = time.perf_counter()
            batch = c.sample(sid, 1)
            t1 = time.perf_counter()
            sample_ms.append((t1 - t0) * 1000)
            for cand in batch.candidates:
                if cand.cached is None:
                    acc = 0.3 + 0.05 * cand.text.count("3")
                    t2 = time.perf_counter()
                    c.update(sid, cand.id, TrainOutcome(min(acc, 1.0), min(acc, 1.0), 0.5, 1, 1,
                                                        1.0, "cpu", cand.text))
                    update_ms.append((time.perf_counter() - t2) * 1000)
    return {
        "sample_p50_ms": percentile(sample_ms, 0.5), "sample_p99_ms": percentile(sample_ms, 0.99),
        "update_p50_ms": percentile(update_ms, 0.5), "update_p99_ms": percentile(update_ms, 0.99),
        "sample_mean_ms": statistics.fmean(sample_ms), "rounds": rounds,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--agents", default="reinforce,random")
    args = p.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        with LocalService("controller_service", ["--db", f"{tmp}/bench.db"],
                          log_dir=Path(tmp), env={"NASRL_LOG_LEVEL": "WARNING"}) as ctl:
            wait_until_serving(ctl.target)
            for agent in args.agents.split(","):
                report[agent] = measure(ctl.target, agent, args.rounds)
                r = report[agent]
                print(f"{agent:10s} Sample p50 {r['sample_p50_ms']:6.2f} ms  p99 "
                      f"{r['sample_p99_ms']:6.2f} ms | Update p50 {r['update_p50_ms']:6.2f} ms  "
                      f"p99 {r['update_p99_ms']:6.2f} ms  ({args.rounds} rounds)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "controller_latency.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
