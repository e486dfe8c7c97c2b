"""A runner's calls to the controller: retried with backoff while the controller is
unreachable or busy, and at most ``CONTROLLER_CALLS`` Reports and Updates at once."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from nasrl.core.results import EpochRecord, TrainOutcome
from nasrl.rpc.client import AsyncControllerClient, Candidate, NasrlError, SampleBatch, Search

__all__ = ["ControllerCalls", "CONTROLLER_CALLS"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_CONTROLLER = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)  # busy: refused at once, retry
#: Report and Update calls one runner makes at once; the rest wait in the runner (cheap) instead
#: of being refused by the controller's admission control and retried. Sample does not queue
#: behind them (it is the only call that fills a free slot, and the driving loop makes one at a
#: time): children of equal length end together, and a Sample that waited behind their Updates
#: left every slot they freed idle meanwhile (bench/fleet.py at 800 trainers: ~0.6 s a child).
CONTROLLER_CALLS = 8


class ControllerCalls:
    """Sample, Report and Update for one search from one event loop (create it there).

    A call that ends UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED is retried with
    backoff (and jitter) for ``wait`` seconds, unless ``stopped`` is set meanwhile."""

    def __init__(
        self,
        ctl: AsyncControllerClient,
        search_id: str,
        wait: float,
        stopped: threading.Event,
    ) -> None:
        self.ctl = ctl
        self.search_id = search_id
        self.wait = wait
        self.stopped = stopped
        self.permits = asyncio.Semaphore(CONTROLLER_CALLS)

    async def _retry(self, what: str, fn: Callable[[], Awaitable[T]], queue: bool = True) -> T:
        """Call the controller, waiting with backoff while it is unreachable or busy;
        ``queue``: wait for one of the ``CONTROLLER_CALLS`` permits first."""
        began, delay = time.monotonic(), 0.25
        while True:
            try:
                if not queue:
                    return await fn()
                async with self.permits:
                    return await fn()
            except NasrlError as exc:
                waited = time.monotonic() - began
                if exc.code not in RETRYABLE_CONTROLLER or waited > self.wait:
                    raise
                if self.stopped.is_set():
                    raise
                log.warning(
                    "%s: controller unavailable or busy, retrying in %.1fs (%s)", what, delay, exc
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # jitter: no herd
                delay = min(delay * 2, 5.0)

    async def sample(self, count: int) -> SampleBatch:
        """Up to ``count`` candidates; never queued behind Reports and Updates."""
        rid = uuid.uuid4().hex  # the same id on every retry: never a second candidate
        return await self._retry(
            "sample", lambda: self.ctl.sample(self.search_id, count, request_id=rid), queue=False
        )

    async def search(self) -> Search:
        """The search (its settings)."""
        return await self._retry("get search", lambda: self.ctl.get_search(self.search_id))

    async def go_on(self, cand: Candidate, e: EpochRecord) -> bool:
        """The controller's early-stopping decision on one epoch (go on if it cannot say)."""
        try:
            return await self._retry(
                "report",
                lambda: self.ctl.report(self.search_id, cand.id, e.epoch, e.validation_accuracy),
            )
        except NasrlError as exc:
            log.warning("child %d: no early-stopping decision (%s); training on", cand.id, exc)
            return True

    async def update(
        self, cand: Candidate, result: TrainOutcome | None, failure: str | None
    ) -> None:
        """Report a child's result or failure (a different earlier report is only logged)."""
        try:
            await self._retry(
                "update",
                lambda: self.ctl.update(self.search_id, cand.id, result=result, failure=failure),
            )
        except NasrlError as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            log.warning("candidate %d was already reported differently: %s", cand.id, exc)
