"""TLS behind one DNS name: `--trainers dns:///NAME:PORT` opens one channel per resolved IP,
and each checks the server's certificate against NAME, so certificates name the service only
(no IP SANs). Real TLS handshakes: two TLS trainers, a certificate whose only SAN is
`trainer.test`, and a resolver that maps that name to both trainers' addresses."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from nasrl.core.results import TrainSettings
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient, NasrlError, TrainerClient
from nasrl.rpc.security import ClientSecurity, ServerSecurity
from nasrl.runner import Runner, TrainerPool
from protos import controller_pb2 as cpb
from protos import trainer_pb2_grpc
from tests.pki import make_ca, make_cert, need_openssl
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer

NAME = "trainer.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_openssl()
    d = tmp_path_factory.mktemp("pki-dns")
    make_ca(d, "ca")
    make_cert(d, "server", "ca", f"subjectAltName=DNS:{NAME}\nextendedKeyUsage=serverAuth\n")
    return d


@pytest.fixture()
def tls_trainers(pki: Path) -> Iterator[list[str]]:
    """Two TLS trainers on 127.0.0.1 (simulated training: the handshake is what is tested)."""
    security = ServerSecurity(str(pki / "server.crt"), str(pki / "server.key"))
    handles = []
    for _ in range(2):
        servicer = TrainerServicer(
            TrainerConfig(port=0, security=security, simulate=0.0), torch.device("cpu")
        )
        handle = rpc.start_server(
            "127.0.0.1",
            0,
            functools.partial(trainer_pb2_grpc.add_TrainerServicer_to_server, servicer),
            ["nasrl.v1.Trainer"],
            security=security,
        )
        handle.set_serving(True)
        handles.append(handle)
    yield [f"127.0.0.1:{h.port}" for h in handles]
    for h in handles:
        h.stop(None)


def test_the_certificate_does_not_name_the_ip(pki: Path, tls_trainers: list[str]) -> None:
    # the control: reached by its IP, a trainer's certificate fails hostname verification
    with TrainerClient(
        tls_trainers[0], timeout=10, security=ClientSecurity(str(pki / "ca.crt"))
    ) as t:
        with pytest.raises(NasrlError) as info:
            t.train("C(8,3,1) GAP", "digits", TrainSettings(epochs=1))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_search_over_tls_trainers_behind_one_name(
    pki: Path, tls_trainers: list[str], controller: str
) -> None:
    resolved: list[str] = []

    def resolve(spec: str) -> list[str]:
        resolved.append(spec)
        return list(tls_trainers)

    pool = TrainerPool(
        f"dns:///{NAME}:50052", security=ClientSecurity(str(pki / "ca.crt")), resolve=resolve
    )
    try:
        with ControllerClient(controller, security=ClientSecurity()) as c:
            sid = c.create_search(
                agent=cpb.AgentSpec(name="random"), dataset="digits", budget=6
            ).search_id
            stats = Runner(c, pool, sid).run()
            counts = c.get_search(sid).counts
    finally:
        pool.close()
    assert resolved == [f"dns:///{NAME}:50052"]
    assert (counts.evaluated, counts.failed) == (6, 0), stats.last_failure
    assert set(stats.per_trainer) == set(tls_trainers)  # both replicas, each over TLS
