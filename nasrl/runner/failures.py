"""How the runner tells a child's failure from a trainer's: the trainer errors that are the
child's, how often a child may bring its trainer down, and the error that stops a run when
no trainer is up."""

from __future__ import annotations

import grpc

from nasrl.core.results import TrainOutcome
from nasrl.rpc.client import NasrlError
from nasrl.runner.pool import TrainerPool

__all__ = ["PERMANENT_TRAINER", "LOSSES_PER_CHILD", "Trained", "TrainersDown", "trainers_gone"]

#: a trainer's answers that say the child cannot train (not worth another trainer)
PERMANENT_TRAINER = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
)
#: a child whose trainer went down under it this many times is reported failed: it may be what
#: kills them (a network too big for the host's memory, say)
LOSSES_PER_CHILD = 5

#: (result, failure reason, trainer that answered) of one child
Trained = tuple[TrainOutcome | None, str | None, str | None]


class TrainersDown(NasrlError):
    """No trainer has been up for longer than the runner's ``trainer_wait``."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message)


def trainers_gone(
    pool: TrainerPool, only: frozenset[str] | None, wait: float, search_id: str
) -> TrainersDown | None:
    """The error to stop with once no trainer (of ``only``: those that may train the
    children now due) has been up for ``wait`` seconds."""
    down = pool.unreachable(only)
    if down is None or down[0] <= wait:
        return None
    return TrainersDown(
        f"no trainer has been up for {down[0]:.0f} s (--trainer-wait {wait:g}; "
        f"last lost: {down[1]}); the children in flight were not reported and stay leased: "
        f"continue with --resume {search_id} once a trainer is up"
    )
