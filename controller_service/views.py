"""What the controller's calls answer: handouts, search views, update acknowledgements, and
the Pareto front of a leaderboard. Plain data."""

from __future__ import annotations

from dataclasses import dataclass

from controller_service.spec import SearchSpec
from controller_service.store import ResultRow
from nasrl.core.results import SharedTraining, TrainOutcome

__all__ = ["Handout", "SearchView", "UpdateAck", "pareto_front"]


@dataclass(frozen=True)
class Handout:
    """A candidate given to a caller: to train (``cached`` None) or answered from results."""

    id: int
    text: str
    lease_deadline: float
    cached: TrainOutcome | None
    shared: SharedTraining | None = None  # to train under shared weights (a SHARED search)


@dataclass(frozen=True)
class SearchView:
    id: str
    name: str
    created: float
    spec: SearchSpec
    state: str
    counts: dict[str, int]
    progress: dict[str, float]
    best: ResultRow | None
    ended_because: str = ""  # why it is no longer running: "" while it is


@dataclass(frozen=True)
class UpdateAck:
    accepted: bool
    reward: float | None
    state: str


def pareto_front(rows: list[ResultRow], metric: str) -> list[ResultRow]:
    """The results no other result beats on both accuracy and ``metric`` (params or flops),
    cheapest first; of equal cost only the most accurate."""

    def cost(r: ResultRow) -> int:
        return r.params if metric == "params" else r.flops

    front: list[ResultRow] = []
    for r in sorted(rows, key=lambda r: (cost(r), -r.accuracy, r.candidate_id)):
        if not front or r.accuracy > front[-1].accuracy:
            front.append(r)
    return front
