"""Python client for nasrl's services, what other systems import.

Every call has a deadline; gRPC errors become ``NasrlError`` with the status code and the
server's sentence. ``ControllerClient`` answers with the frozen dataclasses defined here
(``Search``, ``SearchSpec``, ``SearchCounts``, ``LeaderboardEntry``, ``SampleBatch``), so its
callers read no protos; only ``update`` returns the ``UpdateResponse`` message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import TracebackType
from typing import Any

import grpc

from nasrl.core import codec
from nasrl.core.agent_settings import AgentSettings, AgentSettingsError
from nasrl.core.arch import Architecture, parse
from nasrl.core.results import EpochRecord, SettingsError, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape
from nasrl.rpc import rpc
from nasrl.rpc.errors import NasrlError
from nasrl.rpc.health import wait_until_serving
from nasrl.rpc.security import ClientSecurity
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc, trainer_pb2, trainer_pb2_grpc

__all__ = [
    "NasrlError",
    "TrainerClient",
    "TrainerStatus",
    "ControllerClient",
    "Candidate",
    "SampleBatch",
    "SearchState",
    "SearchCounts",
    "SearchSpec",
    "LeaderboardEntry",
    "Search",
    "Child",
    "ChildStatus",
    "EpochReport",
    "wait_until_serving",
]


@dataclass(frozen=True)
class TrainerStatus:
    """What a trainer has and is doing (``GetStatus``)."""

    slots: int
    busy_slots: int
    ready: bool  # False while it waits for a free GPU
    devices: tuple[str, ...]  # each slot's device
    mode: str  # train, table or simulate
    weights_kept: int
    weights_bytes: int


class TrainerClient:
    """Trains architectures on one trainer (or a DNS name of many)."""

    def __init__(
        self,
        target: str,
        timeout: float = 3600.0,
        security: ClientSecurity | None = None,
        server_name: str | None = None,
    ) -> None:
        """``server_name``: the DNS ``NAME:PORT`` that ``target`` was resolved from; with TLS
        the certificate must name it (not the IP)."""
        self.target = target
        self.timeout = timeout
        self._channel = rpc.channel(target, security, server_name)
        self._stub = trainer_pb2_grpc.TrainerStub(self._channel)

    def train(
        self,
        arch: Architecture | str,
        dataset: str,
        settings: TrainSettings | None = None,
        on_epoch: Callable[[EpochRecord], None] | None = None,
        timeout: float | None = None,
        on_call: Callable[[Any], None] | None = None,
        run_id: str = "",
    ) -> TrainOutcome:
        """Train one architecture and return its result; ``on_epoch`` sees each epoch;
        ``on_call`` receives the call object first (its ``cancel()`` stops the training)."""
        request = _train_request(arch, dataset, settings, run_id)
        try:
            call = self._stub.Train(request, timeout=timeout or self.timeout)
            if on_call:
                on_call(call)
            for event in call:
                if event.HasField("progress"):
                    if on_epoch:
                        on_epoch(codec.epoch_from_proto(event.progress))
                elif event.HasField("result"):
                    return codec.outcome_from_proto(event.result)
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        raise NasrlError(
            grpc.StatusCode.ABORTED, f"{self.target} ended the Train stream without a result"
        )

    def finish_early(self, run_id: str, timeout: float = 30.0) -> bool:
        """Ask the trainer to end the child ``run_id`` now (early stopping): its ``train``
        call returns the result of the finished epochs. False when it is not training here."""
        try:
            reply = self._stub.FinishEarly(
                trainer_pb2.FinishEarlyRequest(run_id=run_id), timeout=timeout
            )
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        return bool(reply.found)

    def list_datasets(
        self, name: str = "", timeout: float = 120.0
    ) -> list[trainer_pb2.DatasetInfo]:
        """The datasets this trainer can train on (just ``name`` when given; [] when it has
        no such dataset), with shape, classes, sizes, normalisation and any ``error``."""
        try:
            reply = self._stub.ListDatasets(
                trainer_pb2.ListDatasetsRequest(name=name), timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return []
            raise NasrlError.from_rpc(exc, self.target) from exc
        return list(reply.datasets)

    def fetch_weights(self, weights_id: str, timeout: float = 300.0) -> bytes | None:
        """The torch.save bytes of a trained child's weights (``TrainOutcome.weights_id``), or
        None when this trainer does not hold them."""
        data = bytearray()
        try:
            for chunk in self._stub.GetWeights(
                trainer_pb2.GetWeightsRequest(weights_id=weights_id), timeout=timeout
            ):
                data += chunk.data
                if len(data) > chunk.total_bytes:
                    raise NasrlError(
                        grpc.StatusCode.DATA_LOSS,
                        f"{self.target} sent more weight bytes than announced",
                    )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise NasrlError.from_rpc(exc, self.target) from exc
        return bytes(data)

    def status(self, timeout: float = 10.0) -> TrainerStatus:
        """Its slots (and how many are busy), each slot's device, its mode and kept weights."""
        try:
            reply = self._stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        return TrainerStatus(
            reply.slots,
            reply.busy_slots,
            reply.ready,
            tuple(reply.devices),
            reply.mode,
            reply.weights_kept,
            reply.weights_bytes,
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> TrainerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class Candidate:
    """A child to train (``cached`` None) or one already evaluated in the search."""

    id: int
    arch: Architecture
    text: str
    lease_deadline: float
    cached: TrainOutcome | None


@dataclass(frozen=True)
class SampleBatch:
    candidates: list[Candidate]
    done: bool
    dataset: str
    training: TrainSettings


class SearchState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    UNKNOWN = "unknown"  # a state this client does not know (a newer controller)


_STATES = {
    cpb.RUNNING: SearchState.RUNNING,
    cpb.DONE: SearchState.DONE,
    cpb.STOPPED: SearchState.STOPPED,
}


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


@dataclass(frozen=True)
class SearchSpec:
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
    e.g. ``epsilon``); ``best`` is None before the first result."""

    search_id: str
    name: str
    spec: SearchSpec
    state: SearchState
    counts: SearchCounts
    progress: Mapping[str, float]
    best: LeaderboardEntry | None
    created: float


class ChildStatus(StrEnum):
    """What became of a child (``ListChildren``)."""

    LEASED = "leased"  # out for training
    TRAINED = "trained"
    FAILED = "failed"
    CACHED = "cached"  # answered from an earlier result without training
    WAITING = "waiting"  # equal to a network in flight
    INVALID = "invalid"  # never trained: does not fit, over a limit, screened out
    UNKNOWN = "unknown"  # a status this client does not know (a newer controller)


_CHILD_STATUSES = {
    cpb.CHILD_LEASED: ChildStatus.LEASED,
    cpb.CHILD_TRAINED: ChildStatus.TRAINED,
    cpb.CHILD_FAILED: ChildStatus.FAILED,
    cpb.CHILD_CACHED: ChildStatus.CACHED,
    cpb.CHILD_WAITING: ChildStatus.WAITING,
    cpb.CHILD_INVALID: ChildStatus.INVALID,
}


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


def _child_result(c: cpb.Child) -> TrainOutcome | None:
    if not c.HasField("result"):
        return None
    result = codec.outcome_from_proto(c.result)
    # a listing leaves the result's architecture out: it is the child's
    return result if result.architecture else replace(result, architecture=c.architecture)


def _child(c: cpb.Child) -> Child:
    return Child(
        candidate_id=c.candidate_id,
        architecture=c.architecture,
        status=_CHILD_STATUSES.get(c.status, ChildStatus.UNKNOWN),
        result=_child_result(c),
        reason=c.reason,
        reward=c.reward if c.HasField("reward") else None,
        reissued=c.reissued,
        screen_score=c.screen_score if c.HasField("screen_score") else None,
        reports=tuple(
            EpochReport(r.epoch, r.validation_accuracy, r.decision == cpb.STOP) for r in c.reports
        ),
    )


def _entry(e: cpb.LeaderboardEntry) -> LeaderboardEntry:
    return LeaderboardEntry(
        e.candidate_id,
        e.architecture,
        e.accuracy,
        e.test_accuracy,
        e.params,
        e.flops,
        e.seconds,
        e.reward,
    )


def _agent_settings(msg: cpb.AgentSpec) -> AgentSettings | None:
    try:
        return codec.agent_settings_from_proto(msg)
    except (AgentSettingsError, SettingsError):
        return None


def _search(s: cpb.Search) -> Search:
    shape = s.spec.dataset_shape
    spec = SearchSpec(
        agent=s.spec.agent.name,
        agent_settings=_agent_settings(s.spec.agent),
        dataset=s.spec.dataset,
        budget=s.spec.budget,
        training=codec.settings_from_proto(s.spec.training),
        dataset_shape=(
            InputShape(shape.channels, shape.height, shape.width, shape.classes)
            if shape.classes
            else None
        ),
        early_stopping=s.spec.early_stopping.rule,
        request=s.spec,
    )
    c = s.counts
    return Search(
        search_id=s.search_id,
        name=s.name,
        spec=spec,
        state=_STATES.get(s.state, SearchState.UNKNOWN),
        counts=SearchCounts(c.sampled, c.in_flight, c.evaluated, c.cached, c.failed, c.reissued),
        progress=dict(s.progress),
        best=_entry(s.best) if s.HasField("best") else None,
        created=s.created,
    )


class ControllerClient:
    """Ask/tell access to the controller. Calls return the dataclasses above (``Search``,
    ``LeaderboardEntry``, ``SampleBatch``); ``update`` returns the ``UpdateResponse``."""

    def __init__(
        self, target: str, timeout: float = 30.0, security: ClientSecurity | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.security = security  # for an AsyncControllerClient to the same controller
        self._channel = rpc.channel(target, security)
        self._stub = controller_pb2_grpc.ControllerStub(self._channel)

    def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc

    def create_search(
        self, request: cpb.CreateSearchRequest | None = None, **fields: Any
    ) -> Search:
        """``create_search(agent=cpb.AgentSpec(name="reinforce"), dataset="digits", budget=6)``
        or with a ready ``CreateSearchRequest``."""
        return _search(self._call("CreateSearch", request or cpb.CreateSearchRequest(**fields)))

    def sample(
        self, search_id: str, count: int = 1, request_id: str = "", reclaim: bool = False
    ) -> SampleBatch:
        """Candidates to train. Retrying with the same ``request_id`` returns the same ones;
        ``reclaim`` first re-hands candidates still leased to a crashed earlier client."""
        return _sample_batch(
            self._call("Sample", _sample_request(search_id, count, request_id, reclaim))
        )

    def report(
        self, search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
    ) -> bool:
        """Report one finished epoch of a running child; True to go on, False when the
        search's early-stopping rule says STOP."""
        reply = self._call(
            "Report", _report_request(search_id, candidate_id, epoch, validation_accuracy)
        )
        return bool(reply.decision != cpb.STOP)

    def update(
        self,
        search_id: str,
        candidate_id: int,
        result: TrainOutcome | None = None,
        failure: str | None = None,
    ) -> cpb.UpdateResponse:
        """Report a result, or a failure reason; exactly one of them."""
        request = _update_request(search_id, candidate_id, result, failure)
        reply: cpb.UpdateResponse = self._call("Update", request)
        return reply

    def get_search(self, search_id: str) -> Search:
        return _search(self._call("GetSearch", cpb.GetSearchRequest(search_id=search_id)))

    def list_searches(self) -> list[Search]:
        reply = self._call("ListSearches", cpb.ListSearchesRequest())
        return [_search(s) for s in reply.searches]

    def leaderboard(
        self, search_id: str, top: int = 10, pareto: str = ""
    ) -> list[LeaderboardEntry]:
        """The ``top`` most accurate results, or with ``pareto`` ("params"/"flops") the
        accuracy/cost Pareto front, cheapest first."""
        reply = self._call(
            "Leaderboard", cpb.LeaderboardRequest(search_id=search_id, top=top, pareto=pareto)
        )
        return [_entry(e) for e in reply.entries]

    def list_children(
        self, search_id: str, after: int = 0, limit: int = 0, detail: bool = False
    ) -> tuple[list[Child], bool]:
        """A page of the search's children with ids above ``after`` (``limit`` 0: 1,000; at
        most 10,000, or 100 with ``detail``: curves and reported epochs), and whether more
        follow."""
        reply = self._call(
            "ListChildren",
            cpb.ListChildrenRequest(
                search_id=search_id, after_candidate_id=after, limit=limit, detail=detail
            ),
        )
        return [_child(c) for c in reply.children], bool(reply.more)

    def stop_search(self, search_id: str) -> Search:
        return _search(self._call("StopSearch", cpb.StopSearchRequest(search_id=search_id)))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------------- messages


