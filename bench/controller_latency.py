"""Controller latency and throughput over real gRPC on loopback, per agent, against the
transport's floor.

    .venv/bin/python bench/controller_latency.py [--rounds 300] [--clients 8,64,256]
        [--seconds 10] [--agents reinforce,qlearning,random,evolution,reinforce+predictor]
        [--out bench/results]

1. One client, sequential: ROUNDS of Sample(1) + Update with a synthetic result; p50/p99 of
   each call.
2. Baseline in the same run: a no-op gRPC echo server (a separate process, like the
   controller) answering messages of the size of a Sample reply and of an Update request;
   p50/p99 of the echo is the floor, and the agent's cost shows as the ratio to it.
3. Throughput: 8, 64, 256 concurrent clients (threads in this process, one channel each)
   doing Sample + Update for SECONDS; results per second.

4. With an ``AGENT+predictor`` arm: Samples that fit a new predictor first (every 10th result)
   apart from the rest, and a random search's Sample p50 alone and beside a search that
   refits (the fit runs outside the search's lock, so other searches must not wait).

Writes bench/results/controller_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from nasrl.cli.local import LocalService
from nasrl.core.results import TrainOutcome
from nasrl.rpc.client import ControllerClient, NasrlError, wait_until_serving
from protos import controller_pb2 as cpb

RESULTS = Path(__file__).resolve().parent / "results"
SPACES = {"qlearning": cpb.SearchSpace(name="metaqnn")}
ECHO = "/nasrl.bench.Echo/Echo"

ECHO_SERVER = """
import sys
from concurrent import futures
import grpc
def echo(request, context):
    return request
