"""`--device cuda:any` wired into a real trainer server: while every GPU of the host is claimed
the trainer answers health NOT_SERVING and Train UNAVAILABLE with a reason; once a GPU is
released it claims it and turns SERVING. GPUs are faked by a device count (nothing trains
here); the locks are real flocks."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.core import codec
from nasrl.core.arch import parse
from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service.__main__ import claim_gpu_then_serve
from trainer_service.config import TrainerConfig
from trainer_service.gpus import try_claim
from trainer_service.servicer import TrainerServicer


def health(target: str) -> int:
    with grpc.insecure_channel(target) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return int(reply.status)


def test_waits_not_serving_until_a_gpu_is_free(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    held = [try_claim(tmp_path, 2), try_claim(tmp_path, 2)]  # "other trainers" hold both GPUs
    config = TrainerConfig(port=0, device="cuda:any", gpu_lock_dir=tmp_path)
    servicer = TrainerServicer(config, None)
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        ["nasrl.v1.Trainer"],
    )
    target = f"127.0.0.1:{handle.port}"
    stop, waiting = threading.Event(), threading.Event()
    claimed: list[object] = []
    thread = threading.Thread(
        target=lambda: claimed.append(
            claim_gpu_then_serve(handle, servicer, config, 2, stop, poll=0.02, waiting=waiting)
        )
    )
    try:
        thread.start()
        assert waiting.wait(30)
        assert "no free GPU: all 2 GPU(s) of this host are claimed" in caplog.text
        assert health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        request = trainer_pb2.TrainRequest(
            architecture=codec.arch_to_proto(parse("C(8,3,1) GAP")), dataset="digits"
        )
        with grpc.insecure_channel(target) as ch:
            with pytest.raises(grpc.RpcError) as info:
                list(trainer_pb2_grpc.TrainerStub(ch).Train(request, timeout=10))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "waiting for a free GPU" in str(info.value.details())

        assert held[1] is not None
        held[1].release()  # GPU 1 freed: the trainer takes it and turns SERVING
        thread.join(30)
        assert health(target) == health_pb2.HealthCheckResponse.SERVING
        assert servicer._free_devices == [torch.device("cuda:1")]
        assert [getattr(c, "index", None) for c in claimed] == [1]
    finally:
        stop.set()
        handle.stop(None)
        for c in (*held, *claimed):
            getattr(c, "release", lambda: None)()


def test_device_flag_errors_are_one_line(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "trainer_service", "--port", "0", "--device", "gpu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "--device must be auto, cpu, cuda, cuda:N, cuda:any or cuda:all, got 'gpu'" in bad.stderr
    if torch.cuda.is_available():
        return
    for device in ("cuda:any", "cuda:all"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "trainer_service",
                "--port",
                "0",
                "--device",
                device,
                "--gpu-lock-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert f"--device {device} was asked for, but torch sees no CUDA device" in r.stderr


def test_cuda_all_gives_each_slot_its_device() -> None:
    config = TrainerConfig(port=0, slots=3)
    servicer = TrainerServicer(config, [torch.device(f"cuda:{i % 2}") for i in range(3)])
    assert sorted(map(str, servicer._free_devices)) == ["cuda:0", "cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match="2 devices for 3 slots"):
        servicer.use_devices([torch.device("cpu")] * 2)
