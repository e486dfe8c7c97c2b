"""A search as the controller holds it between calls (``LiveSearch``): its spec, parsed
once; its lock and the queue of Updates waiting for it; and its agent with what goes with
it (stopping rule, warm-start progress, what of the agent's state the database holds),
dropped in one piece when a call fails so that the next call reloads the last commit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from controller_service.agents import Agent
from controller_service.agents.persistence import Parts, parts_of
from controller_service.errors import SearchNotFound
from controller_service.reports import Report
from controller_service.screen_model import Fitted, fit, fit_size
from controller_service.spec import SearchSpec
from controller_service.stopping import StoppingRule, make_rule
from controller_service.store import Store, dump_state
from controller_service.views import UpdateAck

__all__ = ["LiveSearch", "LiveSearches", "Memory", "QueuedReport"]

_UNSAVED = object()


@dataclass
class QueuedReport:
    """One Update call's report, queued for the search's group commit, and its answer."""

    cid: int
    report: Report
    ack: UpdateAck | None = None
    error: BaseException | None = None
    done: bool = False

    def succeed(self, ack: UpdateAck) -> None:
        self.ack, self.done = ack, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True


@dataclass
class Memory:
    """The agent and what goes with it, as of the last commit plus the current call."""

    agent: Agent
    parts: Parts  # how the agent's state is stored
    saved_weights: object = _UNSAVED  # the weights_version() the database holds
    heavy: tuple[object, bytes] | None = None  # learnt weights, serialised, not yet written
    logged: int = 0  # agent log entries in the database
    priors_done: int = 0  # warm-start networks already recorded
    streak: int = 0  # the agent's latest proposals in a row that were known (sampling.py)


class LiveSearch:
    """One search's lock, queue and in-memory state. Calls on one search run one at a time
    under ``lock``; calls on different searches never wait for each other."""

    def __init__(self, search_id: str, spec: SearchSpec) -> None:
        self.id = search_id
        self.spec = spec
        self.lock = threading.RLock()
        # notified whenever the lock is released or queued reports were recorded (an Update
        # waits on it for whichever comes first)
        self.changed = threading.Condition()
        self._queue: list[QueuedReport] = []
        self._queue_lock = threading.Lock()
        self._memory: Memory | None = None
        self._rule: StoppingRule | None = None  # rebuilt from the stored epoch reports
        # the latest predictor fitted for screening (a function of the stored results alone,
        # so it outlives a failed call); fitted and replaced under _fit_lock
        self._fitted: Fitted | None = None
        self._fit_lock = threading.Lock()

    # ------------------------------------------------------------------ lock

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The search's lock for the block; if the block fails, the in-memory state is
        dropped (the next call reloads it from the last commit)."""
        self.lock.acquire()
        with self.holding():
            yield

    @contextmanager
    def holding(self) -> Iterator[None]:
        """``locked`` for a block that took the lock already."""
        try:
            yield
        except BaseException:
            self.forget()
            raise
        finally:
            self.release()

    def release(self) -> None:
        with self.changed:
            self.lock.release()
            self.changed.notify_all()

    def recorded(self) -> None:
        with self.changed:
            self.changed.notify_all()

    # ------------------------------------------------------------------ queued reports

    def enqueue(self, item: QueuedReport) -> None:
        with self._queue_lock:
            self._queue.append(item)

    def take_queued(self) -> list[QueuedReport]:
        with self._queue_lock:
            taken, self._queue = self._queue, []
            return taken

    def queued(self) -> int:
        with self._queue_lock:
            return len(self._queue)

    # ------------------------------------------------------------------ agent

    def forget(self) -> None:
        """Drop what the last commit can rebuild (after a failed call)."""
        self._memory = None
        self._rule = None

    def memory(self, store: Store) -> Memory:
        """The agent and its bookkeeping, loaded from the store at first use."""
        if self._memory is None:
            agent = self.spec.make_agent()
            memory = Memory(agent, parts_of(agent))
            state = store.load_agent(self.id)
            if state is not None:
                agent.load_state_dict(state)
                memory.saved_weights = memory.parts.weights_version()
                memory.logged = len(state["log"])
            memory.streak = store.known_streak(self.id)
            self._memory = memory
        return self._memory

    # ------------------------------------------------------------------ predictor

    def model(self, store: Store) -> Fitted | None:
        """The predictor for the results recorded now (None: no predictor screening, or too
        few results), fitted unless it is already. ``Searches.sample`` calls it before taking
        the search's lock (so a refit stalls no other call on the search but the Sample that
        needs it) and again under it, where it fits only if results were recorded between."""
        screening = self.spec.screening
        size = fit_size(screening, store.result_count(self.id)) if screening.learnt else 0
        if not size:
            return None
        fitted = self._fitted
        if fitted is not None and fitted.size == size:
            return fitted
        # one fit at a time per search: concurrent Samples that need the same model wait
        # for it instead of each fitting it again
        with self._fit_lock:
            fitted = self._fitted
            if fitted is None or fitted.size != size:
                spec = self.spec
                results = store.first_results(self.id, size)
                fitted = fit(spec.screening, spec.bound_space(), spec.seed, results)
                if self._fitted is None or self._fitted.size < fitted.size:
                    self._fitted = fitted
        return fitted

    def has_agent(self) -> bool:
        return self._memory is not None

    def agent(self, store: Store) -> Agent:
        return self.memory(store).agent

    def rule(self, store: Store) -> StoppingRule:
        if self._rule is None:
            self._rule = make_rule(self.spec.early_stopping, self.spec.training.epochs)
            self._rule.replay(store.epoch_reports(self.id))
        return self._rule

    def learn(self, store: Store, dream: Callable[[Agent], None] | None = None) -> Agent:
        """The agent's deferred learning, outside any transaction, then ``dream(agent)``
        (model-based steps, see ``Agent.dream``); its new weights are serialised here and
        written by the next ``save``."""
        memory = self.memory(store)
        memory.agent.learn()
        if dream is not None:
            dream(memory.agent)
        version = memory.parts.weights_version()
        if memory.saved_weights != version:
            memory.heavy = (version, dump_state(memory.parts.heavy_state()))
        return memory.agent

    def save(self, store: Store) -> None:
        """Write the agent's state in the current transaction: its light part always, its
        weights only when they changed since they were last written (serialised beforehand
        by ``learn`` where possible), its new log entries and changed keyed entries."""
        memory = self.memory(store)
        parts = memory.parts
        version = parts.weights_version()
        heavy = None
        if memory.saved_weights != version:
            ready = memory.heavy
            heavy = ready[1] if ready and ready[0] == version else dump_state(parts.heavy_state())
        light = dump_state(parts.light_state(), plain=True)
        store.write_agent(self.id, light, heavy, memory.agent.progress())
        new = parts.log_since(memory.logged)
        if new:
            store.append_log(self.id, memory.logged, new)
        changed = parts.changed_entries()
        if changed:
            store.write_entries(self.id, changed)
        memory.logged += len(new)

    def saved(self) -> None:
        """After the commit of a ``save``: the written weights are the database's."""
        if self._memory is not None:
            self._memory.saved_weights = self._memory.parts.weights_version()
            self._memory.heavy = None


class LiveSearches:
    """The live searches of one controller, made at first use; only for searches in the
    store, so unknown ids cost nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._live: dict[str, LiveSearch] = {}
        self._lock = threading.Lock()

    def get(self, search_id: str) -> LiveSearch:
        found = self._live.get(search_id)
        if found is not None:
            return found
        with self._lock:
            found = self._live.get(search_id)
            if found is None:
                row = self.store.search(search_id)
                if row is None:
                    raise SearchNotFound(
                        f"no search with id {search_id!r}; ListSearches shows them"
                    )
                found = self._live[search_id] = LiveSearch(
                    search_id, SearchSpec.from_json(row.spec)
                )
            return found

    def add(self, live: LiveSearch) -> None:
        with self._lock:
            self._live.setdefault(live.id, live)

    def loaded(self) -> list[str]:
        """The searches whose agent is in memory."""
        with self._lock:
            return [sid for sid, live in self._live.items() if live.has_agent()]
