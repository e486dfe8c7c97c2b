"""The trainers a benchmark trains on: one controller and two trainers (one CPU thread each)
on loopback, one training recorded in a run's log, workers in parallel, and the warm-up that
no agent is charged for."""

from __future__ import annotations

import contextlib
import functools
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from bench.efficiency.runlog import RunLog
from bench.efficiency.settings import METAQNN, ZOPH
from nasrl.cli.local import LocalService
from nasrl.core.arch import Architecture
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import NasrlError, TrainerClient, wait_until_serving

__all__ = ["Services", "local_services", "train_recorded", "in_threads", "warm_up"]

TRAINERS = 2  # one worker per trainer: two children in flight


class Services:
    """The addresses of the running controller and trainers, and a client per trainer."""

    def __init__(self, controller: str, trainers: list[str]) -> None:
        self.controller = controller
        self.trainer_targets = trainers
        self.trainers = [TrainerClient(t) for t in trainers]

    def close(self) -> None:
        for t in self.trainers:
            t.close()


@contextlib.contextmanager
def local_services() -> Iterator[Services]:
    """A controller (on a database in a temporary folder) and two CPU trainers, one thread
    each, quiet (warnings only); stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="nasrl-bench-") as tmp:
        folder = Path(tmp)
        quiet = {"NASRL_LOG_LEVEL": "WARNING"}
        controller = LocalService(
            "controller_service", ["--db", str(folder / "bench.db")], log_dir=folder, env=quiet
        )
        trainers = [
            LocalService(
                "trainer_service", ["--device", "cpu", "--threads", "1"], log_dir=folder, env=quiet
            )
            for _ in range(TRAINERS)
        ]
        with controller:
            try:
                for s in trainers:
                    s.start()
                for s in (controller, *trainers):
                    wait_until_serving(s.target, timeout=60)
                services = Services(controller.target, [s.target for s in trainers])
                try:
                    yield services
                finally:
                    services.close()
            finally:
                for s in trainers:
                    s.stop()


def train_recorded(
    trainer: TrainerClient, arch: Architecture, dataset: str, settings: TrainSettings, log: RunLog
) -> TrainOutcome | str | None:
    """Train and record; a failure is recorded with its wall time and returned as a reason;
    None: cancelled because the budget ran out meanwhile (not recorded, not to be reported)."""
    began = time.perf_counter()
    calls: list[Any] = []

    def register(call: Any) -> None:
        calls.append(call)
        log.register(call)

    try:
        outcome = trainer.train(arch, dataset, settings, on_call=register)
    except NasrlError as exc:
        if exc.code == grpc.StatusCode.CANCELLED and log.exhausted():
            log.add_abandoned()
            return None
        log.add_failed(time.perf_counter() - began)
        return str(exc)
    finally:
        for call in calls:
            log.unregister(call)
    log.add_trained(outcome)
    return outcome


def in_threads(workers: Sequence[Callable[[], None]]) -> None:
    """Run the workers in parallel; re-raise the first error after all have stopped."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def warm_up(
    trainers: list[TrainerClient], dataset: str, settings: TrainSettings, metaqnn_samples: int
) -> float | None:
    """Train once on every trainer (the first child of a dataset pays one-off costs that no
    agent should be charged for); with ``metaqnn_samples``, also train that many random MetaQNN
    networks per trainer and return their mean seconds (for qlearning's epsilon schedule)."""
    rng = random.Random(12345)
    space = METAQNN.bind(input_shape(dataset))
    paths = [space.decode(space.random_path(rng)) for _ in range(metaqnn_samples * len(trainers))]
    decisions = ZOPH.random_decisions(rng, ZOPH.max_layers)
    first = ZOPH.decode(decisions["tokens"], decisions["skips"])
    seconds: list[float] = []

    def work(index: int) -> None:
        trainers[index].train(first, dataset, settings)
        for arch in paths[index :: len(trainers)]:
            try:
                seconds.append(trainers[index].train(arch, dataset, settings).seconds)
            except NasrlError:
                pass

    in_threads([functools.partial(work, i) for i in range(len(trainers))])
    return statistics.fmean(seconds) if seconds else None
