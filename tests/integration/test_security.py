"""TLS, mutual TLS and bearer tokens on real servers: who is refused, who gets in, and a whole
search over mTLS + token with real processes."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controller_service.searches import Searches
from controller_service.servicer import ControllerServicer
from controller_service.store import Store
from nasrl.cli.local import LocalService
from nasrl.core.results import TrainSettings
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient, NasrlError, TrainerClient, wait_until_serving
from nasrl.rpc.security import ClientSecurity, ServerSecurity
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc, trainer_pb2_grpc
from tests.pki import make_ca, make_cert, need_openssl
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer

TOKEN = "s3cret-token-for-tests"
SMALL = "C(8,3,1) GAP"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_openssl()
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "wrongca")
    make_cert(
        d,
        "server",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    make_cert(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    make_cert(d, "intruder", "wrongca", "extendedKeyUsage=clientAuth\n")
    (d / "tokens").write_text(f"\n{TOKEN}\nanother-token\n")
    (d / "token").write_text(TOKEN + "\n")
    return d


def mtls_server(pki: Path, token: bool = False) -> ServerSecurity:
    return ServerSecurity(
        str(pki / "server.crt"),
        str(pki / "server.key"),
        str(pki / "ca.crt"),
        str(pki / "tokens") if token else None,
    )


def client(
    pki: Path, cert: str | None = "client", ca: str = "ca", token: str | None = None
) -> ClientSecurity:
    return ClientSecurity(
        str(pki / f"{ca}.crt"),
        str(pki / f"{cert}.crt") if cert else None,
        str(pki / f"{cert}.key") if cert else None,
        token,
    )


@pytest.fixture()
def trainer_mtls(pki: Path) -> Iterator[str]:
    security = mtls_server(pki)
    servicer = TrainerServicer(TrainerConfig(port=0, security=security), torch.device("cpu"))
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        ["nasrl.v1.Trainer"],
        security=security,
    )
    handle.set_serving(True)
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


def train(target: str, security: ClientSecurity) -> float:
    with TrainerClient(target, timeout=60, security=security) as t:
        return t.train(SMALL, "digits", TrainSettings(epochs=1)).validation_accuracy


def test_mtls_refuses_clients_without_a_certificate_or_from_another_ca(
    pki: Path, trainer_mtls: str
) -> None:
    for who in (
        client(pki, cert=None),
        client(pki, cert="intruder"),
        ClientSecurity(),
        client(pki, ca="wrongca"),
    ):
        with pytest.raises(NasrlError) as info:
            train(trainer_mtls, who)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert 0 < train(trainer_mtls, client(pki)) <= 1


@pytest.fixture()
def controller_token(pki: Path, tmp_path: Path) -> Iterator[str]:
    security = ServerSecurity(token_file=str(pki / "tokens"))
    servicer = ControllerServicer(Searches(Store(tmp_path / "c.db")))
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        ["nasrl.v1.Controller"],
        security=security,
    )
    handle.set_serving(True)
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


def test_token_required_except_for_health(controller_token: str) -> None:
    for bad in (None, "wrong", TOKEN + "x", ""):
        with ControllerClient(controller_token, security=ClientSecurity(token=bad)) as c:
            with pytest.raises(NasrlError) as info:
                c.list_searches()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer" in str(info.value)
    for good in (TOKEN, "another-token"):
        with ControllerClient(controller_token, security=ClientSecurity(token=good)) as c:
            sid = c.create_search(agent=cpb.AgentSpec(name="random")).search_id
            assert c.sample(sid, 1).candidates
    with grpc.insecure_channel(controller_token) as ch:  # health stays open
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    wait_until_serving(controller_token, security=ClientSecurity())


def test_grpcurl_with_bearer_header(controller_token: str) -> None:
    exe = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    assert exe
    ok = subprocess.run(
        [exe, "-plaintext", "-H", f"authorization: Bearer {TOKEN}", controller_token, "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and "nasrl.v1.Controller" in ok.stdout, ok.stderr
    refused = subprocess.run(
        [exe, "-plaintext", controller_token, "list"], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr


def test_plaintext_on_a_public_address_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nasrl.rpc.rpc"):
        handle = rpc.start_server("0.0.0.0", 0, lambda s: None, [])
    handle.stop(None)
    assert any("without TLS" in r.getMessage() for r in caplog.records)


def test_search_end_to_end_over_mtls_and_token(pki: Path, tmp_path: Path) -> None:
    server_flags = [
        "--tls-cert",
        str(pki / "server.crt"),
        "--tls-key",
        str(pki / "server.key"),
        "--tls-client-ca",
        str(pki / "ca.crt"),
        "--auth-token-file",
        str(pki / "tokens"),
    ]
    client_flags = [
        "--tls-ca",
        str(pki / "ca.crt"),
        "--tls-cert",
        str(pki / "client.crt"),
        "--tls-key",
        str(pki / "client.key"),
        "--token-file",
        str(pki / "token"),
    ]
    controller = LocalService(
        "controller_service", ["--db", str(tmp_path / "c.db"), *server_flags], log_dir=tmp_path
    )
    trainers = [
        LocalService("trainer_service", ["--threads", "1", *server_flags], log_dir=tmp_path)
        for _ in range(2)
    ]
    try:
        for s in (controller, *trainers):
            s.start()
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "nasrl.cli",
                "search",
                "--controller",
                controller.target,
                "--trainers",
                ",".join(t.target for t in trainers),
                "--dataset",
                "digits",
                "--budget",
                "4",
                "--epochs",
                "1",
                "--json",
                *client_flags,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout)["evaluated"] == 4
        without = subprocess.run(
            [
                sys.executable,
                "-m",
                "nasrl.cli",
                "searches",
                "--controller",
                controller.target,
                "--tls-ca",
                str(pki / "ca.crt"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert without.returncode == 1 and "UNAVAILABLE" in without.stderr
        for s in (controller, *trainers):
            assert TOKEN not in s.log(), "a token was logged"
    finally:
        for s in (controller, *trainers):
            s.kill()
