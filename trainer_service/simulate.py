"""Simulated training, for benchmarks of the controller and runner at fleet scale
(``python -m trainer_service --simulate``). Nothing is trained: the call sleeps for the
configured time and returns a deterministic *surrogate* accuracy. Every result says
``device="simulated"`` so it can never be mistaken for a real one.

Surrogate accuracy (documented, deterministic in the architecture text)::

    capacity = 1 - exp(-params / 50,000)            # bigger networks fit better, saturating
    depth    = -0.03 * |layers - 6|                 # a preference for about six layers
                                                    # (0 for a cell network: no layers)
    noise    = (sha256(text) mod 1000) / 1000 * 0.04 - 0.02
    accuracy = clip(0.55 + 0.35 * capacity + depth + noise, 0.05, 0.99)
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator

from nasrl.core.arch import Architecture, canonical, format_arch
from nasrl.core.results import EpochRecord, Evaluation, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape, analyze

__all__ = ["surrogate_accuracy", "simulate"]


def surrogate_accuracy(arch: Architecture, image: InputShape) -> float:
    analysis = analyze(arch, image)
    text = format_arch(canonical(arch))
    capacity = 1.0 - math.exp(-analysis.params / 50_000)
    depth = -0.03 * abs(len(arch.layers) - 6) if arch.cell is None else 0.0
    noise = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 1000 / 1000 * 0.04 - 0.02
    return min(0.99, max(0.05, 0.55 + 0.35 * capacity + depth + noise))


def simulate(
    arch: Architecture,
    image: InputShape,
    settings: TrainSettings,
    seconds: float,
    should_stop: Callable[[], bool],
    should_finish: Callable[[], bool] = lambda: False,
    wake: threading.Event | None = None,
) -> Iterator[EpochRecord | TrainOutcome]:
    """Sleep ``seconds`` in total (split over the epochs) and yield the surrogate learning
    curve and result; ``should_finish`` ends it after the epochs finished so far. Without
    ``wake`` the sleep checks ``should_stop`` and ``should_finish`` every 50 ms; with it, the
    sleep ends when ``wake`` is set (the caller cancelled or asked to finish), so hundreds of
    sleeping slots in one process cost nothing."""
    from trainer_service.train import Cancelled

    began = time.perf_counter()
    final = surrogate_accuracy(arch, image)
    analysis = analyze(arch, image)
    curve: list[EpochRecord] = []
    for epoch in range(1, settings.epochs + 1):
        until = began + seconds * epoch / settings.epochs
        if curve and should_finish():
            break
        while (left := until - time.perf_counter()) > 0:
            if should_stop():
                raise Cancelled()
            if curve and should_finish():
                break
            if wake is None or wake.is_set():  # set before the first epoch ended: poll
                time.sleep(min(0.05, left))
            else:
                wake.wait(left)
        if curve and should_finish():
            break
        acc = final * (1 - 0.5**epoch) / (1 - 0.5**settings.epochs)
        record = EpochRecord(
            epoch, settings.epochs, 1.0 - acc, acc, acc, time.perf_counter() - began
        )
        curve.append(record)
        yield record
    yield TrainOutcome(
        validation_accuracy=max(r.validation_accuracy for r in curve),
        validation_accuracy_last5=max(r.validation_accuracy for r in curve[-5:]),
        test_accuracy=final,
        params=analysis.params,
        flops=analysis.flops,
        seconds=time.perf_counter() - began,
        device="simulated",
        architecture=format_arch(canonical(arch)),
        curve=tuple(curve),
        stopped_early=len(curve) < settings.epochs,
        evaluation=Evaluation.SIMULATED,
    )
