"""GetStatus over real gRPC: a trainer's slots and how many are busy, its devices, its mode
and the trained weights it keeps (what the dashboard's trainers page shows)."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from nasrl.core.results import TrainSettings
from nasrl.rpc.client import NasrlError, TrainerClient
from trainer_service.weights import WeightStore

from .conftest import start_trainer, watch_slots


def test_a_fresh_trainer_then_one_that_kept_weights() -> None:
    handle, _ = start_trainer(slots=2)
    try:
        with TrainerClient(f"127.0.0.1:{handle.port}") as t:
            fresh = t.status()
            assert (fresh.slots, fresh.busy_slots, fresh.ready) == (2, 0, True)
            assert fresh.devices == ("cpu", "cpu") and fresh.mode == "train"
            assert (fresh.weights_kept, fresh.weights_bytes) == (0, 0)
            t.train("C(8,3,1) GAP", "digits", TrainSettings(epochs=1))
            after = t.status()
        assert after.weights_kept == 1 and after.weights_bytes > 0 and after.busy_slots == 0
    finally:
        handle.stop(None)


def test_busy_slots_while_a_child_trains() -> None:
    handle, servicer = start_trainer(slots=2, simulate=600.0)  # a child that sleeps until cancelled
    watch = watch_slots(servicer)
    target = f"127.0.0.1:{handle.port}"
    calls: list[object] = []
    failed: list[NasrlError] = []

    def train() -> None:
        with TrainerClient(target) as t:
            try:
                t.train("C(8,3,1) GAP", "digits", TrainSettings(epochs=1), on_call=calls.append)
            except NasrlError as exc:
                failed.append(exc)

    worker = threading.Thread(target=train)
    worker.start()
    try:
        assert watch.taken.wait(60)
        with TrainerClient(target) as t:
            status = t.status()
        assert (status.busy_slots, status.slots, status.mode) == (1, 2, "simulate")
    finally:
        for call in calls:
            call.cancel()  # type: ignore[attr-defined]
        worker.join(60)
        handle.stop(None)
    assert failed and failed[0].code == grpc.StatusCode.CANCELLED


def test_a_trainer_that_keeps_no_weights(tmp_path: Path) -> None:
    handle, _ = start_trainer(weights=WeightStore(tmp_path, 0))  # --weights-max-mb 0
    try:
        with TrainerClient(f"127.0.0.1:{handle.port}") as t:
            t.train("C(8,3,1) GAP", "digits", TrainSettings(epochs=1))
            assert t.status().weights_kept == 0
    finally:
        handle.stop(None)
