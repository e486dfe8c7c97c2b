"""Searches: the controller's domain between the servicer and the store, as a thin
coordinator. Each call finds the search's ``LiveSearch`` (``live.py``) and runs, under its
lock, the module that owns the behaviour: ``sampling.py`` (Sample), ``group_commit.py``
(Update), ``warm_start.py`` (a new search's priors), ``stopping.py`` (epoch reports).

Every Sample and Update runs in one store transaction together with the agent state it
changed, so a kill -9 at any moment leaves the database at the last acknowledged call and a
restart continues exactly (same results, same agent weights, same next samples).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from controller_service import budget
from controller_service.agents.qlearning import QLearningAgent
from controller_service.budget import MAX_ROUND
from controller_service.errors import (
    BadReport,
    BadRequest,
    CandidateNotFound,
    NoQTable,
    ReportConflict,
    SearchNotFound,
)
from controller_service.group_commit import GroupCommit, report_of
from controller_service.live import LiveSearch, LiveSearches
from controller_service.sampling import Sampling, handout_of
from controller_service.spec import COST_METRICS, SearchSpec
from controller_service.stages import final_handouts, with_shared
from controller_service.states import SearchState, Status
from controller_service.stopping import Decision
from controller_service.store import ResultRow, Store
from controller_service.views import Handout, SearchView, UpdateAck, pareto_front
from controller_service.warm_start import MAX_REUSED, warm_start
from nasrl.core.results import TrainOutcome

__all__ = [
    "Searches",
    "SearchNotFound",
    "CandidateNotFound",
    "ReportConflict",
    "BadReport",
    "BadRequest",
    "NoQTable",
    "Handout",
    "SearchView",
    "UpdateAck",
    "MAX_SAMPLE",
    "MAX_ROUND",
    "MAX_SAMPLE_SECONDS",
    "pareto_front",
]

log = logging.getLogger(__name__)

MAX_SAMPLE = 1000
MAX_REQUEST_ID = 64
MAX_SAMPLE_SECONDS = 5.0


class Searches:
    """All searches of one controller; thread-safe."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (seconds since the epoch) sets lease deadlines; ``timer`` (monotonic)
        bounds how long one Sample proposes. Tests pass their own to control time."""
        self.store = store
        self.clock = clock
        self.timer = timer
        self.live = LiveSearches(store)
        self.commits = GroupCommit(store)

    @contextmanager
    def _locked(self, search_id: str) -> Iterator[LiveSearch]:
        """The search's own lock: calls on one search run one at a time, calls on different
        searches never wait for each other (only for the store's short write transactions).
        If the block fails, the search's in-memory state is reloaded from the last commit."""
        live = self.live.get(search_id)
        with live.locked():
            yield live

    def queued(self, search_id: str) -> int:
        """How many Updates wait for the search's lock."""
        return self.live.get(search_id).queued()

    # ------------------------------------------------------------------ create / read

    def create(self, spec: SearchSpec) -> SearchView:
        spec = spec.validate()
        search_id = secrets.token_hex(6)
        live = LiveSearch(search_id, spec)
        with self.store.transaction():
            # A warm start's pre-training runs inside: creating is rare, and the search
            # must never exist without its agent.
            self.store.add_search(search_id, spec.name, spec.to_json())
            agent = live.agent(self.store)
            if spec.warm_start.active:
                warm_start(self.store, search_id, spec, agent)
                agent.learn()
            live.save(self.store)
        live.saved()
        self.live.add(live)
        log.info(
            "created search %s: %s on %s, budget %d",
            search_id,
            spec.agent,
            spec.dataset,
            spec.budget,
        )
        return self.view(search_id)

    def view(self, search_id: str) -> SearchView:
        """What a search looks like in the store (its last committed state); takes no lock."""
        live = self.live.get(search_id)
        row = self.store.search(search_id)
        assert row is not None  # searches are never deleted
        top = self.store.top_results(search_id, 1)
        progress = self.store.agent_progress(search_id)
        if progress is None:  # saved before progress was stored with the agent
            with live.locked():
                progress = live.agent(self.store).progress()
        counts = self.store.counts(search_id)
        return SearchView(
            row.id,
            row.name,
            row.created,
            live.spec,
            row.state,
            counts,
            progress,
            top[0] if top else None,
            self._ended_because(search_id, live.spec, row.state, counts),
        )

    def _ended_because(
        self, search_id: str, spec: SearchSpec, state: str, counts: dict[str, int]
    ) -> str:
        if state == SearchState.RUNNING:
            return ""
        if state == SearchState.STOPPED:
            return "stopped"
        if budget.spent(counts) >= spec.budget:
            return "budget spent"
        streak = self.store.known_streak(search_id)
        if spec.convergence.action == "end" and streak >= spec.convergence.patience:
            return (
                f"converged: the agent's last {streak} proposals were all networks already "
                "evaluated (convergence.action end)"
            )
        return (
            f"sampling limit: {budget.MAX_SAMPLES_PER_BUDGET} proposals per child of the budget, "
            "too few of them new"
        )

    def spec(self, search_id: str) -> SearchSpec:
        return self.live.get(search_id).spec

    def all(self) -> list[SearchView]:
        return [self.view(sid) for sid in self.store.search_ids()]

    def leaderboard(self, search_id: str, k: int, pareto: str = "") -> list[ResultRow]:
        """The ``k`` most accurate results or, with ``pareto`` ("params" or "flops"), the
        first ``k`` of the accuracy/cost Pareto front, cheapest first."""
        if pareto not in ("", *COST_METRICS):
            raise BadRequest(
                f"pareto must be {' or '.join(COST_METRICS)} (or empty), got {pareto!r}"
            )
        self.live.get(search_id)
        if not pareto:
            return self.store.top_results(search_id, k)
        return pareto_front(self.store.top_results(search_id, MAX_REUSED), pareto)[:k]

    def q_table(self, search_id: str) -> tuple[list[tuple[str, str, float]], float]:
        """The learnt Q values (state, next state, value) and the initial value."""
        with self._locked(search_id) as live:
            agent = live.learn(self.store)
            if not isinstance(agent, QLearningAgent):
                raise NoQTable(
                    f"search {search_id} uses agent {live.spec.agent!r}, which has no "
                    "Q-table; only qlearning searches do"
                )
            return agent.export_q(), agent.q_init

    def stop(self, search_id: str) -> SearchView:
        with self._locked(search_id), self.store.transaction():
            if self._state(search_id) == SearchState.RUNNING:
                self.store.set_search_state(search_id, SearchState.STOPPED)
        return self.view(search_id)

    def _state(self, search_id: str) -> str:
        row = self.store.search(search_id)
        assert row is not None  # searches are never deleted
        return row.state

    # ------------------------------------------------------------------ sample

    def sample(
        self,
        search_id: str,
        count: int,
        request_id: str = "",
        reclaim: bool = False,
        time_budget: float | None = None,
        abandoned: Callable[[], bool] | None = None,
    ) -> tuple[list[Handout], bool]:
        """Up to ``count`` candidates and whether the search hands out nothing more. A repeated
        ``request_id`` returns the first answer; ``reclaim`` re-hands live leases first. New
        proposals stop after ``time_budget`` seconds (at most MAX_SAMPLE_SECONDS): a huge space
        or count then yields fewer candidates instead of holding the lock for minutes.
        ``abandoned``, asked before returning: True when the caller will not get the answer
        (it cancelled, its deadline passed); the leases are then released."""
        stop_at = self.timer() + min(MAX_SAMPLE_SECONDS, time_budget or MAX_SAMPLE_SECONDS)
        if not 1 <= count <= MAX_SAMPLE:
            raise BadRequest(f"count must be between 1 and {MAX_SAMPLE}, got {count}")
        if len(request_id) > MAX_REQUEST_ID:
            raise BadRequest(f"request_id must be at most {MAX_REQUEST_ID} characters")
        self.live.get(search_id).model(self.store)  # a refit it needs, outside the lock
        with self._locked(search_id) as live:
            state = self._state(search_id)
            if request_id and (earlier := self.store.by_request(search_id, request_id)):
                again = [handout_of(c) for c in earlier]
                return with_shared(self.store, live, again), state != SearchState.RUNNING
            if state != SearchState.RUNNING:
                return [], True
            now = self.clock()
            call = Sampling(self.store, live, now, request_id)
            out, done = call.run(
                count,
                reclaim,
                proposing=lambda attempts: attempts < 4 * count and self.timer() < stop_at,
                between_rounds=lambda: self.commits.record_queued(live),
            )
            if not done and len(out) < count:  # a SHARED search's top-k stage
                out += final_handouts(self.store, live, now, request_id, count - len(out))
            if abandoned is not None and abandoned():
                call.release(out)
            return with_shared(self.store, live, out), done

    # ------------------------------------------------------------------ report (epochs)

    def report(self, search_id: str, cid: int, epoch: int, accuracy: float) -> Decision:
        """Record one finished epoch of a running child and decide whether it goes on. The
        decision is stored with the report: the same (candidate, epoch) reported again (a
        retry, a child handed out again) gets the first decision."""
        if not (
            isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and 0 <= accuracy <= 1
        ):
            raise BadReport(f"validation_accuracy must be between 0 and 1, got {accuracy!r}")
        with self._locked(search_id) as live, self.store.transaction():
            spec = live.spec
            c = self.store.candidate(search_id, cid)
            if c is None:
                raise CandidateNotFound(f"search {search_id} has no candidate {cid}")
            stored = self.store.epoch_report(search_id, cid, epoch)
            if stored is not None:
                return Decision(stored)
            if c.status != Status.LEASED:
                raise ReportConflict(
                    f"candidate {cid} is not out for training ({c.status}); "
                    "only a running child reports epochs"
                )
            if not 1 <= epoch <= spec.training.epochs:
                raise BadReport(
                    f"epoch must be between 1 and the search's "
                    f"{spec.training.epochs} epochs, got {epoch}"
                )
            try:
                decision = live.rule(self.store).decide(cid, epoch, float(accuracy))
            except ValueError as exc:
                raise BadReport(str(exc)) from exc
            self.store.add_epoch_report(search_id, cid, epoch, float(accuracy), decision.value)
            return decision

    # ------------------------------------------------------------------ update

    def update(
        self, search_id: str, cid: int, outcome: TrainOutcome | None, failure: str | None
    ) -> UpdateAck:
        """Record a result or a ``failure`` reason (exactly one is given)."""
        report = report_of(outcome, failure)
        live = self.live.get(search_id)  # an unknown search is refused before anything queues
        return self.commits.update(live, cid, report)
