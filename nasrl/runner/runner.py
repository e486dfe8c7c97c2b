"""The search runner: keeps every trainer slot busy with one child, reports each result to
the controller, and goes on until the search's budget is spent.

Failure handling:

* a trainer that is down (its call ends UNAVAILABLE: killed, unreachable, shutting down): the
  trainer failed, not the child. It gets no work until a health check finds it SERVING again,
  and the child waits for a trainer that is up (a busy one's next free slot) without spending a
  try; when no trainer has been up for ``trainer_wait`` seconds the run stops with
  ``TrainersDown``, the children in flight unreported (leased: ``--resume`` or their leases
  expiring hands them out again). A child whose trainer goes down under it
  ``LOSSES_PER_CHILD`` times is reported failed (it may be what brings them down);
* a trainer that answers with an error (the network cannot be built or trained, out of memory,
  busy): the child goes to another trainer (at most ``retries`` tries), then it is reported as
  a failure with the last reason; the trainer cools off before it gets work again;
* the controller restarting: every call is retried with backoff for ``controller_wait``
  seconds; Sample carries a request id, so a retry never creates a second candidate, and
  Update is idempotent;
* the runner itself restarted (``resume``): the candidates its predecessor held are reclaimed
  at once instead of after their leases expire;
* stop (Ctrl-C): running trainings are cancelled and not reported; ``--resume`` continues.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable

import grpc

from nasrl.core.results import EpochRecord, TrainOutcome
from nasrl.rpc.client import (
    AsyncControllerClient,
    Candidate,
    ControllerClient,
    NasrlError,
)
from nasrl.runner.calls import ControllerCalls
from nasrl.runner.events import RunnerEvents, RunStats, Work
from nasrl.runner.pool import TrainerPool
from nasrl.runner.trainers import AsyncTrainers

__all__ = ["Runner", "TrainersDown", "MAX_SAMPLE", "LOSSES_PER_CHILD"]

log = logging.getLogger(__name__)

PERMANENT_TRAINER = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
)
MAX_SAMPLE = 1000  # the controller's largest Sample
#: a child whose trainer went down under it this many times is reported failed: it may be what
#: kills them (a network too big for the host's memory, say)
LOSSES_PER_CHILD = 5

#: (result, failure reason, trainer that answered) of one child
Trained = tuple[TrainOutcome | None, str | None, str | None]


class TrainersDown(NasrlError):
    """No trainer has been up for longer than the runner's ``trainer_wait``."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message)


