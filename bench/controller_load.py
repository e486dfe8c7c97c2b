"""The controller under load, as a service: isolation between searches, health under a
burst, and a cold listing. Real gRPC on loopback against a controller process.

    .venv/bin/python bench/controller_load.py [--burst 1000] [--workers 32] [--searches 200]
        [--clients 64] [--seconds 10] [--out bench/results]

1. Two searches: the Sample p99 of a random search with one client, alone, then while
   ``--clients`` clients drive a reinforce search (Sample + Update) at full speed; the ratio.
2. Burst: ``--burst`` concurrent reinforce Sample(1) calls (one asyncio loop, 10 s deadline)
   against a controller with ``--workers`` threads, while a health check runs every 100 ms:
   the slowest health answer, and how many calls were served, refused (RESOURCE_EXHAUSTED)
   or ran out of time.
3. Cold listing: ``--searches`` searches with a few results each, the controller restarted,
   then the first ListSearches (no agent is loaded for a listing).

Writes bench/results/controller_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.controller_latency import pct, result_for  # noqa: E402
from nasrl.cli.local import LocalService  # noqa: E402
from nasrl.rpc.client import ControllerClient, NasrlError, wait_until_serving  # noqa: E402
from protos import controller_pb2 as cpb  # noqa: E402
from protos import controller_pb2_grpc  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUIET = {"NASRL_LOG_LEVEL": "WARNING"}


def create(c: ControllerClient, agent: str, budget: int = 1_000_000) -> str:
    return c.create_search(
        agent=cpb.AgentSpec(name=agent), dataset="digits", budget=budget
    ).search_id


def sample_p99(target: str, search_id: str, seconds: float) -> tuple[float, float, int]:
    """(p50, p99) of Sample(1) + Update on one client for ``seconds``, and the calls."""
    times: list[float] = []
    with ControllerClient(target, timeout=60) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            batch = c.sample(search_id, 1)
            times.append((time.perf_counter() - t0) * 1e3)
            for cand in batch.candidates:
                if cand.cached is None:
                    c.update(search_id, cand.id, result_for(cand.text))
    return pct(times, 0.5), pct(times, 0.99), len(times)


def _hammer(target: str, search_id: str, clients: int, stop: Any, done: Any) -> None:
    """``clients`` threads doing Sample + Update on one search as fast as they can, backing off
    (with jitter) when refused, as nasrl's runner does; run in its own process so that its
    threads do not slow the measuring client through this process's GIL."""

    def client() -> None:
        with ControllerClient(target, timeout=120) as w:
            delay = 0.01
            while not stop.is_set():
                try:
                    for cand in w.sample(search_id, 1).candidates:
                        if cand.cached is None:
                            w.update(search_id, cand.id, result_for(cand.text))
                            with done.get_lock():
                                done.value += 1
                    delay = 0.01
                except NasrlError as exc:
                    if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(2 * delay, 0.5)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def two_searches(target: str, clients: int, seconds: float) -> dict[str, Any]:
    with ControllerClient(target) as c:
        quiet, busy = create(c, "random"), create(c, "reinforce")
    solo = sample_p99(target, quiet, seconds)
    ctx = multiprocessing.get_context("spawn")
    stop, done = ctx.Event(), ctx.Value("i", 0)
    hammer = ctx.Process(target=_hammer, args=(target, busy, clients, stop, done), daemon=True)
    hammer.start()
    time.sleep(3.0)  # the process starts and its clients ramp up
    before = done.value
    loaded = sample_p99(target, quiet, seconds)
    busy_rate = (done.value - before) / seconds
    stop.set()
    hammer.join(60)
    out = {
        "solo_p50_ms": solo[0],
        "solo_p99_ms": solo[1],
        "loaded_p50_ms": loaded[0],
        "loaded_p99_ms": loaded[1],
        "p99_ratio": round(loaded[1] / solo[1], 2),
        "reinforce_results_per_second_meanwhile": round(busy_rate, 1),
        "clients_on_reinforce": clients,
    }
    print(
        f"two searches: random Sample p99 {solo[1]} ms alone, {loaded[1]} ms while {clients} "
        f"clients drive a reinforce search ({busy_rate:.0f} results/s) -> x{out['p99_ratio']}"
    )
    return out


