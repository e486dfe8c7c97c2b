"""Waiting for a service to report SERVING on the standard gRPC health service (what
``nasrl health`` and the clients use). Light on purpose: grpc, the health stubs and nasrl's
channel/TLS helpers only."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.rpc import rpc
from nasrl.rpc.errors import NasrlError
from nasrl.rpc.security import ClientSecurity

__all__ = ["wait_until_serving"]


def wait_until_serving(
    target: str, timeout: float = 30.0, security: ClientSecurity | None = None, service: str = ""
) -> None:
    """Block until the service at ``target`` reports SERVING on the health service (for
    ``service``: "" is the whole server, ``rpc.LIVENESS`` the process being alive)."""
    with rpc.channel(target, security) as ch:
        try:
            grpc.channel_ready_future(ch).result(timeout=timeout)
            stub = health_pb2_grpc.HealthStub(ch)
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=timeout,
                wait_for_ready=True,
            )
        except grpc.FutureTimeoutError as exc:
            raise NasrlError(
                grpc.StatusCode.UNAVAILABLE, f"{target} did not come up within {timeout:g} s"
            ) from exc
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, target) from exc
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            what = f"{target} ({service})" if service else target
            raise NasrlError(grpc.StatusCode.UNAVAILABLE, f"{what} is not serving")
