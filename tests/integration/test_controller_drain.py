"""The controller's graceful stop (``rpc.ServerHandle.stop``, what SIGTERM runs): while a call
is still running, health answers NOT_SERVING on new connections, new Controller calls get
UNAVAILABLE, and the running call completes before the server closes."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controller_service.searches import Searches
from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
from nasrl.rpc import rpc
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc

from .test_sample_release import SMALL, HeldStore

STATUS = health_pb2.HealthCheckResponse


def test_stop_serves_health_until_the_running_sample_is_answered(tmp_path) -> None:
    store = HeldStore(str(tmp_path / "controller.db"))
    servicer = ControllerServicer(Searches(store))
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        ["nasrl.v1.Controller"],
        request_limits=REQUEST_LIMITS,
    )
    handle.set_serving(True)
    target = f"127.0.0.1:{handle.port}"
    stopping = threading.Thread(target=handle.stop, args=(600,))
    ch = rpc.channel(target)
    try:
        stub = controller_pb2_grpc.ControllerStub(ch)
        sid = stub.CreateSearch(
            cpb.CreateSearchRequest(
                agent=cpb.AgentSpec(name="random"), dataset="digits", budget=5, space=SMALL
            ),
            timeout=30,
        ).search_id
        running = stub.Sample.future(cpb.SampleRequest(search_id=sid, count=2), timeout=120)
        assert store.entered.wait(60)  # the Sample runs, held by its store
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(), timeout=120)
        assert next(watch).status == STATUS.SERVING

        stopping.start()
        assert next(watch).status == STATUS.NOT_SERVING
        watch.cancel()
        with rpc.channel(target) as other:
            check = health_pb2_grpc.HealthStub(other).Check(
                health_pb2.HealthCheckRequest(), timeout=30
            )
            assert check.status == STATUS.NOT_SERVING
            with pytest.raises(grpc.RpcError) as refused:
                controller_pb2_grpc.ControllerStub(other).GetSearch(
                    cpb.GetSearchRequest(search_id=sid), timeout=30
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in str(refused.value.details())
        assert stopping.is_alive()  # still waiting for the Sample

        store.ended.set()  # let the Sample go on
        assert len(running.result(timeout=60).candidates) == 2
        stopping.join(60)
        assert not stopping.is_alive()
    finally:
        store.ended.set()
        ch.close()
        if stopping.ident is not None:
            stopping.join(60)  # the Sample, answered now, was the last running call
        handle.stop(None)
        store.close()
