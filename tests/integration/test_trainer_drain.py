"""SIGTERM on a real trainer process with a child still training: during the grace period the
trainer keeps answering health checks on new connections (NOT_SERVING, so a readiness probe
takes it out of rotation), refuses new children with UNAVAILABLE (the runner retries on
another trainer), lets the running child finish, then exits 0."""

from __future__ import annotations

import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.cli.local import LocalService
from nasrl.core import codec
from nasrl.core.arch import parse
from nasrl.rpc import rpc
from nasrl.rpc.client import wait_until_serving
from protos import trainer_pb2, trainer_pb2_grpc

from .test_trainer_service import _request

NET = codec.arch_to_proto(parse("C(8,3,1) GAP"))
STATUS = health_pb2.HealthCheckResponse


def _check_on_a_new_channel(target: str, service: str = "") -> int:
    """One Check on a connection of its own, as the kubelet's probe makes it."""
    with rpc.channel(target) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
        return int(reply.status)


def test_sigterm_keeps_health_answering_while_the_running_child_finishes(tmp_path) -> None:
    # 1,000 simulated epochs over 600 s: the child runs until FinishEarly ends it; the grace
    # is longer still, so it never decides the test.
    trainer = LocalService(
        "trainer_service", ["--simulate", "600", "--grace", "900"], log_dir=tmp_path
    ).start()
    ch = rpc.channel(trainer.target)
    try:
        wait_until_serving(trainer.target)
        assert trainer.process is not None
        call = trainer_pb2_grpc.TrainerStub(ch).Train(
            trainer_pb2.TrainRequest(
                architecture=NET,
                dataset="digits",
                config=trainer_pb2.TrainingConfig(epochs=1000),
                run_id="draining-child",
            ),
            timeout=600,
        )
        assert next(call).HasField("progress")  # the child is training
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=600)
        assert next(watch).status == STATUS.SERVING

        trainer.process.send_signal(signal.SIGTERM)
        assert next(watch).status == STATUS.NOT_SERVING  # the trainer has begun to drain
        watch.cancel()

        # What a readiness probe sees: an answer on a new connection, not a refused one; a
        # liveness probe (the "liveness" name) sees a process that is alive.
        assert _check_on_a_new_channel(trainer.target) == STATUS.NOT_SERVING
        assert _check_on_a_new_channel(trainer.target, rpc.LIVENESS) == STATUS.SERVING
        with rpc.channel(trainer.target) as other:
            stub = trainer_pb2_grpc.TrainerStub(other)
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.Train(_request(NET, epochs=1), timeout=30))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in str(refused.value.details())
            assert _check_on_a_new_channel(trainer.target) == STATUS.NOT_SERVING
            # the running child is still there, and may be asked to end after this epoch
            finish = stub.FinishEarly(
                trainer_pb2.FinishEarlyRequest(run_id="draining-child"), timeout=30
            )
            assert finish.found

        events = list(call)  # the running child completes with its result
        assert events and events[-1].HasField("result")
        assert events[-1].result.stopped_early
        assert trainer.process.wait(timeout=120) == 0
        assert "received SIGTERM" in trainer.log()
    finally:
        ch.close()
        trainer.kill()