class Runner:
    """Drives one search to its end over a pool of trainers.

    One asyncio event loop (grpc.aio) holds every child in flight, so one runner keeps
    hundreds of trainer slots busy without a thread each; each Sample asks for as many
    candidates as there are free slots."""

    def __init__(
        self,
        controller: ControllerClient,
        pool: TrainerPool,
        search_id: str,
        events: RunnerEvents | None = None,
        retries: int = 3,
        controller_wait: float = 600.0,
        early_stopping: bool = False,
        max_sample: int = MAX_SAMPLE,
        trainer_wait: float = 300.0,
    ) -> None:
        self.controller = controller
        self.early_stopping = early_stopping  # report every epoch; end children on STOP
        self.pool = pool
        self.search_id = search_id
        self.events = events or RunnerEvents()
        self.retries = retries
        self.controller_wait = controller_wait
        self.trainer_wait = trainer_wait  # seconds with every trainer down before stopping
        self.max_sample = max_sample
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.stats = RunStats()
        self.error: Exception | None = None
        self._pending: list[Work] = []  # reclaimed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._trainers: AsyncTrainers | None = None  # in the event loop

    def reclaim(self, count: int) -> None:
        """Take back the candidates a crashed earlier runner held (``--resume``)."""
        rid = uuid.uuid4().hex
        batch = self.controller.sample(self.search_id, count, request_id=rid, reclaim=True)
        self._pending += Work.of(batch)

    # ------------------------------------------------------------------ training

    async def _train_once(self, calls: ControllerCalls, target: str, work: Work) -> TrainOutcome:
        cand = work.candidate
        run_id = f"{self.search_id}-{cand.id}-{uuid.uuid4().hex[:12]}"
        assert self._trainers is not None
        client = self._trainers.client(target)
        if self.events.on_start:
            self.events.on_start(cand, target)

        async def epoch(e: EpochRecord) -> None:
            if self.events.on_epoch:
                self.events.on_epoch(cand, target, e)
            if self.early_stopping and e.epoch < e.epochs and not await calls.go_on(cand, e):
                log.info("child %d stopped early after epoch %d", cand.id, e.epoch)
                try:
                    await client.finish_early(run_id)
                except NasrlError as exc:  # the child then simply trains to the end
                    log.warning("child %d: %s did not take the stop: %s", cand.id, target, exc)

        return await client.train(
            cand.arch,
            work.dataset,
            work.training,
            on_epoch=epoch,
            run_id=run_id,
            await_decisions=self.early_stopping,  # table/simulated children wait for them
        )

    async def _acquire(self, avoid: set[str]) -> str:
        """A slot on a trainer that is up (waiting for one as long as any may come back)."""
        while True:
            target = self.pool.take(avoid)
            if target is not None:
                return target
            gone = self._trainers_gone()
            if gone is not None:
                raise gone
            await self._nap(0.2)

    def _trainers_gone(self) -> TrainersDown | None:
        """The error to stop with once no trainer has been up for ``trainer_wait`` seconds."""
        down = self.pool.unreachable()
        if down is None or down[0] <= self.trainer_wait:
            return None
        return TrainersDown(
            f"no trainer has been up for {down[0]:.0f} s (--trainer-wait {self.trainer_wait:g}; "
            f"last lost: {down[1]}); the children in flight were not reported and stay leased: "
            f"continue with --resume {self.search_id} once a trainer is up"
        )

    def _lost(self, cand: Candidate, target: str, exc: NasrlError) -> None:
        """``target`` is down (not the child's failure): no work for it until it is back."""
        self.pool.release(target)
        self.pool.lost(target, str(exc))
        log.warning(
            "child %d: trainer %s is down (%s); it waits for a trainer that is up",
            cand.id,
            target,
            exc,
        )
        if self.events.on_wait:
            self.events.on_wait(cand, target, str(exc))

    async def _train(self, calls: ControllerCalls, target: str, work: Work) -> Trained:
        """(result, failure reason, trainer), starting on ``target`` (its slot taken). Only
        the trainers' answers count as tries; a trainer that is down does not."""
        cand = work.candidate
        tried: set[str] = set()
        reason = "no trainer could be reached"
        tries = losses = 0
        taken: str | None = target
        while tries < self.retries:
            target = taken if taken is not None else await self._acquire(tried)
            taken = None
            try:
                result = await self._train_once(calls, target, work)
            except NasrlError as exc:
                if exc.code == grpc.StatusCode.UNAVAILABLE:
                    self._lost(cand, target, exc)
                    losses += 1
                    if losses >= LOSSES_PER_CHILD:
                        why = f"its trainer went down {losses} times (it may be what brings them"
                        return None, f"{why} down); last: {target}: {exc}", None
                    continue
                self.pool.answered(target)
                if exc.code in PERMANENT_TRAINER:
                    self.pool.release(target)
                    return None, f"{target}: {exc}", target
                cool = 1.0 if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED else 5.0
                self.pool.release(target, cool_off=cool)
                tries += 1
                tried.add(target)
                reason = f"{target}: {exc}"
                log.warning(
                    "child %d failed on %s, trying another trainer: %s", cand.id, target, exc
                )
                continue
            except BaseException:  # cancelled (stop): the slot is free again
                self.pool.release(target)
                raise
            self.pool.answered(target)
            self.pool.release(target)
            return result, None, target
        return (
            None,
            f"failed on {len(tried)} trainer(s) after {self.retries} tries; last: {reason}",
            None,
        )

    async def _report(
        self,
        calls: ControllerCalls,
        cand: Candidate,
        result: TrainOutcome | None,
        failure: str | None,
        target: str | None,
    ) -> None:
        await calls.update(cand, result, failure)
        if result is not None:
            self.stats.trained += 1
            self.stats.stopped_early += result.stopped_early
            self.stats.trainer_seconds += result.seconds
            if target:
                self.stats.per_trainer[target] += 1
        else:
            self.stats.failed += 1
            self.stats.last_failure = failure
        if self.events.on_result:
            self.events.on_result(cand, target, result, failure)

    async def _child(self, calls: ControllerCalls, target: str, work: Work) -> None:
        try:
            result, failure, used = await self._train(calls, target, work)
            await self._report(calls, work.candidate, result, failure, used)
        except asyncio.CancelledError:
            raise  # stopped: the candidate stays leased for --resume
        except Exception as exc:  # noqa: BLE001 - one child's fatal error stops the run
            self._fail(exc)
        finally:
            if self._wake is not None:
                self._wake.set()

    def _fail(self, exc: Exception) -> None:
        """Stop the run with ``exc``; the first error wins (the children waiting for a
        trainer all give up at once)."""
        if self.error is None:
            log.error("runner stopped: %s", exc)
            self.error = exc
        self.stop_event.set()

    # ------------------------------------------------------------------ driving

    async def _nap(self, seconds: float) -> None:
        """Sleep until a child ends, ``stop`` or ``seconds``."""
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    def _start(self, calls: ControllerCalls, target: str, work: Work) -> None:
        task = asyncio.ensure_future(self._child(calls, target, work))
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    def _cached(self, cand: Candidate) -> None:
        self.stats.cached += 1
        if self.events.on_result:
            self.events.on_result(cand, None, cand.cached, None)

    def _free_slots(self) -> list[str]:
        """Every free slot of a trainer that is up (at most one Sample's worth), taken."""
        self.pool.total_slots()  # re-resolves a DNS name now and then
        targets: list[str] = []
        while len(targets) < self.max_sample and (t := self.pool.take()) is not None:
            targets.append(t)
        return targets

    async def _next_work(self, calls: ControllerCalls, count: int) -> list[Work]:
        """Up to ``count`` candidates: reclaimed ones first, else a Sample."""
        if self._pending:
            work, self._pending = self._pending[:count], self._pending[count:]
            return work
        batch = await calls.sample(count)
        if batch.done:
            self.done.set()
        return Work.of(batch)

    def _hand_out(self, calls: ControllerCalls, targets: list[str], work: list[Work]) -> int:
        """Start each child to train on a slot of ``targets`` and answer the cached ones;
        the slots left over are freed. Returns the number of children started."""
        started = 0
        for w in work:
            if w.candidate.cached is not None:
                self._cached(w.candidate)
            else:
                self._start(calls, targets[started], w)
                started += 1
        for t in targets[started:]:
            self.pool.release(t)
        return started

    async def _drive(self, calls: ControllerCalls, tick: Callable[[], None] | None) -> None:
        next_tick, idle_until = 0.0, 0.0
        while not self.done.is_set() and not self.stop_event.is_set():
            now = time.monotonic()
            if tick and now >= next_tick:
                tick()
                next_tick = now + 0.5
            gone = self._trainers_gone()
            if gone is not None:
                self._fail(gone)
                break
            targets = self._free_slots()
            if targets and (self._pending or now >= idle_until):
                work = await self._next_work(calls, len(targets))
                started = self._hand_out(calls, targets, work)
                if not work:  # all of the budget is in flight: ask again when one ends
                    idle_until = time.monotonic() + 0.5
                if started or work:
                    continue  # more free slots may be waiting
            else:
                for t in targets:
                    self.pool.release(t)
            await self._nap(0.2)

    async def _wind_down(self, watch: asyncio.Future[None]) -> None:
        """Cancel the children still training (unless the search is done) and close."""
        for task in list(self._children):
            if not self.done.is_set():
                task.cancel()
        await asyncio.gather(*self._children, return_exceptions=True)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        assert self._trainers is not None
        await self._trainers.close()

    async def _main(self, tick: Callable[[], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        c = self.controller
        ctl = AsyncControllerClient(c.target, c.timeout, c.security)
        calls = ControllerCalls(ctl, self.search_id, self.controller_wait, self.stop_event)
        self._trainers = AsyncTrainers(self.pool)
        watch = asyncio.ensure_future(self._trainers.watch_lost())
        try:
            await self._drive(calls, tick)
        finally:
            await self._wind_down(watch)
            await ctl.close()

    def run(self, tick: Callable[[], None] | None = None) -> RunStats:
        """Run until the search is done (or ``stop``); ``tick`` is called about twice a
        second from this thread (progress display). Raises the error that stopped it."""
        try:
            asyncio.run(self._main(tick))
        finally:
            self._loop = None
        if self.error is not None:
            raise self.error
        return self.stats

    def stop(self) -> None:
        """Cancel running trainings (from any thread); nothing half-reported: the children
        stay leased for ``--resume``."""
        self.stop_event.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._interrupt)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _interrupt(self) -> None:
        for task in list(self._children):
            task.cancel()
        if self._wake is not None:
            self._wake.set()
