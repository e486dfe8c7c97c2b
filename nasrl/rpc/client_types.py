"""The client's view of nasrl's services: the frozen dataclasses that ``ControllerClient``
and ``TrainerClient`` answer with, so their callers read no protos. Their names differ from
the controller's own types (``controller_service.spec.SearchSpec``,
``controller_service.states.SearchState``): these are what a client sees over gRPC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from nasrl.core.agent_settings import AgentSettings
from nasrl.core.arch import Architecture
from nasrl.core.results import Evaluation, SharedTraining, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape

if TYPE_CHECKING:
    from protos import controller_pb2 as cpb

__all__ = [
    "TrainerStatus",
    "Candidate",
    "SampleBatch",
    "SearchStatus",
    "SearchCounts",
    "SearchSettings",
    "LeaderboardEntry",
    "Search",
    "ChildStatus",
    "EpochReport",
    "Child",
    "UpdateResult",
]


@dataclass(frozen=True)
class TrainerStatus:
    """What a trainer has and is doing (``GetStatus``)."""

    slots: int
    busy_slots: int
    ready: bool  # False while it waits for a free GPU
    devices: tuple[str, ...]  # each slot's device
    mode: str  # train, table, simulate or supernet
    weights_kept: int
    weights_bytes: int


@dataclass(frozen=True)
class Candidate:
    """A child to train (``cached`` None) or one already evaluated in the search; ``shared``
    set: to train under shared weights on a ``--supernet`` trainer (a SHARED search)."""

    id: int
    arch: Architecture
    text: str
    lease_deadline: float
    cached: TrainOutcome | None
    shared: SharedTraining | None = None


@dataclass(frozen=True)
class SampleBatch:
    candidates: list[Candidate]
    done: bool
    dataset: str
    training: TrainSettings


class SearchStatus(StrEnum):
    """Where a search stands (not the controller's own ``SearchState``)."""

    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # a state this client does not know (a newer controller)


@dataclass(frozen=True)
class SearchCounts:
    """Candidates of a search by what became of them."""

    sampled: int
    in_flight: int
    evaluated: int
    cached: int
    failed: int
    reissued: int


@dataclass(frozen=True)
class LeaderboardEntry:
    """One trained child: canonical text, accuracies, size, cost and the agent's reward."""

    candidate_id: int
    architecture: str
    accuracy: float
    test_accuracy: float
    params: int
    flops: int
    seconds: float
    reward: float
    #: how ``accuracy`` was obtained: SHARED is a shared-weights score, not a trained accuracy
    evaluation: Evaluation = Evaluation.FULL


@dataclass(frozen=True)
class SearchSettings:
    """The settings a search was created with, defaults filled in. ``dataset_shape`` is None
    for a built-in dataset the controller did not describe; ``request`` is the whole
    ``CreateSearchRequest`` (space, warm start, constraints, agent settings) as stored."""

    agent: str
    agent_settings: AgentSettings | None  # None for an agent this client does not know
    dataset: str
    budget: int
    training: TrainSettings
    dataset_shape: InputShape | None
    early_stopping: str
    request: cpb.CreateSearchRequest


@dataclass(frozen=True)
class Search:
    """A search: its settings, state and progress (``progress``: numbers its agent reports,
    e.g. ``epsilon``); ``best`` is None before the first result; ``ended_because``: why a
    search that is no longer running ended ("budget spent", "stopped", "converged: ..."), ""
    while it runs."""

    search_id: str
    name: str
    spec: SearchSettings
    state: SearchStatus
    counts: SearchCounts
    progress: Mapping[str, float]
    best: LeaderboardEntry | None
    created: float
    ended_because: str = ""


class ChildStatus(StrEnum):
    """What became of a child (``ListChildren``)."""

    LEASED = "leased"  # out for training
    TRAINED = "trained"
    FAILED = "failed"
    CACHED = "cached"  # answered from an earlier result without training
    WAITING = "waiting"  # equal to a network in flight
    INVALID = "invalid"  # never trained: does not fit, over a limit, screened out
    UNKNOWN = "unknown"  # a status this client does not know (a newer controller)


@dataclass(frozen=True)
class EpochReport:
    """One epoch reported with Report and the early-stopping rule's decision."""

    epoch: int
    validation_accuracy: float
    stop: bool


@dataclass(frozen=True)
class Child:
    """One candidate of a search: ``result`` for a trained or cached one (its curve only
    when listed with detail), ``reason`` why it failed or was not trained."""

    candidate_id: int
    architecture: str
    status: ChildStatus
    result: TrainOutcome | None
    reason: str
    reward: float | None
    reissued: int
    screen_score: float | None
    reports: tuple[EpochReport, ...]


@dataclass(frozen=True)
class UpdateResult:
    """What an Update did: ``accepted`` False when this exact report had been received
    before (nothing changed); ``reward`` the agent learnt from (for a result); the search's
    status after it."""

    accepted: bool
    reward: float
    state: SearchStatus
