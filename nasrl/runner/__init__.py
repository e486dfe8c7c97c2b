"""The search runner, the client that connects a controller to trainers: ``Runner`` drives
one search to its end over a ``TrainerPool`` (``nasrl search``, ``nasrl demo`` and the
benchmarks use it). Imports ``nasrl.core`` and ``nasrl.rpc`` only, never ``nasrl.cli``.

* ``targets`` — trainer addresses and ``dns:///NAME:PORT`` resolution;
* ``pool`` — free slots per trainer, cool-offs, trainers that are down, health probes;
* ``calls`` — the controller calls, retried with backoff, Reports and Updates rationed;
* ``events`` — ``Work`` (a candidate with its dataset and settings), ``RunnerEvents``,
  ``RunStats``;
* ``runner`` — ``Runner`` itself: one asyncio event loop holding every child in flight."""

from __future__ import annotations

from nasrl.runner.events import RunnerEvents, RunStats, Work
from nasrl.runner.pool import TrainerPool
from nasrl.runner.runner import Runner, TrainersDown
from nasrl.runner.targets import dns_name, parse_trainers

__all__ = [
    "Runner",
    "RunnerEvents",
    "RunStats",
    "TrainerPool",
    "TrainersDown",
    "Work",
    "dns_name",
    "parse_trainers",
]
