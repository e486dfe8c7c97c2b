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

A SHARED search's children are routed (``routing.py``): shared ones to its supernet trainer.
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
from nasrl.runner.failures import (
    LOSSES_PER_CHILD,
    PERMANENT_TRAINER,
    Trained,
    TrainersDown,
    trainers_gone,
)
from nasrl.runner.pool import TrainerPool
from nasrl.runner.routing import Routes, routes_for
from nasrl.runner.trainers import AsyncTrainers

__all__ = ["Runner", "TrainersDown", "MAX_SAMPLE", "LOSSES_PER_CHILD"]

log = logging.getLogger(__name__)

MAX_SAMPLE = 1000  # the controller's largest Sample


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
        self.routes: Routes | None = None  # a SHARED search's; None: any trainer, any child
        self._lane: bool | None = None  # whether the children now sampled are shared ones

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
            shared=cand.shared,
        )

    def _only(self, shared: bool | None) -> frozenset[str] | None:
        """The trainers that may train a shared / full child (None: any)."""
        if self.routes is None or shared is None:
            return None
        return self.routes.only(shared, self.pool.usable)

    async def _acquire(self, avoid: set[str], work: Work) -> str:
        """A slot on a trainer that is up (waiting for one as long as any may come back)."""
        only = self._only(work.candidate.shared is not None)
        while True:
            target = self.pool.take(avoid, only)
            if target is not None:
                return target
            gone = trainers_gone(self.pool, only, self.trainer_wait, self.search_id)
            if gone is not None:
                raise gone
            await self._nap(0.2)

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
            target = taken if taken is not None else await self._acquire(tried, work)
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
        only = self._only(self._lane)
        while len(targets) < self.max_sample and (t := self.pool.take(only=only)) is not None:
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
        """Start each child to train on a slot of ``targets`` that may train it (routing),
        keep the others for the next round (``_pending``; its slots taken then) and answer
        the cached ones; the slots left over are freed. Returns the children started."""
        started, free = 0, list(targets)
        for w in work:
            if w.candidate.cached is not None:
                self._cached(w.candidate)
                continue
            self._lane = w.candidate.shared is not None
            only = self._only(self._lane)
            slot = next((t for t in free if only is None or t in only), None)
            if slot is None:
                self._pending.append(w)
                continue
            free.remove(slot)
            self._start(calls, slot, w)
            started += 1
        for t in free:
            self.pool.release(t)
        return started

    async def _drive(self, calls: ControllerCalls, tick: Callable[[], None] | None) -> None:
        next_tick, idle_until = 0.0, 0.0
        while not self.done.is_set() and not self.stop_event.is_set():
            now = time.monotonic()
            if tick and now >= next_tick:
                tick()
                next_tick = now + 0.5
            only = self._only(self._lane)
            gone = trainers_gone(self.pool, only, self.trainer_wait, self.search_id)
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
            search = await calls.search()
            self.routes = await asyncio.to_thread(routes_for, search, self.pool)
            self._lane = True if self.routes else None  # a SHARED search starts shared
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