handler = grpc.method_handlers_generic_handler("nasrl.bench.Echo", {
    "Echo": grpc.unary_unary_rpc_method_handler(echo)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def result_for(text: str) -> TrainOutcome:
    acc = min(1.0, 0.3 + 0.05 * text.count("3"))
    return TrainOutcome(acc, acc, acc, 1000, 10000, 1.0, "cpu", text)


#: the "+predictor" arms: screening by the learned predictor (its defaults: 4 proposals per
#: child, cold start 10
#: results, refit every 10), reinforce also with its efficient
#: preset and 10 model-based steps after each refit
PREDICTOR = cpb.Screening(score="predictor")


def create(c: ControllerClient, arm: str) -> str:
    agent, _, prior = arm.partition("+")
    spec = cpb.AgentSpec(name=agent)
    if prior == "predictor" and agent == "reinforce":
        spec = cpb.AgentSpec(
            name=agent, preset="efficient", reinforce=cpb.ReinforceSettings(model_steps=10)
        )
    return c.create_search(
        agent=spec,
        dataset="digits",
        budget=1_000_000,
        space=SPACES.get(agent),
        screening=PREDICTOR if prior == "predictor" else None,
    ).search_id


def refit_due(results: int) -> bool:
    """Whether a Sample after ``results`` results fits a new predictor (its defaults)."""
    return results >= 10 and results % 10 == 0


def sequential(target: str, agent: str, rounds: int) -> dict[str, Any]:
    sample_ms: list[float] = []
    refit_ms: list[float] = []  # Samples that fitted the predictor first
    update_ms: list[float] = []
    sizes: list[int] = []
    results = 0
    with ControllerClient(target) as c:
        sid = create(c, agent)
        for _ in range(rounds):
            t0 = time.perf_counter()
            reply = c._call("Sample", cpb.SampleRequest(search_id=sid, count=1))
            ms = (time.perf_counter() - t0) * 1000
            (refit_ms if "+predictor" in agent and refit_due(results) else sample_ms).append(ms)
            sizes.append(reply.ByteSize())
            for cand in reply.candidates:
                if not cand.HasField("cached_result"):
                    t1 = time.perf_counter()
                    c.update(sid, cand.candidate_id, result_for(cand.text))
                    update_ms.append((time.perf_counter() - t1) * 1000)
                    results += 1
    row = {
        "sample_p50_ms": pct(sample_ms, 0.5),
        "sample_p99_ms": pct(sample_ms, 0.99),
        "update_p50_ms": pct(update_ms, 0.5),
        "update_p99_ms": pct(update_ms, 0.99),
        "sample_reply_bytes": int(statistics.median(sizes)),
        "rounds": rounds,
    }
    if refit_ms:
        row |= {"refit_samples": len(refit_ms), "refit_sample_p50_ms": pct(refit_ms, 0.5)}
    return row


def beside_refits(target: str, rounds: int) -> dict[str, float]:
    """Sample p50 of a random search alone, then while another search (reinforce with the
    predictor) refits in a second client: a refit must not stall other searches."""

    def random_p50() -> float:
        times = []
        with ControllerClient(target) as c:
            sid = create(c, "random")
            for _ in range(rounds):
                t0 = time.perf_counter()
                for cand in c.sample(sid, 1).candidates:
                    times.append((time.perf_counter() - t0) * 1000)
                    c.update(sid, cand.id, result_for(cand.text))
        return pct(times, 0.5)

    alone = random_p50()
    stop = threading.Event()

    def refitting() -> None:
        with ControllerClient(target, timeout=120) as c:
            sid = create(c, "reinforce+predictor")
            while not stop.is_set():
                for cand in c.sample(sid, 1).candidates:
                    if cand.cached is None:
                        c.update(sid, cand.id, result_for(cand.text))

    other = threading.Thread(target=refitting, daemon=True)
    other.start()
    try:
        beside = random_p50()
    finally:
        stop.set()
        other.join(120)
    return {"random_sample_p50_alone_ms": alone, "random_sample_p50_beside_refits_ms": beside}


def echo_floor(rounds: int, sizes: list[int]) -> dict[str, Any]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        out: dict[str, Any] = {}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call: Callable[..., bytes] = ch.unary_unary(ECHO)
            for size in sizes:
                payload, times = b"x" * size, []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    call(payload, timeout=10)
                    times.append((time.perf_counter() - t0) * 1000)
                out[f"{size}B"] = {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99)}
        return out
    finally:
        proc.kill()
        proc.wait()


def concurrent(target: str, agent: str, clients: int, seconds: float) -> float:
    with ControllerClient(target) as c:
        sid = create(c, agent)
    stop = threading.Event()
    counts = [0] * clients

    def retrying(call: Any) -> Any:
        """A call the controller refuses as busy (RESOURCE_EXHAUSTED) is retried with
        backoff, as nasrl's runner does."""
        delay = 0.01
        while True:
            try:
                return call()
            except NasrlError as exc:
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 0.5)

    def worker(i: int) -> None:
        with ControllerClient(target, timeout=120) as w:
            while not stop.is_set():
                for cand in retrying(lambda: w.sample(sid, 1)).candidates:
                    if cand.cached is None:
                        retrying(lambda: w.update(sid, cand.id, result_for(cand.text)))
                        counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # ramp-up
    start = sum(counts)
    time.sleep(seconds)
    done = sum(counts) - start
    stop.set()
    for t in threads:
        t.join(120)
    return round(done / seconds, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="controller latency and throughput")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--clients", default="8,64,256")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--agents",
        default="reinforce,qlearning,random,evolution",
        help="comma-separated; AGENT+predictor: with predictor screening (reinforce: its "
        "efficient preset and 10 model-based steps per refit); Samples that refit are "
        "reported apart (refit_sample_p50_ms), and a random search's Sample p50 is measured "
        "alone and beside a refitting search",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "agents": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        with LocalService(
            "controller_service",
            ["--db", f"{tmp}/bench.db", "--workers", "64"],
            log_dir=Path(tmp),
            env={"NASRL_LOG_LEVEL": "WARNING"},
        ) as ctl:
            wait_until_serving(ctl.target)
            for agent in args.agents.split(","):
                row = sequential(ctl.target, agent, args.rounds)
                row["results_per_second"] = {
                    n: concurrent(ctl.target, agent, int(n), args.seconds)
                    for n in args.clients.split(",")
                }
                report["agents"][agent] = row
            if any("+predictor" in a for a in args.agents.split(",")):
                report["beside_refits"] = beside_refits(ctl.target, args.rounds)
    sample_bytes = max(r["sample_reply_bytes"] for r in report["agents"].values())
    report["echo_floor"] = echo_floor(args.rounds, [sample_bytes, 400])
    floor = report["echo_floor"][f"{sample_bytes}B"]["p50_ms"]
    print(
        f"echo floor (no-op gRPC, {sample_bytes} B): p50 {floor} ms  p99 "
        f"{report['echo_floor'][f'{sample_bytes}B']['p99_ms']} ms"
    )
    for agent, r in report["agents"].items():
        r["sample_p50_vs_echo"] = round(r["sample_p50_ms"] / floor, 1)
        print(
            f"{agent:10s} Sample p50 {r['sample_p50_ms']:7.2f} ms p99 {r['sample_p99_ms']:7.2f}"
            f" | Update p50 {r['update_p50_ms']:7.2f} ms p99 {r['update_p99_ms']:7.2f} | "
            f"Sample/echo {r['sample_p50_vs_echo']}x | results/s "
            + " ".join(f"{n} clients: {v}" for n, v in r["results_per_second"].items())
        )
        if "refit_sample_p50_ms" in r:
            print(
                f"{'':10s} Samples that refit the predictor first: {r['refit_samples']}, "
                f"p50 {r['refit_sample_p50_ms']:7.2f} ms (not in the Sample p50 above)"
            )
    if "beside_refits" in report:
        b = report["beside_refits"]
        print(
            f"random Sample p50 alone {b['random_sample_p50_alone_ms']} ms, beside a "
            f"refitting search {b['random_sample_p50_beside_refits_ms']} ms"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controller_latency.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