def _train_request(
    arch: Architecture | str,
    dataset: str,
    settings: TrainSettings | None,
    run_id: str,
    await_decisions: bool = False,
) -> trainer_pb2.TrainRequest:
    return trainer_pb2.TrainRequest(
        architecture=codec.arch_to_proto(parse(arch) if isinstance(arch, str) else arch),
        dataset=dataset,
        config=codec.settings_to_proto(settings or TrainSettings()),
        run_id=run_id,
        await_decisions=await_decisions and bool(run_id),
    )


def _sample_request(
    search_id: str, count: int, request_id: str, reclaim: bool
) -> cpb.SampleRequest:
    return cpb.SampleRequest(
        search_id=search_id, count=count, request_id=request_id, reclaim=reclaim
    )


def _sample_batch(reply: cpb.SampleResponse) -> SampleBatch:
    candidates = [
        Candidate(
            c.candidate_id,
            codec.arch_from_proto(c.architecture),
            c.text,
            c.lease_deadline,
            codec.outcome_from_proto(c.cached_result) if c.HasField("cached_result") else None,
        )
        for c in reply.candidates
    ]
    return SampleBatch(
        candidates, reply.done, reply.dataset, codec.settings_from_proto(reply.training)
    )


def _report_request(
    search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
) -> cpb.ReportRequest:
    return cpb.ReportRequest(
        search_id=search_id,
        candidate_id=candidate_id,
        epoch=epoch,
        validation_accuracy=validation_accuracy,
    )


