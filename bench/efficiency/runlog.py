"""What one (dataset, agent, seed) run spent and found, and its numbers at exactly the budget B:
the best validation accuracy among the children whose completion kept the cumulative
trainer-seconds <= B (the child that crosses B still trains and is recorded, but counts only
in the trajectory), and the test accuracy of that child."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from nasrl.core.results import TrainOutcome

__all__ = ["RunLog", "STALL"]

STALL = 500  # consecutive duplicates (no training) after which a run gives up


@dataclass
class RunLog:
    """What one (dataset, agent, seed) run spent and found; thread-safe."""

    agent: str
    dataset: str
    seed: int
    budget: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    spent: float = 0.0
    trained: int = 0
    cached: int = 0
    saved_seconds: float = 0.0
    failed: int = 0
    abandoned: int = 0  # in flight when the budget ran out: cancelled, never counted
    streak: int = 0  # consecutive duplicates
    stalled: bool = False
    best_val: float = -1.0
    best_test: float = float("nan")
    # (cumulative trainer-seconds, best validation accuracy so far, test accuracy of that best)
    trajectory: list[tuple[float, float, float]] = field(default_factory=list)
    # (cumulative trainer-seconds, architecture) of every new best
    improvements: list[tuple[float, str]] = field(default_factory=list)
    calls: set[Any] = field(default_factory=set, repr=False)  # Train calls in flight

    def exhausted(self) -> bool:
        with self.lock:
            return self._exhausted()

    def _exhausted(self) -> bool:
        return self.spent >= self.budget or self.stalled

    def register(self, call: Any) -> None:
        """Track a Train call; cancel it at once if the budget is already spent."""
        with self.lock:
            self.calls.add(call)
            if self._exhausted():
                call.cancel()

    def unregister(self, call: Any) -> None:
        with self.lock:
            self.calls.discard(call)

    def _cancel_if_spent(self) -> None:
        """A child that completes after the budget is spent cannot count: stop the others."""
        if self._exhausted():
            for call in self.calls:
                call.cancel()

    def add_trained(self, outcome: TrainOutcome) -> None:
        with self.lock:
            self.spent += outcome.seconds
            self.trained += 1
            self.streak = 0
            if outcome.validation_accuracy > self.best_val:
                self.best_val = outcome.validation_accuracy
                self.best_test = outcome.test_accuracy
                self.improvements.append((self.spent, outcome.architecture))
            self.trajectory.append((self.spent, self.best_val, self.best_test))
            self._cancel_if_spent()

    def add_cached(self, outcome: TrainOutcome) -> None:
        with self.lock:
            self.cached += 1
            self.saved_seconds += outcome.seconds
            self.streak += 1
            self.stalled = self.stalled or self.streak >= STALL
            self._cancel_if_spent()

    def add_failed(self, seconds: float) -> None:
        with self.lock:
            self.spent += seconds
            self.failed += 1
            self.streak = 0
            self._cancel_if_spent()

    def add_abandoned(self, count: int = 1) -> None:
        with self.lock:
            self.abandoned += count

    def trained_within(self) -> int:
        return sum(1 for p in self.trajectory if p[0] <= self.budget)

    def at_budget(self) -> tuple[float, float, float | None]:
        """(best validation accuracy, its test accuracy, trainer-seconds when found) among the
        children completed within the budget; NaNs when none was."""
        within = [p for p in self.trajectory if p[0] <= self.budget]
        if not within:
            return float("nan"), float("nan"), None
        best = within[-1]
        found = next(p[0] for p in within if p[1] == best[1])
        return best[1], best[2], found

    def best_arch(self) -> str:
        """The architecture of the best child within the budget."""
        within = [a for s, a in self.improvements if s <= self.budget]
        return within[-1] if within else ""

    def seconds_to(self, target: float) -> float | None:
        """Trainer-seconds at which the best-so-far first reached ``target`` (within B)."""
        return next((s for s, v, _ in self.trajectory if v >= target and s <= self.budget), None)
