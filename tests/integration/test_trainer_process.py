"""The trainer as a real process: start-up, health, SIGTERM with a running call."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.cli.local import LocalService, ServiceFailed
from nasrl.core import codec
from nasrl.core.arch import parse
from nasrl.rpc import rpc
from nasrl.rpc.client import wait_until_serving
from protos import trainer_pb2_grpc

from .test_trainer_service import _request


def _health(target: str) -> int:
    with rpc.channel(target) as ch:
        return int(
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        )


def test_sigterm_during_training_exits_zero_after_grace(tmp_path) -> None:
    trainer = LocalService("trainer_service", ["--grace", "1"], log_dir=tmp_path).start()
    try:
        wait_until_serving(trainer.target)
        assert _health(trainer.target) == health_pb2.HealthCheckResponse.SERVING
        ch = rpc.channel(trainer.target)
        call = trainer_pb2_grpc.TrainerStub(ch).Train(
            _request(codec.arch_to_proto(parse("C(64,3,1) C(64,3,1) GAP")), "mnist5k", epochs=50),
            timeout=120,
        )
        assert next(call).HasField("progress")
        assert trainer.stop(timeout=30) == 0  # exits by itself (stop kills it otherwise: -9)
        with pytest.raises(grpc.RpcError) as info:
            list(call)  # the running call ends without its 50 epochs (cancelled at the grace)
        assert info.value.code() in (
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.ABORTED,
        )
        ch.close()
        assert "received SIGTERM" in trainer.log()
        # one-off costs are logged apart, not charged to the first child's seconds
        assert "warm-up: torch's FLOP counter ready in" in trainer.log()
        assert "loaded dataset mnist5k in" in trainer.log()
    finally:
        trainer.kill()


def test_bad_flags_exit_nonzero_with_message(tmp_path) -> None:
    with pytest.raises(ServiceFailed) as info:
        LocalService("trainer_service", ["--slots", "0"], log_dir=tmp_path).start()
    assert "--slots must be between 1 and 64" in str(info.value)
    with pytest.raises(ServiceFailed) as info:
        LocalService("trainer_service", ["--device", "cuda:7"], log_dir=tmp_path).start()
    assert "CUDA" in str(info.value) or "cuda" in str(info.value)
