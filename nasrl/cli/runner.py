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
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc import rpc
from nasrl.rpc.client import (
    AsyncControllerClient,
    AsyncTrainerClient,
    Candidate,
    ControllerClient,
    NasrlError,
    SampleBatch,
    TrainerClient,
)
from nasrl.rpc.security import ClientSecurity

__all__ = ["Runner", "RunnerEvents", "TrainerPool", "TrainersDown", "parse_trainers"]

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_CONTROLLER = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)  # busy: refused at once, retry
PERMANENT_TRAINER = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
)


Resolver = Callable[[str], list[str]]
MAX_SAMPLE = 1000  # the controller's largest Sample
#: Report and Update calls one runner makes at once; the rest wait in the runner (cheap) instead
#: of being refused by the controller's admission control and retried. Sample does not queue
#: behind them (it is the only call that fills a free slot, and the driving loop makes one at a
#: time): children of equal length end together, and a Sample that waited behind their Updates
#: left every slot they freed idle meanwhile (bench/fleet.py at 800 trainers: ~0.6 s a child).
CONTROLLER_CALLS = 8
#: a trainer that is down is health-checked this often (seconds) until it serves again
PROBE_EVERY = 1.0
PROBE_TIMEOUT = 5.0
#: after its n-th loss in a row a trainer waits min(2^(n-1), this) seconds for its next check,
#: so one that says SERVING but whose Train calls keep ending UNAVAILABLE is tried ever less
PROBE_BACKOFF_MAX = 30.0
#: a child whose trainer went down under it this many times is reported failed: it may be what
#: kills them (a network too big for the host's memory, say)
LOSSES_PER_CHILD = 5


def parse_trainers(spec: str, resolve: Resolver | None = None) -> tuple[list[str], str | None]:
    """``h1:p,h2:p`` → (addresses, None); ``dns:///name:p`` → (resolved addresses, spec)."""
    spec = spec.strip()
    if spec.startswith("dns:"):
        return (resolve or resolve_dns)(spec), spec
    targets = [t.strip() for t in spec.split(",") if t.strip()]
    for t in targets:
        host, _, port = t.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"trainer {t!r} is not HOST:PORT (or use dns:///NAME:PORT)")
    if not targets:
        raise ValueError("no trainers given: use HOST:PORT[,HOST:PORT...] or dns:///NAME:PORT")
    return targets, None


def dns_name(spec: str) -> tuple[str, str]:
    """(NAME, PORT) of a ``dns:///NAME:PORT`` target."""
    hostport = spec.split("///", 1)[-1] if "///" in spec else spec[len("dns:") :]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{spec!r} is not dns:///NAME:PORT")
    return host, port


def resolve_dns(spec: str) -> list[str]:
    """Every address a ``dns:///name:port`` target resolves to, as ``ip:port``."""
    host, port = dns_name(spec)
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]


