"""Python client for nasrl's services, what other systems import.

Every call has a deadline; gRPC errors become ``NasrlError`` with the status code and the
server's sentence. ``ControllerClient`` and ``TrainerClient`` answer with the frozen dataclasses
of ``nasrl.rpc.client_types`` (``Search``, ``SearchSettings``, ``SearchCounts``,
``LeaderboardEntry``, ``SampleBatch``, ``UpdateResult``, ...), re-exported here, so their callers
read no protos. ``nasrl.rpc.aio_client`` has the asyncio twins a runner uses (also re-exported);
``nasrl.rpc.client_messages`` turns types into messages and back."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import grpc

from nasrl.core import codec
from nasrl.core.arch import Architecture
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc import client_messages as msg
from nasrl.rpc import rpc
from nasrl.rpc.aio_client import AsyncControllerClient, AsyncTrainerClient
from nasrl.rpc.client_types import (
    Candidate,
    Child,
    ChildStatus,
    EpochReport,
    LeaderboardEntry,
    SampleBatch,
    Search,
    SearchCounts,
    SearchSettings,
    SearchStatus,
    TrainerStatus,
    UpdateResult,
)
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
    "AsyncTrainerClient",
    "AsyncControllerClient",
    "Candidate",
    "SampleBatch",
    "SearchStatus",
    "SearchCounts",
    "SearchSettings",
    "LeaderboardEntry",
    "Search",
    "Child",
    "ChildStatus",
    "EpochReport",
    "UpdateResult",
    "wait_until_serving",
]


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
        request = msg.train_request(arch, dataset, settings, run_id)
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


class ControllerClient:
    """Ask/tell access to the controller. Calls return the dataclasses of ``client_types``
    (``Search``, ``LeaderboardEntry``, ``SampleBatch``, ``UpdateResult``, ...)."""

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
        return msg.search(self._call("CreateSearch", request or cpb.CreateSearchRequest(**fields)))

    def sample(
        self, search_id: str, count: int = 1, request_id: str = "", reclaim: bool = False
    ) -> SampleBatch:
        """Candidates to train. Retrying with the same ``request_id`` returns the same ones;
        ``reclaim`` first re-hands candidates still leased to a crashed earlier client."""
        return msg.sample_batch(
            self._call("Sample", msg.sample_request(search_id, count, request_id, reclaim))
        )

    def report(
        self, search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
    ) -> bool:
        """Report one finished epoch of a running child; True to go on, False when the
        search's early-stopping rule says STOP."""
        reply = self._call(
            "Report", msg.report_request(search_id, candidate_id, epoch, validation_accuracy)
        )
        return bool(reply.decision != cpb.STOP)

    def update(
        self,
        search_id: str,
        candidate_id: int,
        result: TrainOutcome | None = None,
        failure: str | None = None,
    ) -> UpdateResult:
        """Report a result, or a failure reason; exactly one of them."""
        request = msg.update_request(search_id, candidate_id, result, failure)
        return msg.update_result(self._call("Update", request))

    def get_search(self, search_id: str) -> Search:
        return msg.search(self._call("GetSearch", cpb.GetSearchRequest(search_id=search_id)))

    def list_searches(self) -> list[Search]:
        reply = self._call("ListSearches", cpb.ListSearchesRequest())
        return [msg.search(s) for s in reply.searches]

    def leaderboard(
        self, search_id: str, top: int = 10, pareto: str = ""
    ) -> list[LeaderboardEntry]:
        """The ``top`` most accurate results, or with ``pareto`` ("params"/"flops") the
        accuracy/cost Pareto front, cheapest first."""
        reply = self._call(
            "Leaderboard", cpb.LeaderboardRequest(search_id=search_id, top=top, pareto=pareto)
        )
        return [msg.entry(e) for e in reply.entries]

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
        return [msg.child(c) for c in reply.children], bool(reply.more)

    def stop_search(self, search_id: str) -> Search:
        return msg.search(self._call("StopSearch", cpb.StopSearchRequest(search_id=search_id)))

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
