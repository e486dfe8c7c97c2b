"""``AsyncTrainerClient`` and ``AsyncControllerClient``: the calls a runner makes, for an
asyncio event loop (grpc.aio), so one loop holds any number of trainings without a thread
each. Same messages and types as ``nasrl.rpc.client``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from nasrl.core import codec
from nasrl.core.arch import Architecture
from nasrl.core.results import EpochRecord, SharedTraining, TrainOutcome, TrainSettings
from nasrl.rpc import client_messages as msg
from nasrl.rpc import rpc
from nasrl.rpc.client_types import SampleBatch, Search, UpdateResult
from nasrl.rpc.errors import NasrlError
from nasrl.rpc.security import ClientSecurity
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc, trainer_pb2, trainer_pb2_grpc

__all__ = ["AsyncTrainerClient", "AsyncControllerClient"]


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
        shared: SharedTraining | None = None,
    ) -> TrainOutcome:
        """Train one architecture; ``await on_epoch(record)`` after each epoch. Cancelling
        the task cancels the training. ``await_decisions`` (with a ``run_id``): a table or
        simulated trainer waits after each epoch until ``on_epoch`` returned (which may
        have called ``finish_early``); this call then lets it go on (``proceed``)."""
        request = msg.train_request(arch, dataset, settings, run_id, await_decisions, shared)
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
        reply = await self._call(
            "Sample", msg.sample_request(search_id, count, request_id, reclaim)
        )
        return msg.sample_batch(reply)

    async def get_search(self, search_id: str) -> Search:
        reply = await self._call("GetSearch", cpb.GetSearchRequest(search_id=search_id))
        return msg.search(reply)

    async def report(
        self, search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
    ) -> bool:
        request = msg.report_request(search_id, candidate_id, epoch, validation_accuracy)
        reply = await self._call("Report", request)
        return bool(reply.decision != cpb.STOP)

    async def update(
        self,
        search_id: str,
        candidate_id: int,
        result: TrainOutcome | None = None,
        failure: str | None = None,
    ) -> UpdateResult:
        reply = await self._call(
            "Update", msg.update_request(search_id, candidate_id, result, failure)
        )
        return msg.update_result(reply)

    async def close(self) -> None:
        await self._channel.close()