async def _burst(target: str, search_id: str, n: int) -> dict[str, int]:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = controller_pb2_grpc.ControllerStub(ch)

        async def one() -> str:
            try:
                await stub.Sample(cpb.SampleRequest(search_id=search_id, count=1), timeout=10)
                return "served"
            except grpc.aio.AioRpcError as exc:
                return exc.code().name

        outcomes = await asyncio.gather(*(one() for _ in range(n)))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return counts


def burst(tmp: Path, n: int, workers: int) -> dict[str, Any]:
    with LocalService(
        "controller_service",
        ["--db", str(tmp / "burst.db"), "--workers", str(workers)],
        log_dir=tmp,
        env=QUIET,
    ) as ctl:
        wait_until_serving(ctl.target)
        with ControllerClient(ctl.target) as c:
            sid = create(c, "reinforce")
        health_ms: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            with grpc.insecure_channel(ctl.target) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                        health_ms.append((time.perf_counter() - t0) * 1e3)
                    except grpc.RpcError:
                        health_ms.append(10_000.0)
                    stop.wait(0.1)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        time.sleep(0.5)
        began = time.monotonic()
        counts = asyncio.run(_burst(ctl.target, sid, n))
        took = time.monotonic() - began
        time.sleep(0.3)
        stop.set()
        prober.join(15)
    out = {
        "calls": n,
        "workers": workers,
        "outcomes": counts,
        "seconds": round(took, 2),
        "health_checks": len(health_ms),
        "health_max_ms": round(max(health_ms), 1),
        "health_p99_ms": pct(health_ms, 0.99),
    }
    print(
        f"burst of {n} reinforce Samples ({workers} workers): {counts} in {took:.1f}s; "
        f"health max {out['health_max_ms']} ms over {len(health_ms)} checks"
    )
    return out


def cold_listing(tmp: Path, searches: int) -> dict[str, Any]:
    db = tmp / "many.db"
    args = ["--db", str(db), "--workers", "16"]
    with LocalService("controller_service", args, log_dir=tmp, env=QUIET) as ctl:
        wait_until_serving(ctl.target)
        with ControllerClient(ctl.target, timeout=60) as c:
            agents = ("reinforce", "qlearning", "random", "evolution")
            for i in range(searches):
                agent = agents[i % len(agents)]
                space = cpb.SearchSpace(name="metaqnn") if agent == "qlearning" else None
                sid = c.create_search(
                    agent=cpb.AgentSpec(name=agent), dataset="digits", budget=10, space=space
                ).search_id
                for cand in c.sample(sid, 3).candidates:
                    if cand.cached is None:
                        c.update(sid, cand.id, result_for(cand.text))
    with LocalService("controller_service", args, log_dir=tmp, env=QUIET) as ctl:
        wait_until_serving(ctl.target)
        with ControllerClient(ctl.target, timeout=60) as c:
            t0 = time.perf_counter()
            listed = c.list_searches()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            c.list_searches()
            second = time.perf_counter() - t0
    out = {
        "searches": len(listed),
        "first_seconds": round(first, 3),
        "second_seconds": round(second, 3),
    }
    print(f"cold ListSearches over {len(listed)} searches: {first:.3f}s (then {second:.3f}s)")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--searches", type=int, default=200)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with LocalService(
            "controller_service",
            ["--db", str(tmp / "two.db"), "--workers", "64"],
            log_dir=tmp,
            env=QUIET,
        ) as ctl:
            wait_until_serving(ctl.target)
            report["two_searches"] = two_searches(ctl.target, args.clients, args.seconds)
        report["burst"] = burst(tmp, args.burst, args.workers)
        report["cold_listing"] = cold_listing(tmp, args.searches)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controller_load.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