class TrainersDown(NasrlError):
    """No trainer has been up for longer than the runner's ``trainer_wait``."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message)


@dataclass
class _Down:
    """A trainer whose last call ended UNAVAILABLE, and what is known of it since."""

    target: str
    since: float  # when it was lost (its first loss since it last answered)
    reason: str  # the last loss's error
    losses: int = 0  # in a row, each after a health check had found it serving
    probe_at: float = 0.0  # its next health check
    serving: bool = False  # a health check found it SERVING: it may get work again


class TrainerPool:
    """Free slots per trainer address; DNS names are re-resolved so new replicas get work.

    A trainer whose call ended UNAVAILABLE is *down* (``lost``): ``take`` skips it until a
    health check finds it serving (``probes_due`` / ``probed``); it is up again once one of
    its calls is answered (``answered``). Each address resolved from ``dns:///NAME:PORT`` gets
    its own channel, which presents ``NAME:PORT`` as the server name: with TLS the certificates
    name the service, not every replica's IP. ``resolve`` maps the spec to addresses (default:
    the system resolver); ``clock`` (default ``time.monotonic``) times cool-offs and losses."""

    def __init__(
        self,
        spec: str,
        slots_per_trainer: int = 1,
        resolve_every: float = 30.0,
        timeout: float = 24 * 3600.0,
        security: ClientSecurity | None = None,
        resolve: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.security = security
        self._resolve = resolve or resolve_dns
        self._clock = clock
        targets, self.dns = parse_trainers(spec, self._resolve)
        self.server_name = ":".join(dns_name(self.dns)) if self.dns else None
        self.slots_per_trainer = slots_per_trainer
        self.resolve_every = resolve_every
        self.timeout = timeout
        self._lock = threading.Lock()
        self._free: dict[str, int] = {}
        self._cooling: dict[str, float] = {}
        self._down: dict[str, _Down] = {}
        self._clients: dict[str, TrainerClient] = {}
        self._resolved_at = clock()
        self._add(targets)

    def _add(self, targets: list[str]) -> None:
        for t in targets:
            if t not in self._free:
                self._free[t] = self.slots_per_trainer
                self._clients[t] = TrainerClient(
                    t, timeout=self.timeout, security=self.security, server_name=self.server_name
                )
                log.info("trainer %s joined (%d slot(s))", t, self.slots_per_trainer)

    def total_slots(self) -> int:
        with self._lock:
            if self.dns and self._clock() - self._resolved_at > self.resolve_every:
                self._resolved_at = self._clock()
                try:
                    self._add(self._resolve(self.dns))
                except ValueError as exc:
                    log.warning("%s", exc)
            return len(self._free) * self.slots_per_trainer

    def take(self, avoid: frozenset[str] | set[str] = frozenset()) -> str | None:
        """A trainer that is up with a free slot now (preferring ones not in ``avoid``), or
        None."""
        with self._lock:
            now = self._clock()
            ready = [
                t
                for t, n in self._free.items()
                if n > 0 and self._cooling.get(t, 0.0) <= now and self._usable(t)
            ]
            if not ready:
                return None
            fresh = [t for t in ready if t not in avoid]
            choice = max(fresh or ready, key=lambda t: self._free[t])
            self._free[choice] -= 1
            return choice

    def _usable(self, target: str) -> bool:
        down = self._down.get(target)
        return down is None or down.serving

    def release(self, target: str, cool_off: float = 0.0) -> None:
        with self._lock:
            self._free[target] += 1
            if cool_off:
                self._cooling[target] = self._clock() + cool_off

    def lost(self, target: str, reason: str) -> None:
        """A call to ``target`` ended UNAVAILABLE: it is down until a health check finds it
        serving, the first check 1 s from now (later after each loss in a row)."""
        with self._lock:
            now = self._clock()
            down = self._down.setdefault(target, _Down(target, since=now, reason=reason))
            down.reason = reason
            if down.losses == 0 or down.serving:  # calls that were running when it died: one
                down.losses += 1
            down.serving = False
            down.probe_at = now + min(PROBE_BACKOFF_MAX, 2.0 ** (down.losses - 1))

    def answered(self, target: str) -> None:
        """A call to ``target`` got an answer (a result or an error of its own): it is up."""
        with self._lock:
            self._down.pop(target, None)

    def probes_due(self) -> list[str]:
        """The trainers that are down and due for a health check."""
        with self._lock:
            now = self._clock()
            return [t for t, d in self._down.items() if not d.serving and d.probe_at <= now]

    def probed(self, target: str, serving: bool) -> None:
        """A health check's verdict: serving, it may get work again; otherwise it is checked
        again in ``PROBE_EVERY`` seconds."""
        with self._lock:
            down = self._down.get(target)
            if down is None:
                return
            down.serving = serving
            if not serving:
                down.probe_at = self._clock() + PROBE_EVERY

    def unreachable(self) -> tuple[float, str] | None:
        """(seconds, why) when every trainer is down and none is serving: how long since the
        last of them was lost, and which it was with its error; None while any may get work."""
        with self._lock:
            down = self._down.values()
            if not down or len(self._down) < len(self._free) or any(d.serving for d in down):
                return None
            last = max(down, key=lambda d: d.since)
            return self._clock() - last.since, f"{last.target}: {last.reason}"

    def clients(self) -> list[TrainerClient]:
        """A client for every trainer known now (for calls outside the search, e.g. weights)."""
        with self._lock:
            return list(self._clients.values())

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


@dataclass
class RunnerEvents:
    """Callbacks for a user interface; all optional, called from the thread running the
    runner (its event loop): keep them quick."""

    on_epoch: Callable[[Candidate, str, EpochRecord], None] | None = None
    on_result: Callable[[Candidate, str | None, TrainOutcome | None, str | None], None] | None = (
        None
    )
    on_start: Callable[[Candidate, str], None] | None = None  # a try on a trainer begins
    #: the child's trainer is down (target, error): it waits for one that is up
    on_wait: Callable[[Candidate, str, str], None] | None = None


@dataclass
class RunStats:
    trained: int = 0
    stopped_early: int = 0  # of the trained: ended by the early-stopping rule (or a limit)
    cached: int = 0
    failed: int = 0
    trainer_seconds: float = 0.0
    per_trainer: Counter[str] = field(default_factory=Counter)
    last_failure: str | None = None  # the reason of the latest child that failed in this run


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
        self._pending: list[tuple[Candidate, str, TrainSettings]] = []  # reclaimed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._children: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._calls: asyncio.Semaphore | None = None  # controller calls at once
        self._trainers: dict[str, AsyncTrainerClient] = {}
        self._retired: list[AsyncTrainerClient] = []  # replaced, closed at the end

    # ------------------------------------------------------------------ controller calls

    async def _ctl(self, what: str, fn: Callable[[], Awaitable[T]], queue: bool = True) -> T:
        """Call the controller, waiting with backoff while it is unreachable or busy;
        ``queue``: wait for one of the ``CONTROLLER_CALLS`` permits first."""
        began, delay = time.monotonic(), 0.25
        while True:
            try:
                assert self._calls is not None
                if not queue:
                    return await fn()
                async with self._calls:
                    return await fn()
            except NasrlError as exc:
                waited = time.monotonic() - began
                if exc.code not in RETRYABLE_CONTROLLER or waited > self.controller_wait:
                    raise
                if self.stop_event.is_set():
                    raise
                log.warning(
                    "%s: controller unavailable or busy, retrying in %.1fs (%s)", what, delay, exc
                )
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # jitter: no herd
                delay = min(delay * 2, 5.0)

    def reclaim(self, count: int) -> None:
        """Take back the candidates a crashed earlier runner held (``--resume``)."""
        rid = uuid.uuid4().hex
        batch = self.controller.sample(self.search_id, count, request_id=rid, reclaim=True)
        self._pending += [(c, batch.dataset, batch.training) for c in batch.candidates]

    async def _sample(self, ctl: AsyncControllerClient, count: int) -> SampleBatch:
        rid = uuid.uuid4().hex  # the same id on every retry: never a second candidate
        return await self._ctl(
            "sample", lambda: ctl.sample(self.search_id, count, request_id=rid), queue=False
        )

    # ------------------------------------------------------------------ training

    def _trainer(self, target: str) -> AsyncTrainerClient:
        client = self._trainers.get(target)
        if client is None:
            client = AsyncTrainerClient(
                target, self.pool.timeout, self.pool.security, self.pool.server_name
            )
            self._trainers[target] = client
        return client

    async def _go_on(self, ctl: AsyncControllerClient, cand: Candidate, e: EpochRecord) -> bool:
        """The controller's early-stopping decision on one epoch (go on if it cannot say)."""
        try:
            return await self._ctl(
                "report",
                lambda: ctl.report(self.search_id, cand.id, e.epoch, e.validation_accuracy),
            )
        except NasrlError as exc:
            log.warning("child %d: no early-stopping decision (%s); training on", cand.id, exc)
            return True

    async def _train_once(
        self,
        ctl: AsyncControllerClient,
        target: str,
        cand: Candidate,
        dataset: str,
        training: TrainSettings,
    ) -> TrainOutcome:
        run_id = f"{self.search_id}-{cand.id}-{uuid.uuid4().hex[:12]}"
        client = self._trainer(target)
        if self.events.on_start:
            self.events.on_start(cand, target)

        async def epoch(e: EpochRecord) -> None:
            if self.events.on_epoch:
                self.events.on_epoch(cand, target, e)
            if self.early_stopping and e.epoch < e.epochs and not await self._go_on(ctl, cand, e):
                log.info("child %d stopped early after epoch %d", cand.id, e.epoch)
                try:
                    await client.finish_early(run_id)
                except NasrlError as exc:  # the child then simply trains to the end
                    log.warning("child %d: %s did not take the stop: %s", cand.id, target, exc)

        return await client.train(
            cand.arch,
            dataset,
            training,
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

    async def _train(
        self,
        ctl: AsyncControllerClient,
        target: str,
        cand: Candidate,
        dataset: str,
        training: TrainSettings,
    ) -> tuple[TrainOutcome | None, str | None, str | None]:
        """(result, failure reason, trainer), starting on ``target`` (its slot taken). Only
        the trainers' answers count as tries; a trainer that is down does not."""
        tried: set[str] = set()
        reason = "no trainer could be reached"
        tries = losses = 0
        taken: str | None = target
        while tries < self.retries:
            target = taken if taken is not None else await self._acquire(tried)
            taken = None
            try:
                result = await self._train_once(ctl, target, cand, dataset, training)
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
        ctl: AsyncControllerClient,
        cand: Candidate,
        result: TrainOutcome | None,
        failure: str | None,
        target: str | None,
    ) -> None:
        try:
            await self._ctl(
                "update",
                lambda: ctl.update(self.search_id, cand.id, result=result, failure=failure),
            )
        except NasrlError as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            log.warning("candidate %d was already reported differently: %s", cand.id, exc)
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

    async def _child(
        self,
        ctl: AsyncControllerClient,
        target: str,
        cand: Candidate,
        dataset: str,
        training: TrainSettings,
    ) -> None:
        try:
            result, failure, used = await self._train(ctl, target, cand, dataset, training)
            await self._report(ctl, cand, result, failure, used)
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

    # ------------------------------------------------------------------ trainers that are down

    async def _watch_lost(self) -> None:
        """Health-check the trainers that are down until they serve again."""
        while True:
            due = self.pool.probes_due()
            if due:
                await asyncio.gather(*(self._probe(t) for t in due))
            await asyncio.sleep(PROBE_EVERY / 4)

    async def _probe(self, target: str) -> None:
        channel, metadata = rpc.aio_channel(target, self.pool.security, self.pool.server_name)
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT, metadata=metadata
            )
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError as exc:  # UNIMPLEMENTED: it answers, without a health service
            serving = exc.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            await channel.close()
        if serving:
            log.info("trainer %s is serving again", target)
            # a fresh channel: the old one may wait out its reconnect backoff (up to 2 min)
            old = self._trainers.pop(target, None)
            if old is not None:
                self._retired.append(old)  # children still streaming on it keep it
        self.pool.probed(target, serving)

    # ------------------------------------------------------------------ driving

    async def _nap(self, seconds: float) -> None:
        """Sleep until a child ends, ``stop`` or ``seconds``."""
        assert self._wake is not None
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    def _start(
        self, ctl: AsyncControllerClient, target: str, item: tuple[Candidate, str, TrainSettings]
    ) -> None:
        task = asyncio.ensure_future(self._child(ctl, target, *item))
        self._children.add(task)
        task.add_done_callback(self._children.discard)

    def _cached(self, cand: Candidate) -> None:
        self.stats.cached += 1
        if self.events.on_result:
            self.events.on_result(cand, None, cand.cached, None)

    async def _main(self, tick: Callable[[], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._calls = asyncio.Semaphore(CONTROLLER_CALLS)
        c = self.controller
        ctl = AsyncControllerClient(c.target, c.timeout, c.security)
        next_tick, idle_until = 0.0, 0.0
        watch = asyncio.ensure_future(self._watch_lost())
        try:
            while not self.done.is_set() and not self.stop_event.is_set():
                now = time.monotonic()
                if tick and now >= next_tick:
                    tick()
                    next_tick = now + 0.5
                gone = self._trainers_gone()
                if gone is not None:
                    self._fail(gone)
                    break
                self.pool.total_slots()  # re-resolves a DNS name now and then
                targets: list[str] = []
                while len(targets) < self.max_sample and (t := self.pool.take()) is not None:
                    targets.append(t)
                if targets and (self._pending or now >= idle_until):
                    if self._pending:
                        items, self._pending = (
                            self._pending[: len(targets)],
                            self._pending[len(targets) :],
                        )
                    else:
                        batch = await self._sample(ctl, len(targets))
                        if batch.done:
                            self.done.set()
                        items = [(cand, batch.dataset, batch.training) for cand in batch.candidates]
                    trainable = 0
                    for item in items:
                        if item[0].cached is not None:
                            self._cached(item[0])
                        else:
                            self._start(ctl, targets[trainable], item)
                            trainable += 1
                    for t in targets[trainable:]:
                        self.pool.release(t)
                    if not items:  # all of the budget is in flight: ask again when one ends
                        idle_until = time.monotonic() + 0.5
                    if trainable or items:
                        continue  # more free slots may be waiting
                else:
                    for t in targets:
                        self.pool.release(t)
                await self._nap(0.2)
        finally:
            for task in list(self._children):
                if not self.done.is_set():
                    task.cancel()
            await asyncio.gather(*self._children, return_exceptions=True)
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            for client in (*self._trainers.values(), *self._retired):
                await client.close()
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
