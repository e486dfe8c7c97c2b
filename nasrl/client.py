"""Python client for nasrl's services, what other systems import (``nasrl.Client``).

Every call has a deadline; gRPC errors become ``NasrlError`` with the status code and the
server's sentence."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from protos import trainer_pb2, trainer_pb2_grpc

from nasrl import codec, rpc
from nasrl.arch import Architecture, parse
from nasrl.results import EpochRecord, TrainOutcome, TrainSettings

__all__ = ["NasrlError", "TrainerClient", "wait_until_serving"]


class NasrlError(Exception):
    """A failed call: ``code`` is the gRPC status, the message is the server's sentence."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.args[0]}"

    @classmethod
    def from_rpc(cls, err: grpc.RpcError, target: str) -> NasrlError:
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"cannot reach {target} ({details})"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            details = f"{target} did not answer in time ({details})"
        return cls(code, details or code.name)


def wait_until_serving(target: str, timeout: float = 30.0) -> None:
    """Block until the service at ``target`` reports SERVING on the health service."""
    with rpc.channel(target) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=timeout)
            stub = health_pb2_grpc.HealthStub(ch)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout,
                               wait_for_ready=True)
        except grpc.FutureTimeoutError as exc:
            raise NasrlError(grpc.StatusCode.UNAVAILABLE,
                             f"{target} did not come up within {timeout:.0f}s") from exc
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, target) from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise NasrlError(grpc.StatusCode.UNAVAILABLE, f"{target} is not serving")


class TrainerClient:
    """Trains architectures on one trainer (or a DNS name of many)."""

    def __init__(self, target: str, timeout: float = 3600.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = rpc.channel(target)
        self._stub = trainer_pb2_grpc.TrainerStub(self._channel)

    def train(
        self,
        arch: Architecture | str,
        dataset: str,
        settings: TrainSettings | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        timeout: float | None = None,
    ) -> TrainOutcome:
        """Train one architecture and return its result; ``on_epoch`` sees each epoch."""
        if isinstance(arch, str):
            arch = parse(arch)
        request = trainer_pb2.TrainRequest(
            architecture=codec.arch_to_proto(arch),
            dataset=dataset,
            config=codec.settings_to_proto(settings or TrainSettings()),
        )
        try:
            for event in self._stub.Train(request, timeout=timeout or self.timeout):
                if event.HasField("progress"):
                    if on_epoch:
                        on_epoch(codec.epoch_from_proto(event.progress))
                elif event.HasField("result"):
                    return codec.outcome_from_proto(event.result)
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        raise NasrlError(grpc.StatusCode.ABORTED,
                         f"{self.target} ended the Train stream without a result")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