def _update_request(
    search_id: str, candidate_id: int, result: TrainOutcome | None, failure: str | None
) -> cpb.UpdateRequest:
    if (result is None) == (failure is None):
        raise ValueError("give exactly one of result and failure")
    request = cpb.UpdateRequest(search_id=search_id, candidate_id=candidate_id)
    if result is not None:
        request.result.CopyFrom(codec.outcome_to_proto(result))
    else:
        request.failure = failure or ""
    return request


# ---------------------------------------------------------------------------- asyncio


class AsyncTrainerClient:
    """``TrainerClient.train`` and ``finish_early`` for an asyncio event loop (grpc.aio):
    one loop holds any number of trainings without a thread each. Create it in the loop."""

    def __init__(
        self,
        target: str,
        timeout: float = 3600.0,
        security: ClientSecurity | None = None,
        server_name: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel, self._metadata = rpc.aio_channel(target, security, server_name)
        self._stub = trainer_pb2_grpc.TrainerStub(self._channel)

    async def train(
        self,
        arch: Architecture | str,
        dataset: str,
        settings: TrainSettings | None = None,
        on_epoch: Callable[[EpochRecord], Awaitable[None]] | None = None,
        run_id: str = "",
        await_decisions: bool = False,
    ) -> TrainOutcome:
        """Train one architecture; ``await on_epoch(record)`` after each epoch. Cancelling
        the task cancels the training. ``await_decisions`` (with a ``run_id``): a table or
        simulated trainer waits after each epoch until ``on_epoch`` returned (which may
        have called ``finish_early``); this call then lets it go on (``proceed``)."""
        request = _train_request(arch, dataset, settings, run_id, await_decisions)
        try:
            call = self._stub.Train(request, timeout=self.timeout, metadata=self._metadata)
            async for event in call:
                if event.HasField("progress"):
                    if on_epoch:
                        await on_epoch(codec.epoch_from_proto(event.progress))
                    if event.progress.awaiting_decision:
                        await self.proceed(run_id, event.progress.epoch)
                elif event.HasField("result"):
                    return codec.outcome_from_proto(event.result)
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        raise NasrlError(
            grpc.StatusCode.ABORTED, f"{self.target} ended the Train stream without a result"
        )

    async def finish_early(self, run_id: str, timeout: float = 30.0) -> bool:
        try:
            reply = await self._stub.FinishEarly(
                trainer_pb2.FinishEarlyRequest(run_id=run_id),
                timeout=timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        return bool(reply.found)

    async def proceed(self, run_id: str, epoch: int, timeout: float = 30.0) -> bool:
        """Let the waiting child ``run_id`` go on past ``epoch`` (see ``train``)."""
        try:
            reply = await self._stub.Proceed(
                trainer_pb2.ProceedRequest(run_id=run_id, epoch=epoch),
                timeout=timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc
        return bool(reply.found)

    async def close(self) -> None:
        await self._channel.close()


class AsyncControllerClient:
    """The calls a runner makes (Sample, Report, Update) for an asyncio event loop."""

    def __init__(
        self, target: str, timeout: float = 30.0, security: ClientSecurity | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel, self._metadata = rpc.aio_channel(target, security)
        self._stub = controller_pb2_grpc.ControllerStub(self._channel)

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=self.timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise NasrlError.from_rpc(exc, self.target) from exc

    async def sample(
        self, search_id: str, count: int = 1, request_id: str = "", reclaim: bool = False
    ) -> SampleBatch:
        reply = await self._call("Sample", _sample_request(search_id, count, request_id, reclaim))
        return _sample_batch(reply)

    async def report(
        self, search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
    ) -> bool:
        request = _report_request(search_id, candidate_id, epoch, validation_accuracy)
        reply = await self._call("Report", request)
        return bool(reply.decision != cpb.STOP)

    async def update(
        self,
        search_id: str,
        candidate_id: int,
        result: TrainOutcome | None = None,
        failure: str | None = None,
    ) -> cpb.UpdateResponse:
        reply: cpb.UpdateResponse = await self._call(
            "Update", _update_request(search_id, candidate_id, result, failure)
        )
        return reply

    async def close(self) -> None:
        await self._channel.close()
