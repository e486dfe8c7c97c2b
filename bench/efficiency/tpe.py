"""Optuna's TPESampler (a benchmark-only dependency, ``pip install -e '.[bench]'``) over the
same Zoph decisions as the controller's agents (five categorical indices per layer and the
skip bits), decoded with ``ZophSpace.decode`` and trained by the same trainers. Like the
controller it never trains a network twice (it tells the stored value) and waits for a twin
that is in flight."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from bench.efficiency.runlog import RunLog
from bench.efficiency.settings import ZOPH
from bench.efficiency.trainers import in_threads, train_recorded
from controller_service.spaces import ZOPH_DECISIONS, ZophSpace
from nasrl.core.arch import Architecture, arch_hash
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import TrainerClient

if TYPE_CHECKING:
    import optuna

__all__ = ["zoph_trial", "run_tpe"]


def zoph_trial(trial: optuna.trial.Trial, space: ZophSpace) -> Architecture:
    """The same decisions the controller's agents make, as Optuna categorical parameters."""
    tokens: list[list[int]] = []
    skips: list[list[int]] = []
    for i in range(space.max_layers):
        tokens.append(
            [
                int(trial.suggest_categorical(f"l{i + 1}_{d}", list(range(len(space.choices(d))))))
                for d in ZOPH_DECISIONS
            ]
        )
        skips.append(
            [int(trial.suggest_categorical(f"l{i + 1}_skip{j + 1}", [0, 1])) for j in range(i)]
            if space.skip_connections
            else []
        )
    return space.decode(tokens, skips if space.skip_connections else None)


def run_tpe(trainers: list[TrainerClient], log: RunLog, settings: TrainSettings) -> dict[str, Any]:
    """Optuna's TPE over the Zoph space, two trials at a time, with the controller's dedup."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=log.seed)
    )
    lock = threading.Lock()
    known: dict[str, TrainOutcome] = {}
    in_flight: dict[str, threading.Event] = {}

    def work(trainer: TrainerClient) -> None:
        while not log.exhausted():
            with lock:
                trial = study.ask()
                arch = zoph_trial(trial, ZOPH)
                digest = arch_hash(arch)
                outcome = known.get(digest)
                twin = in_flight.get(digest)
                if outcome is None and twin is None:
                    in_flight[digest] = threading.Event()
            if outcome is None and twin is not None:
                twin.wait()
                with lock:
                    outcome = known.get(digest)
                if outcome is None:  # the twin failed
                    with lock:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
            if outcome is not None:
                log.add_cached(outcome)
            else:
                result = train_recorded(trainer, arch, log.dataset, settings, log)
                with lock:
                    if isinstance(result, TrainOutcome):
                        known[digest] = result
                    in_flight.pop(digest).set()
                if not isinstance(result, TrainOutcome):
                    with lock:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                outcome = result
            with lock:
                study.tell(trial, outcome.validation_accuracy)

    in_threads([functools.partial(work, t) for t in trainers])
    return {"trials": len(study.trials), "optuna": optuna.__version__}
