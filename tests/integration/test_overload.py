"""Overload behaves like a service, not a queue: a burst of slow REINFORCE Samples beyond what
the controller admits is refused at once with RESOURCE_EXHAUSTED, and health checks answer
during the burst."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.cli.local import LocalService
from nasrl.rpc.client import ControllerClient, NasrlError, wait_until_serving
from protos import controller_pb2 as cpb


def test_a_burst_is_refused_not_queued_and_health_answers(tmp_path: Path) -> None:
    controller = LocalService(
        "controller_service", ["--db", str(tmp_path / "c.db"), "--workers", "8"], log_dir=tmp_path
    )
    controller.start()
    try:
        wait_until_serving(controller.target, timeout=60)
        with ControllerClient(controller.target, timeout=60) as c:
            # the paper's space and controller: each rollout takes milliseconds
            sid = c.create_search(
                agent=cpb.AgentSpec(name="reinforce"), dataset="cifar10", budget=100_000
            ).search_id

            def sample(_: int) -> str:
                try:
                    c.sample(sid, 200)
                    return "OK"
                except NasrlError as exc:
                    return exc.code.name

            with ThreadPoolExecutor(64) as pool:
                burst = [pool.submit(sample, i) for i in range(64)]
                with grpc.insecure_channel(controller.target) as channel:
                    health = health_pb2_grpc.HealthStub(channel)
                    for _ in range(5):  # answered during the burst (how fast: the benchmark)
                        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                        assert reply.status == health_pb2.HealthCheckResponse.SERVING
                outcomes = Counter(f.result() for f in burst)
    finally:
        controller.stop()
    assert set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["RESOURCE_EXHAUSTED"] > 0 and outcomes["OK"] > 0, outcomes


def test_oversized_requests_are_refused_before_parsing(controller: str) -> None:
    """Each RPC has a request size that fits it: a 2 MB Update (a result is a few KB) or a
    100 KB Sample is refused with INVALID_ARGUMENT naming the limit, and the controller
    serves the next call."""
    with ControllerClient(controller) as c:
        sid = c.create_search(agent=cpb.AgentSpec(name="random"), budget=5).search_id
        cand = c.sample(sid, 1).candidates[0]
        stub = c._stub
        big = cpb.UpdateRequest(search_id=sid, candidate_id=cand.id, failure="x" * 2_000_000)
        calls: list[tuple[Callable[..., object], Message]] = [
            (stub.Update, big),
            (stub.Sample, cpb.SampleRequest(search_id="s" * 100_000)),
        ]
        for call, request in calls:
            try:
                call(request, timeout=30)
                raise AssertionError("an oversized request was accepted")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "over this method's limit" in (exc.details() or "")
        assert c.sample(sid, 1).candidates
