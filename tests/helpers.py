"""Small helpers shared by the tests."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from nasrl.core.results import TrainOutcome


def outcome(
    text: str, accuracy: float = 0.5, params: int = 10, flops: int = 10, seconds: float = 1.0
) -> TrainOutcome:
    """A synthetic training result for the network ``text``."""
    return TrainOutcome(accuracy, accuracy, accuracy, params, flops, seconds, "cpu", text)


def same_state(a: object, b: object) -> bool:
    """Deep equality of agent states (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(same_state(x, y) for x, y in zip(a, b))
        )
    return a == b


def through_bytes(state: dict[str, Any]) -> dict[str, Any]:
    """An agent state after torch.save and torch.load(weights_only=True), as the store does."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def load_module(path: Path) -> ModuleType:
    """Import a Python file by path (an exported network) as its own module."""
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nasrl_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``nasrl ARGS`` as a user would (a separate process), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "nasrl.cli", *args], capture_output=True, text=True, timeout=timeout
    )


class FakeClock:
    """A clock that stands still until the test moves it: pass it where code takes a clock or
    a timer (``controller_service.searches.Searches(store, clock=..., timer=...)``) and call
    ``advance`` instead of sleeping. Thread-safe; callable like ``time.time``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self._now += seconds


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds, for conditions nothing signals (another process's
    output on disk, say); prefer an event where there is one. ``timeout`` only keeps a broken
    test from hanging: it is never a measure of how fast anything is."""
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(0.01)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch on ``n`` threads for a while. A controller runs its agents on one
    (``python -m controller_service`` sets it): on two threads the agents' many tiny tensor
    operations slow down many times over when another process takes a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
