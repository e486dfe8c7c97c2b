"""What a runner hands a trainer, and what it tells a user interface."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc.client import Candidate, SampleBatch

__all__ = ["Work", "RunnerEvents", "RunStats"]


@dataclass(frozen=True)
class Work:
    """One candidate to train, with the dataset and training settings its Sample gave."""

    candidate: Candidate
    dataset: str
    training: TrainSettings

    @classmethod
    def of(cls, batch: SampleBatch) -> list[Work]:
        """Every candidate of ``batch`` (cached ones too) with the batch's settings."""
        return [cls(c, batch.dataset, batch.training) for c in batch.candidates]


@dataclass
class RunnerEvents:
    """Callbacks for a user interface; all optional, called from the thread running the
    runner (its event loop): keep them quick."""

    on_epoch: Callable[[Candidate, str, EpochRecord], None] | None = None
    on_result: Callable[[Candidate, str | None, TrainOutcome | None, str | None], None] | None = (
        None
    )
    on_start: Callable[[Candidate, str], None] | None = None  # a try on a trainer begins
    #: the child's trainer is down (target, error): it waits for one that is up
    on_wait: Callable[[Candidate, str, str], None] | None = None


@dataclass
class RunStats:
    trained: int = 0
    stopped_early: int = 0  # of the trained: ended by the early-stopping rule (or a limit)
    cached: int = 0
    failed: int = 0
    trainer_seconds: float = 0.0
    per_trainer: Counter[str] = field(default_factory=Counter)
    last_failure: str | None = None  # the reason of the latest child that failed in this run
