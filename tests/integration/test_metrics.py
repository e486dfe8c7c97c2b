"""Prometheus metrics (`--metrics-port`) scraped over real HTTP from real servers: every RPC
counted by method and status code (refused calls too), latency histograms, trainer gauges."""

from __future__ import annotations

import functools
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from controller_service.searches import Searches
from controller_service.servicer import ControllerServicer
from controller_service.store import Store
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient, NasrlError
from nasrl.rpc.security import ClientSecurity, ServerSecurity
from protos import controller_pb2_grpc, trainer_pb2_grpc
from trainer_service.__main__ import add_trainer_gauges
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer

TOKEN = "metrics-test-token"
LIST = "/nasrl.v1.Controller/ListSearches"
GET = "/nasrl.v1.Controller/GetSearch"


def scrape(handle: rpc.ServerHandle) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert handle.metrics is not None and handle.metrics.port
    with urllib.request.urlopen(
        f"http://127.0.0.1:{handle.metrics.port}/metrics", timeout=10
    ) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], method: str, code: str
) -> float:
    return samples.get(("nasrl_grpc_requests_total", (("code", code), ("method", method))), 0.0)


@pytest.fixture()
def controller_handle(tmp_path: Path) -> Iterator[rpc.ServerHandle]:
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    store = Store(tmp_path / "c.db")
    servicer = ControllerServicer(Searches(store))
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        ["nasrl.v1.Controller"],
        security=ServerSecurity(token_file=str(tmp_path / "tokens")),
        metrics_port=0,
    )
    handle.set_serving(True)
    yield handle
    handle.stop(None)
    store.close()


def test_rpcs_are_counted_by_method_and_code(controller_handle: rpc.ServerHandle) -> None:
    target = f"127.0.0.1:{controller_handle.port}"
    with ControllerClient(target, security=ClientSecurity(token=TOKEN)) as c:
        c.list_searches()
        c.list_searches()
        with pytest.raises(NasrlError):
            c.get_search("no-such-search")
    with ControllerClient(target, security=ClientSecurity()) as c:
        with pytest.raises(NasrlError) as info:
            c.list_searches()
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    samples = scrape(controller_handle)
    assert requests(samples, LIST, "OK") == 2
    assert requests(samples, GET, "NOT_FOUND") == 1
    assert requests(samples, LIST, "UNAUTHENTICATED") == 1  # refused calls count too
    assert samples[("nasrl_grpc_request_seconds_count", (("method", LIST),))] == 3
    assert samples[("nasrl_grpc_requests_in_flight", (("method", LIST),))] == 0


def test_unknown_methods_share_one_series(controller_handle: rpc.ServerHandle) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{controller_handle.port}") as ch:
        for name in ("NoSuchMethod", "Another"):
            unknown: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
                f"/nasrl.v1.Controller/{name}"
            )
            with pytest.raises(grpc.RpcError):
                unknown(b"", timeout=10)
    samples = scrape(controller_handle)
    assert not any("NoSuchMethod" in str(labels) for _, labels in samples)
    assert requests(samples, "other", "UNAUTHENTICATED") == 2


def test_trainer_gauges() -> None:
    config = TrainerConfig(port=0, slots=2, simulate=0.0)
    handles = []
    for device in (torch.device("cpu"), None):  # ready, and waiting for a GPU (cuda:any)
        servicer = TrainerServicer(config, device)
        handle = rpc.start_server(
            "127.0.0.1",
            0,
            functools.partial(trainer_pb2_grpc.add_TrainerServicer_to_server, servicer),
            ["nasrl.v1.Trainer"],
            metrics_port=0,
        )
        assert handle.metrics is not None
        add_trainer_gauges(handle.metrics, servicer)
        handles.append(handle)
    try:
        ready, waiting = (scrape(h) for h in handles)
        assert ready[("nasrl_trainer_slots", ())] == 2
        assert ready[("nasrl_trainer_slots_busy", ())] == 0
        assert ready[("nasrl_trainer_ready", ())] == 1
        assert waiting[("nasrl_trainer_ready", ())] == 0
    finally:
        for h in handles:
            h.stop(None)


def test_bad_metrics_port_is_refused() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "controller_service", "--port", "0", "--metrics-port", "70000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "--metrics-port must be between 0 and 65535, got 70000" in r.stderr
