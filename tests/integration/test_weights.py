"""Trained weights: the trainer keeps the best-validation weights of recent children and serves
them in chunks (GetWeights); --export-best writes them beside the module, and loading them
reproduces the test accuracy the trainer reported; a child whose weights are gone is retrained."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from nasrl.core.results import TrainOutcome, TrainSettings, weights_id
from nasrl.rpc import rpc
from nasrl.rpc.client import TrainerClient
from protos import trainer_pb2, trainer_pb2_grpc
from tests.helpers import load_module
from trainer_service import data
from trainer_service.servicer import CHUNK
from trainer_service.weights import WeightStore

from .conftest import start_trainer

ARCH = "C(16,3,1) P(2,2) C(32,3,1)@[0,2] GAP"
SETTINGS = TrainSettings(epochs=2, seed=3)


def _test_accuracy(net: torch.nn.Module) -> float:
    d = data.load("digits")
    with torch.no_grad():
        predicted = net.eval()(d.x_test).argmax(1)
    return float((predicted == d.y_test).float().mean())


@pytest.fixture(scope="module")
def trained() -> Iterator[tuple[str, TrainOutcome]]:
    handle, _ = start_trainer()
    target = f"127.0.0.1:{handle.port}"
    with TrainerClient(target) as client:
        outcome = client.train(ARCH, "digits", SETTINGS)
    yield target, outcome
    handle.stop(None)


def test_result_names_its_weights_and_the_id_is_reproducible(
    trained: tuple[str, TrainOutcome],
) -> None:
    _, outcome = trained
    assert outcome.weights_id == weights_id(outcome.architecture, "digits", SETTINGS)
    assert outcome.weights_id != weights_id(
        outcome.architecture, "digits", TrainSettings(epochs=2, seed=4)
    )
    assert outcome.weights_id != weights_id(outcome.architecture, "mnist5k", SETTINGS)


def test_fetched_weights_reproduce_the_reported_test_accuracy(
    trained: tuple[str, TrainOutcome], tmp_path: Path
) -> None:
    from nasrl.cli.trained_export import export_trained

    target, outcome = trained
    with TrainerClient(target) as client:
        report = export_trained([client], ARCH, "digits", SETTINGS, tmp_path / "best.py", "t")
    assert report.retrained_on is None and report.weights == tmp_path / "best.pt"
    assert "trained weights" in report.note
    module = load_module(tmp_path / "best.py")
    net = module.load_trained()
    assert _test_accuracy(net) == pytest.approx(outcome.test_accuracy, abs=1e-6)
    assert _test_accuracy(module.Net()) < outcome.test_accuracy - 0.2  # untrained is worse


def test_exported_module_loads_its_weights_in_a_plain_interpreter(
    trained: tuple[str, TrainOutcome], tmp_path: Path
) -> None:
    """The .pt beside the module loads with torch alone (weights_only), no nasrl import."""
    from nasrl.cli.trained_export import export_trained

    target, outcome = trained
    with TrainerClient(target) as client:
        export_trained([client], ARCH, "digits", SETTINGS, tmp_path / "net.py", "t")
    d = data.load("digits")
    torch.save({"x": d.x_test, "y": d.y_test}, tmp_path / "test.pt")
    script = (
        "import importlib.util, sys, torch\n"
        f"spec = importlib.util.spec_from_file_location('net', {str(tmp_path / 'net.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"t = torch.load({str(tmp_path / 'test.pt')!r}, weights_only=True)\n"
        "acc = (m.load_trained()(t['x']).argmax(1) == t['y']).float().mean().item()\n"
        "assert 'nasrl' not in sys.modules and 'trainer_service' not in sys.modules\n"
        "print(acc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert float(out.stdout) == pytest.approx(outcome.test_accuracy, abs=1e-6)


def test_export_retrains_when_no_trainer_holds_the_weights(
    trained: tuple[str, TrainOutcome], tmp_path: Path
) -> None:
    from nasrl.cli.trained_export import export_trained

    _, outcome = trained
    handle, _ = start_trainer()  # a fresh trainer: it never trained this child
    target = f"127.0.0.1:{handle.port}"
    try:
        with TrainerClient(target) as client:
            assert client.fetch_weights(outcome.weights_id) is None
            report = export_trained([client], ARCH, "digits", SETTINGS, tmp_path / "b.py", "t")
    finally:
        handle.stop(None)
    assert report.retrained_on == target
    assert "trained it again" in report.note
    # on the CPU the same settings and seed give the same weights
    assert _test_accuracy(load_module(tmp_path / "b.py").load_trained()) == pytest.approx(
        outcome.test_accuracy, abs=1e-6
    )


def test_large_weights_come_in_chunks_under_the_message_limit() -> None:
    handle, _ = start_trainer()
    target = f"127.0.0.1:{handle.port}"
    try:
        with TrainerClient(target) as client:
            outcome = client.train("C(32,3,1) FC(1024)", "digits", TrainSettings(epochs=1))
            blob = client.fetch_weights(outcome.weights_id)
        with rpc.channel(target) as ch:
            chunks = list(
                trainer_pb2_grpc.TrainerStub(ch).GetWeights(
                    trainer_pb2.GetWeightsRequest(weights_id=outcome.weights_id), timeout=60
                )
            )
    finally:
        handle.stop(None)
    assert blob is not None and len(blob) > 4 * CHUNK  # 2 M parameters: about 8 MB
    assert len(chunks) == -(-len(blob) // CHUNK)
    assert all(len(c.data) <= CHUNK and c.total_bytes == len(blob) for c in chunks)
    assert {c.architecture for c in chunks} == {outcome.architecture}
    saved = torch.load(io.BytesIO(blob), weights_only=True)
    assert saved["architecture"] == outcome.architecture
    assert (
        sum(
            v.numel()
            for k, v in saved["state_dict"].items()
            if "running" not in k and "num_batches" not in k
        )
        == outcome.params
    )


@pytest.mark.parametrize(
    ("wid", "code"),
    [
        ("0" * 32, grpc.StatusCode.NOT_FOUND),
        ("../../etc/passwd", grpc.StatusCode.INVALID_ARGUMENT),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("A" * 32, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_unknown_or_malformed_ids_get_a_clear_status(
    trained: tuple[str, TrainOutcome], wid: str, code: grpc.StatusCode
) -> None:
    target, _ = trained
    with rpc.channel(target) as ch, pytest.raises(grpc.RpcError) as err:
        list(
            trainer_pb2_grpc.TrainerStub(ch).GetWeights(
                trainer_pb2.GetWeightsRequest(weights_id=wid), timeout=30
            )
        )
    assert err.value.code() == code
    assert "weights" in (err.value.details() or "")


def test_a_trainer_that_keeps_nothing_names_no_weights(tmp_path: Path) -> None:
    handle, _ = start_trainer(weights=WeightStore(tmp_path, 0))
    try:
        with TrainerClient(f"127.0.0.1:{handle.port}") as client:
            outcome = client.train(ARCH, "digits", TrainSettings(epochs=1))
    finally:
        handle.stop(None)
    assert outcome.weights_id == "" and list(tmp_path.iterdir()) == []


def test_store_evicts_the_oldest_within_its_budget(tmp_path: Path) -> None:
    import os

    state = {"w": torch.zeros(1000)}  # about 5 kB on disk
    store = WeightStore(tmp_path, 12_000)
    ids = [f"{i:032x}" for i in range(4)]
    for i, wid in enumerate(ids):
        assert store.put(wid, state, f"arch {i}")
        os.utime(tmp_path / f"{wid}.pt", (1000 + i, 1000 + i))  # a clear age order
    assert store.get(ids[0]) is None and store.get(ids[1]) is None
    assert store.get(ids[2]) is not None and store.get(ids[3]) is not None
    assert not store.put(f"{9:032x}", {"w": torch.zeros(10_000)}, "too big")
    (tmp_path / "junk.123.tmp").write_bytes(b"half")
    WeightStore(tmp_path, 12_000)  # a restart drops half-written files, keeps the rest
    assert not (tmp_path / "junk.123.tmp").exists()
    assert WeightStore(tmp_path, 12_000).get(ids[3]) is not None
