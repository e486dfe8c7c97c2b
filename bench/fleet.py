"""Fleet utilisation with simulated trainers: can one controller and one runner keep 8 … 800
trainers busy (Zoph & Le ran 800)?

    .venv/bin/python bench/fleet.py [--sizes 8,64,256,800] [--agents random,reinforce]
                                    [--child-seconds 5] [--window 30] [--out bench/results]

For each fleet size N and agent: one controller process, ceil(N / 200) trainer processes in
``--simulate`` mode (SIMULATION: each child sleeps ``--child-seconds`` and gets a surrogate
accuracy, see trainer_service/simulate.py) with N slots in all, and an in-process runner with one
worker per slot. Utilisation = busy trainer time / (N × wall time) in the steady state (a
window after the first wave): the children whose Train call is running, counted every 50 ms
and averaged, / N (a count of children finished in the window would swing with the phase of
the waves that equal-length children make). The controller's intake is counted apart:
results it accepted (Update) per second in the window, and the results trained but still
waiting in the runner for their Update when the window closes (a backlog that grows means
the controller, not the fleet, is the limit). CPU use of the controller, the trainers and the runner (percent of one core) shows
which one is the bottleneck. Writes bench/results/fleet.json and fleet.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from nasrl.cli.local import LocalService
from nasrl.core.results import EpochRecord, TrainOutcome
from nasrl.rpc.client import Candidate, ControllerClient, wait_until_serving
from nasrl.runner import Runner, RunnerEvents, TrainerPool
from protos import controller_pb2 as cpb

RESULTS = Path(__file__).resolve().parent / "results"
SLOTS_PER_PROCESS = 200
SPACE = cpb.SearchSpace(
    zoph=cpb.ZophSpace(filter_sizes=[1, 3, 5], strides=[1, 2], filters=[8, 16, 24], max_layers=4)
)
METAQNN = cpb.SearchSpace(name="metaqnn")  # the paper's space (Q-learning searches no other)


def _pid(service: LocalService) -> int:
    assert service.process is not None, "the service was started"
    return service.process.pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(n: int, agent: str, child_seconds: float, window: float, tmp: Path) -> dict[str, Any]:
    procs = math.ceil(n / SLOTS_PER_PROCESS)
    slots = math.ceil(n / procs)
    quiet = {"NASRL_LOG_LEVEL": "WARNING"}
    controller = LocalService(
        "controller_service",
        ["--db", str(tmp / f"{agent}-{n}.db"), "--workers", "64"],
        log_dir=tmp,
        env=quiet,
    )
    trainers = [
        LocalService(
            "trainer_service",
            ["--simulate", str(child_seconds), "--slots", str(slots)],
            log_dir=tmp,
            env=quiet,
        )
        for _ in range(procs)
    ]
    trained: list[float] = []  # when a child's last epoch came back
    reported: list[float] = []  # when the controller accepted its result
    lock = threading.Lock()
    busy = [0]  # Train calls running now (a simulated child never fails: each one ends)
    busy_seen: list[int] = []  # sampled in the window

    def on_start(c: Candidate, target: str) -> None:
        with lock:
            busy[0] += 1

    def on_epoch(c: Candidate, target: str, e: EpochRecord) -> None:
        if e.epoch == e.epochs:
            with lock:
                trained.append(time.monotonic())
                busy[0] -= 1

    def on_result(c: Candidate, target: str | None, r: TrainOutcome | None, f: str | None) -> None:
        if r is not None and target is not None:
            with lock:
                reported.append(time.monotonic())

    try:
        for s in (controller, *trainers):
            s.start()
            wait_until_serving(s.target, timeout=60)
        with ControllerClient(controller.target, timeout=60) as c:
            sid = c.create_search(
                agent=cpb.AgentSpec(name=agent),
                dataset="digits",
                budget=1_000_000,
                space=METAQNN if agent == "qlearning" else SPACE,
            ).search_id
            pool = TrainerPool(",".join(t.target for t in trainers), slots_per_trainer=slots)
            runner = Runner(
                c,
                pool,
                sid,
                RunnerEvents(on_epoch=on_epoch, on_result=on_result, on_start=on_start),
            )
            thread = threading.Thread(target=runner.run, daemon=True)
            pids = {
                "controller": [_pid(controller)],
                "trainers": [_pid(t) for t in trainers],
            }
            began = time.monotonic()
            thread.start()
            warm = began + child_seconds + 2.0  # the first wave has started and ended
            time.sleep(max(0.0, warm - time.monotonic()))
            cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            runner_cpu0 = time.process_time()
            end = time.monotonic() + window
            while (now := time.monotonic()) < end:
                with lock:
                    busy_seen.append(busy[0])
                time.sleep(min(0.05, end - now))
            end = time.monotonic()
            cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            runner_cpu1 = time.process_time()
            runner.stop()
            thread.join(60)
            pool.close()
        with lock:
            done = [t for t in trained if warm <= t <= end]
            accepted = [t for t in reported if warm <= t <= end]
            waiting = sum(t <= end for t in trained) - sum(t <= end for t in reported)
        span = end - warm
        return {
            "trainers": n,
            "agent": agent,
            "child_seconds": child_seconds,
            "trainer_processes": procs,
            "window_seconds": round(span, 2),
            "children_in_window": len(done),
            "utilisation": round(sum(busy_seen) / len(busy_seen) / n, 4),
            "trained_per_second": round(len(done) / span, 2),
            "results_per_second": round(len(accepted) / span, 2),  # accepted by the controller
            "updates_waiting_at_end": waiting,
            "cpu_percent": {
                "controller": round(100 * (cpu1["controller"] - cpu0["controller"]) / span, 1),
                "trainers": round(100 * (cpu1["trainers"] - cpu0["trainers"]) / span, 1),
                "runner": round(100 * (runner_cpu1 - runner_cpu0) / span, 1),
            },
        }
    finally:
        for s in (controller, *trainers):
            s.kill()


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for agent in sorted({r["agent"] for r in rows}):
        mine = [r for r in rows if r["agent"] == agent]
        ax.plot(
            [r["trainers"] for r in mine], [100 * r["utilisation"] for r in mine], "o-", label=agent
        )
    ax.axhline(95, color="grey", linestyle="--", label="target 95 %")
    ax.set_xscale("log")
    ax.set_xlabel("simulated trainers")
    ax.set_ylabel("utilisation (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"SIMULATION: fleet utilisation, {rows[0]['child_seconds']:g} s children")
    ax.legend()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="fleet utilisation with simulated trainers")
    p.add_argument("--sizes", default="8,64,256,800")
    p.add_argument("--agents", default="random,reinforce")
    p.add_argument("--child-seconds", type=float, default=5.0)
    p.add_argument("--window", type=float, default=30.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nasrl-fleet-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            for agent in args.agents.split(","):
                row = run_one(n, agent, args.child_seconds, args.window, Path(tmp))
                rows.append(row)
                cpu = row["cpu_percent"]
                print(
                    f"SIMULATION {agent:9s} {n:4d} trainers: utilisation "
                    f"{100 * row['utilisation']:5.1f} %  {row['results_per_second']:6.1f} "
                    f"results/s accepted ({row['updates_waiting_at_end']} waiting)  "
                    f"cpu% controller {cpu['controller']:5.1f} runner "
                    f"{cpu['runner']:5.1f} trainers {cpu['trainers']:5.1f}",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "simulation": True,
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    (args.out / "fleet.json").write_text(json.dumps(report, indent=2))
    plot(rows, args.out / "fleet.png")
    return report


if __name__ == "__main__":
    main()
