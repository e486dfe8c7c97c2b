"""Searches: the controller's domain logic between the servicer and the store.

Every Sample and Update runs in one store transaction together with the agent state it
changed, so a kill -9 at any moment leaves the database at the last acknowledged call and a
restart continues exactly (same results, same agent weights, same next samples).

Dedup: a network already evaluated in a search is never trained again; it is answered from
the results table (``cached``) and the agent learns from the stored reward. A network equal to
one in flight is not handed out either: it waits (``waiting``) for its twin's report.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from controller_service.agents import Agent, Proposal
from controller_service.agents.qlearning import QLearningAgent
from controller_service.spaces import encode
from controller_service.spec import COST_METRICS, SearchSpec, SpecError, reward_of
from controller_service.states import TRAINING, SearchState, Status
from controller_service.stopping import Decision, StoppingRule, make_rule
from controller_service.store import CandidateRow, ResultRow, SearchRow, Store, dump_state
from nasrl.core.arch import ArchError, arch_hash, canonical, format_arch, parse
from nasrl.core.results import TrainOutcome
from nasrl.core.scoring import score as screen_score
from nasrl.core.shapes import Analysis, analyze

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
    "pareto_front",
]

log = logging.getLogger(__name__)

MAX_SAMPLE = 1000
MAX_REQUEST_ID = 64
MAX_SAMPLE_SECONDS = 5.0
MAX_FAILURE_TEXT = 2000
MAX_ROUND = 256  # proposals prepared per transaction of one Sample
MAX_SAMPLES_PER_BUDGET = 50  # guards against an agent that only re-proposes known networks
MAX_REUSED = 100_000  # results of an earlier search a warm start reuses
_UNSAVED = object()


class _New:
    """What ``Searches._unless_new`` returns for a proposal that needs training."""


@dataclass(frozen=True)
class _Prepared:
    """A proposal's checks done before the transaction: its shape (None: ``invalid`` says
    why it does not fit the input) and, when screened, its score."""

    size: Analysis | None
    invalid: str | None
    score: float | None


_NEW = _New()


class SearchNotFound(LookupError):
    pass


class CandidateNotFound(LookupError):
    pass


class NoQTable(RuntimeError):
    """The search's agent keeps no Q-table."""


class ReportConflict(RuntimeError):
    """A report that contradicts what is already recorded."""


class BadRequest(ValueError):
    """A request with a value outside what it may be; the message names it."""


class BadReport(BadRequest):
    """A report with impossible values."""


@dataclass(frozen=True)
class Handout:
    """A candidate given to a caller: to train (``cached`` None) or answered from results."""

    id: int
    text: str
    lease_deadline: float
    cached: TrainOutcome | None


@dataclass(frozen=True)
class SearchView:
    id: str
    name: str
    created: float
    spec: SearchSpec
    state: str
    counts: dict[str, int]
    progress: dict[str, float]
    best: ResultRow | None


@dataclass(frozen=True)
class UpdateAck:
    accepted: bool
    reward: float | None
    state: str


@dataclass(frozen=True)
class _SearchLock:
    """A search's lock, and a condition notified whenever it is released or queued reports
    were recorded (an Update waits on it for whichever comes first)."""

    lock: threading.RLock
    changed: threading.Condition

    def release(self) -> None:
        with self.changed:
            self.lock.release()
            self.changed.notify_all()

    def recorded(self) -> None:
        with self.changed:
            self.changed.notify_all()


@dataclass
class _Report:
    """One Update call's report, queued for the search's group commit, and its answer."""

    cid: int
    report: dict[str, Any]
    ack: UpdateAck | None = None
    error: BaseException | None = None
    done: bool = False

    def succeed(self, ack: UpdateAck) -> None:
        self.ack, self.done = ack, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True


MAX_CURVE = 1000  # epochs are capped at 1,000
MAX_TEXT = {"device": 64, "architecture": 20_000}


def _check_outcome(o: TrainOutcome) -> None:
    """Values a trainer cannot have produced; BadReport names the field."""
    if len(o.curve) > MAX_CURVE:
        raise BadReport(f"result.curve has {len(o.curve)} epochs; at most {MAX_CURVE}")
    for key, limit in MAX_TEXT.items():
        if len(str(getattr(o, key))) > limit:
            raise BadReport(f"result.{key} is longer than {limit} characters")
    for key in ("validation_accuracy", "validation_accuracy_last5", "test_accuracy"):
        value = getattr(o, key)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
            raise BadReport(f"result.{key} must be a number between 0 and 1, got {value!r}")
    for key in ("params", "flops"):
        if getattr(o, key) < 0:
            raise BadReport(f"result.{key} must not be negative, got {getattr(o, key)}")
    if not isinstance(o.seconds, (int, float)) or not math.isfinite(o.seconds) or o.seconds < 0:
        raise BadReport(f"result.seconds must be a non-negative number, got {o.seconds!r}")


def _stored(o: TrainOutcome) -> dict[str, Any]:
    """A result as the store keeps it in a report: its fields (``accuracy`` is derived)."""
    data = o.to_json()
    data.pop("accuracy", None)
    return data


def pareto_front(rows: list[ResultRow], metric: str) -> list[ResultRow]:
    """The results no other result beats on both accuracy and ``metric`` (params or flops),
    cheapest first; of equal cost only the most accurate."""

    def cost(r: ResultRow) -> int:
        return r.params if metric == "params" else r.flops

    front: list[ResultRow] = []
    for r in sorted(rows, key=lambda r: (cost(r), -r.accuracy, r.candidate_id)):
        if not front or r.accuracy > front[-1].accuracy:
            front.append(r)
    return front


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
        self._agents: dict[str, Agent] = {}
        self._rules: dict[str, StoppingRule] = {}  # rebuilt from the stored reports
        self._priors_done: dict[str, int] = {}  # warm-start networks already handed out
        self._saved_weights: dict[str, object] = {}  # weights_version() in the database
        self._heavy: dict[str, tuple[object, bytes]] = {}  # learnt weights not yet written
        self._logged: dict[str, int] = {}  # agent log entries in the database
        self._locks: dict[str, _SearchLock] = {}  # one per search
        self._locks_lock = threading.Lock()
        self._reports: dict[str, list[_Report]] = {}  # Updates waiting for their search's lock
        self._reports_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    def _row(self, search_id: str) -> SearchRow:
        row = self.store.search(search_id)
        if row is None:
            raise SearchNotFound(f"no search with id {search_id!r}; ListSearches shows them")
        return row

    def _agent(self, search_id: str, spec: SearchSpec) -> Agent:
        agent = self._agents.get(search_id)
        if agent is None:
            agent = spec.make_agent()
            state = self.store.load_agent(search_id)
            if state is not None:
                agent.load_state_dict(state)
                if self.store.has_agent_weights(search_id):  # else: written whole at next save
                    self._saved_weights[search_id] = agent.weights_version()
            self._agents[search_id] = agent
        return agent

    @contextmanager
    def _locked(self, search_id: str) -> Iterator[None]:
        """The search's own lock: calls on one search run one at a time, calls on different
        searches never wait for each other (only for the store's short write transactions).
        If the block fails, the search's in-memory state is dropped and reloaded from the
        last commit. Locks exist only for searches in the store, so unknown ids cost none."""
        self._row(search_id)
        lock = self._lock_of(search_id)
        lock.lock.acquire()
        with self._holding(search_id, lock):
            yield

    @contextmanager
    def _holding(self, search_id: str, lock: _SearchLock) -> Iterator[None]:
        """The block runs with ``lock`` already taken and releases it; if the block fails,
        the search's in-memory state is dropped and reloaded from the last commit."""
        try:
            yield
        except BaseException:
            self._forget(search_id)
            raise
        finally:
            lock.release()

    def _lock_of(self, search_id: str) -> _SearchLock:
        with self._locks_lock:
            found = self._locks.get(search_id)
            if found is None:
                found = self._locks[search_id] = _SearchLock(
                    threading.RLock(), threading.Condition()
                )
            return found

    def _forget(self, search_id: str) -> None:
        for cache in (
            self._agents,
            self._rules,
            self._priors_done,
            self._saved_weights,
            self._logged,
            self._heavy,
        ):
            cache.pop(search_id, None)

    def _learn(self, search_id: str, agent: Agent) -> None:
        """The agent's deferred learning, outside any transaction; its new weights are
        serialised here and written by the next ``_save``."""
        agent.learn()
        version = agent.weights_version()
        if self._saved_weights.get(search_id, _UNSAVED) != version:
            self._heavy[search_id] = (version, self._dump_heavy(agent))

    def _save(self, search_id: str, agent: Agent) -> None:
        """Write the agent's state in the current transaction: its light part always, its
        weights only when they changed since they were last written (serialised beforehand
        by ``_learn`` where possible)."""
        version = agent.weights_version()
        heavy = None
        if self._saved_weights.get(search_id, _UNSAVED) != version:
            ready = self._heavy.get(search_id)
            heavy = ready[1] if ready and ready[0] == version else self._dump_heavy(agent)
        light = dump_state(agent.light_state(), plain=True)
        self.store.write_agent(search_id, light, heavy, agent.progress())
        logged = self._logged.get(search_id)
        if logged is None:
            logged = self.store.log_length(search_id)
        new = agent.log_since(logged)
        if new:
            self.store.append_log(search_id, logged, new)
        changed = agent.changed_entries()
        if changed:
            self.store.write_entries(search_id, changed)
        self._logged[search_id] = logged + len(new)

    @staticmethod
    def _dump_heavy(agent: Agent) -> bytes:
        return dump_state(agent.heavy_state())

    def _saved(self, search_id: str, agent: Agent) -> None:
        """After the commit of a ``_save``: the written weights are the database's."""
        self._saved_weights[search_id] = agent.weights_version()
        self._heavy.pop(search_id, None)

    # ------------------------------------------------------------------ create / read

    def create(self, spec: SearchSpec) -> SearchView:
        spec = spec.validate()
        search_id = secrets.token_hex(6)
        try:
            with self.store.transaction():
                # A warm start's pre-training runs inside: creating is rare, and the search
                # must never exist without its agent.
                self.store.add_search(search_id, spec.name, spec.to_json())
                agent = self._agent(search_id, spec)
                if spec.warm_start.active:
                    self._warm_start(search_id, spec, agent)
                    agent.learn()
                self._save(search_id, agent)
            self._saved(search_id, agent)
        except BaseException:
            self._forget(search_id)
            raise
        log.info(
            "created search %s: %s on %s, budget %d",
            search_id,
            spec.agent,
            spec.dataset,
            spec.budget,
        )
        return self.view(search_id)

    def _warm_start(self, search_id: str, spec: SearchSpec, agent: Agent) -> None:
        """Reuse an earlier search's results and pre-train the agent on the priors: the
        given networks, then that search's best ``top``. Reused results (those of children
        that trained every epoch, in this search's space and limits) are recorded as cached
        candidates (no budget), and the agent learns the best ``top`` of them, worst first,
        through ``update``; the others are answered from the cache if proposed."""
        warm, space = spec.warm_start, spec.bound_space()
        priors = [encode(space, parse(text)) for text in warm.architectures]
        if warm.search_id:
            learnt = self._reuse(search_id, spec, agent)
            priors += [decisions for decisions, _ in learnt]
        agent.pretrain(priors, warm.pretrain_steps, warm.pretrain_learning_rate)
        log.info("search %s: warm start from %d prior network(s)", search_id, len(priors))

    def _reuse(
        self, search_id: str, spec: SearchSpec, agent: Agent
    ) -> list[tuple[dict[str, Any], float]]:
        source_id = spec.warm_start.search_id
        source = self.store.search(source_id)
        if source is None:
            raise SpecError(
                f"warm_start.search_id: no search with id {source_id!r}; ListSearches shows them"
            )
        earlier = SearchSpec.from_json(source.spec)
        if earlier.dataset != spec.dataset or earlier.training != spec.training:
            raise SpecError(
                f"warm_start.search_id {source_id} trained on {earlier.dataset} with other "
                "training settings, so its results cannot stand in for this search's; pass its "
                "best networks as warm_start.architectures instead"
            )
        space = spec.bound_space()
        usable: list[tuple[dict[str, Any], float]] = []
        for r in self.store.top_results(source_id, MAX_REUSED):
            arch = parse(r.arch)
            digest = arch_hash(arch)
            try:
                decisions = {**encode(space, arch), "prior": True}
            except ValueError:
                continue  # not in this search's space
            if (
                spec.constraints.violation(r.params, r.flops)
                or r.outcome.get("stopped_early")  # a partial result stands for nothing
                or self.store.has_hash(search_id, digest)
            ):
                continue
            reward = reward_of(spec.reward, r.outcome, spec.constraints)
            cid = self.store.add_candidate(
                search_id, r.arch, digest, decisions, Status.CACHED, None
            )
            self.store.finish_candidate(
                search_id, cid, Status.CACHED, {"result": r.outcome}, reward
            )
            self.store.add_result(
                search_id,
                digest,
                ResultRow(
                    cid,
                    r.arch,
                    r.accuracy,
                    r.test_accuracy,
                    r.params,
                    r.flops,
                    r.seconds,
                    reward,
                    r.outcome,
                ),
            )
            usable.append((decisions, reward))
        best = (
            sorted(usable, key=lambda item: item[1])[-spec.warm_start.top :]
            if spec.warm_start.top
            else []
        )
        for decisions, reward in best:
            agent.record(decisions, reward)
        log.info("search %s: reused %d result(s) of search %s", search_id, len(usable), source_id)
        return best

    def view(self, search_id: str) -> SearchView:
        """What a search looks like in the store (its last committed state); takes no lock."""
        row = self._row(search_id)
        spec = SearchSpec.from_json(row.spec)
        top = self.store.top_results(search_id, 1)
        progress = self.store.agent_progress(search_id)
        if progress is None:  # saved before progress was stored with the agent
            with self._locked(search_id):
                progress = self._agent(search_id, spec).progress()
        return SearchView(
            row.id,
            row.name,
            row.created,
            spec,
            row.state,
            self.store.counts(search_id),
            progress,
            top[0] if top else None,
        )

    def spec(self, search_id: str) -> SearchSpec:
        return SearchSpec.from_json(self._row(search_id).spec)

    def all(self) -> list[SearchView]:
        return [self.view(sid) for sid in self.store.search_ids()]

    def leaderboard(self, search_id: str, k: int, pareto: str = "") -> list[ResultRow]:
        """The ``k`` most accurate results or, with ``pareto`` ("params" or "flops"), the
        first ``k`` of the accuracy/cost Pareto front, cheapest first."""
        if pareto not in ("", *COST_METRICS):
            raise BadRequest(
                f"pareto must be {' or '.join(COST_METRICS)} (or empty), got {pareto!r}"
            )
        self._row(search_id)
        if not pareto:
            return self.store.top_results(search_id, k)
        return pareto_front(self.store.top_results(search_id, MAX_REUSED), pareto)[:k]

    def q_table(self, search_id: str) -> tuple[list[tuple[str, str, float]], float]:
        """The learnt Q values (state, next state, value) and the initial value."""
        with self._locked(search_id):
            spec = SearchSpec.from_json(self._row(search_id).spec)
            agent = self._agent(search_id, spec)
            self._learn(search_id, agent)
            if not isinstance(agent, QLearningAgent):
                raise NoQTable(
                    f"search {search_id} uses agent {spec.agent!r}, which has no "
                    "Q-table; only qlearning searches do"
                )
            return agent.export_q(), agent.q_init

    def stop(self, search_id: str) -> SearchView:
        with self._locked(search_id), self.store.transaction():
            if self._row(search_id).state == SearchState.RUNNING:
                self.store.set_search_state(search_id, SearchState.STOPPED)
        return self.view(search_id)

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
        (it cancelled, its deadline passed); the leases are then released (see ``_release``)."""
        stop_at = self.timer() + min(MAX_SAMPLE_SECONDS, time_budget or MAX_SAMPLE_SECONDS)
        if not 1 <= count <= MAX_SAMPLE:
            raise BadRequest(f"count must be between 1 and {MAX_SAMPLE}, got {count}")
        if len(request_id) > MAX_REQUEST_ID:
            raise BadRequest(f"request_id must be at most {MAX_REQUEST_ID} characters")
        with self._locked(search_id):
            row = self._row(search_id)
            if request_id and (earlier := self.store.by_request(search_id, request_id)):
                return [self._handout(c) for c in earlier], row.state != SearchState.RUNNING
            if row.state != SearchState.RUNNING:
                return [], True
            spec = SearchSpec.from_json(row.spec)
            now = self.clock()
            deadline = now + spec.lease_seconds
            agent = self._agent(search_id, spec)
            self._learn(search_id, agent)
            expired = self.store.expired_leases(search_id, math.inf if reclaim else now, count)
            out: list[Handout] = []
            attempts = 0
            # Rounds: propose and prepare outside any transaction (rollouts, shape checks,
            # screening scores), then record in one short transaction. Usually one round;
            # more when proposals turn out known or in flight.
            first = True
            while True:
                if not first:  # between rounds: the Updates queued meanwhile are recorded first
                    queued = self._take_reports(search_id)
                    if queued:
                        self._update_group(search_id, queued)
                        agent = self._agent(search_id, spec)  # reloaded if the group failed
                        self._learn(search_id, agent)
                want = 0
                if attempts < 4 * count and self.timer() < stop_at:
                    want = min(count - len(out) - len(expired), self._room(search_id, spec))
                groups, screened = (
                    self._proposals(search_id, spec, agent, want) if want > 0 else ([], False)
                )
                attempts += len(groups)
                prepared = self._prepare(search_id, spec, groups, screened)
                with self.store.transaction():
                    out += [
                        self._reissue(search_id, c, deadline, request_id or None) for c in expired
                    ]
                    expired = []
                    for group in groups:
                        handout = (
                            self._screened(search_id, spec, agent, group, prepared, now)
                            if screened
                            else self._propose(search_id, spec, agent, group[0], prepared, now)
                        )
                        if handout is not None:
                            if request_id:
                                self.store.set_request(search_id, handout.id, request_id)
                            out.append(handout)
                    last = want <= 0 or len(out) >= count
                    self._save(search_id, agent)
                    done = self._settle(search_id, spec) if last else False
                self._saved(search_id, agent)
                if last:
                    if abandoned is not None and abandoned():
                        self._release(search_id, out)
                    return out, done
                first = False

    @staticmethod
    def _handout(c: CandidateRow) -> Handout:
        result = c.report.get("result") if c.status == Status.CACHED and c.report else None
        cached = TrainOutcome.from_json(result) if result is not None else None
        return Handout(c.id, c.arch, c.lease_deadline or 0.0, cached)

    def _release(self, search_id: str, handouts: list[Handout]) -> None:
        """A Sample whose caller left before the answer: its leases end now, so the next
        Sample hands those candidates out again first, as it does expired ones, and their
        request id is forgotten, so a retry with it is a new Sample (and gets them first).
        Runs under the search's lock, before anyone saw the candidates; a candidate reported or
        handed out again meanwhile keeps its state (the store checks). Cached ones have no
        lease: only their request id goes."""
        released = 0
        with self.store.transaction():
            for h in handouts:
                if h.cached is None:
                    released += self.store.release_lease(search_id, h.id, h.lease_deadline)
                else:
                    self.store.set_request(search_id, h.id, None)
        log.info(
            "search %s: the caller of a Sample left before its answer; %d lease(s) released",
            search_id,
            released,
        )

    def _reissue(
        self, search_id: str, c: CandidateRow, deadline: float, request_id: str | None
    ) -> Handout:
        self.store.renew_lease(search_id, c.id, deadline, request_id)
        log.info("search %s: handing candidate %d out again", search_id, c.id)
        return Handout(c.id, c.arch, deadline, None)

    def _room(self, search_id: str, spec: SearchSpec) -> int:
        """How many more children may be proposed now: the budget not yet spent, and at most
        MAX_SAMPLES_PER_BUDGET proposals per budget unit in all; at most MAX_ROUND at once."""
        counts = self.store.counts(search_id)
        spent = sum(counts.get(s, 0) for s in TRAINING)
        sampled = sum(v for k, v in counts.items() if k != "reissued")
        room = min(spec.budget - spent, spec.budget * MAX_SAMPLES_PER_BUDGET - sampled)
        return max(0, min(room, max(1, MAX_ROUND // max(1, spec.screening.factor))))

    def _proposals(
        self, search_id: str, spec: SearchSpec, agent: Agent, want: int
    ) -> tuple[list[list[Proposal]], bool]:
        """``want`` groups of proposals, each to yield at most one child, and whether they
        are screened: the warm start's networks not yet recorded first (one each, never
        screened), else the agent's (``factor`` each when screening, else one), sampled in
        one batched call."""
        priors = self._next_priors(search_id, spec, want)
        if priors:
            return [[p] for p in priors], False
        per = spec.screening.factor if spec.screening.score else 1
        batch = agent.sample(want * per)
        return [batch[i * per : (i + 1) * per] for i in range(want)], bool(spec.screening.score)

    def _next_priors(self, search_id: str, spec: SearchSpec, want: int) -> list[Proposal]:
        """Up to ``want`` warm-start networks not yet recorded, in the order given."""
        priors = spec.warm_start.architectures
        done = self._priors_done.get(search_id, 0)
        while done < len(priors) and self.store.has_hash(search_id, arch_hash(parse(priors[done]))):
            done += 1
        self._priors_done[search_id] = done
        out = []
        for text in priors[done : done + want]:
            arch = parse(text)
            out.append(Proposal(arch, {**encode(spec.bound_space(), arch), "prior": True}))
        return out

    def _prepare(
        self, search_id: str, spec: SearchSpec, groups: list[list[Proposal]], screened: bool
    ) -> dict[str, _Prepared]:
        """The expensive checks of every proposal, done before the transaction: its shape
        (or why it does not fit the input) and, in screened groups, the score of each one
        that is valid, within the limits, not evaluated and not in flight."""
        image, score = spec.image(), spec.screening.score
        out: dict[str, _Prepared] = {}
        for group in groups:
            for p in group:
                digest = arch_hash(p.arch)
                if digest in out:
                    continue
                try:
                    item = _Prepared(analyze(p.arch, image), None, None)
                except ArchError as exc:  # the space allows it, the dataset's input does not
                    item = _Prepared(None, str(exc), None)
                if (
                    screened
                    and item.size is not None
                    and spec.constraints.violation(item.size.params, item.size.flops) is None
                    and self.store.result(search_id, digest) is None
                    and self.store.in_flight_with_hash(search_id, digest) is None
                ):
                    item = _Prepared(item.size, None, screen_score(score, p.arch, image))
                out[digest] = item
        return out

    def _propose(
        self,
        search_id: str,
        spec: SearchSpec,
        agent: Agent,
        p: Proposal,
        prepared: dict[str, _Prepared],
        now: float,
    ) -> Handout | None:
        """Record a proposal: a new network is leased out for training."""
        outcome = self._unless_new(search_id, spec, agent, p, prepared)
        return self._lease(search_id, spec, p, now) if isinstance(outcome, _New) else outcome

    def _unless_new(
        self,
        search_id: str,
        spec: SearchSpec,
        agent: Agent,
        p: Proposal,
        prepared: dict[str, _Prepared],
    ) -> Handout | _New | None:
        """Record a proposal that needs no training — invalid, over the limits (both learnt
        as failures), already evaluated (cached, learnt from its reward) or equal to one in
        flight (waiting) — and return its handout (or None); ``_NEW`` for a new network,
        which is not recorded."""
        text = format_arch(canonical(p.arch))
        digest = arch_hash(p.arch)
        size = prepared[digest].size
        if size is None:
            self.store.add_candidate(search_id, text, digest, p.decisions, Status.INVALID, None)
            agent.record(p.decisions, None)
            log.info(
                "search %s: agent proposed an invalid network: %s",
                search_id,
                prepared[digest].invalid,
            )
            return None
        why = spec.constraints.violation(size.params, size.flops)
        if why is not None:  # rejected before training: no budget, learnt as a failure
            cid = self.store.add_candidate(
                search_id, text, digest, p.decisions, Status.INVALID, None
            )
            self.store.finish_candidate(search_id, cid, Status.INVALID, {"rejected": why}, None)
            agent.record(p.decisions, None)
            return None
        known = self.store.result(search_id, digest)
        if known is not None:
            cid = self.store.add_candidate(
                search_id, text, digest, p.decisions, Status.CACHED, None
            )
            self.store.finish_candidate(
                search_id, cid, Status.CACHED, {"result": known.outcome}, known.reward
            )
            agent.record(p.decisions, known.reward)
            return Handout(cid, text, 0.0, TrainOutcome.from_json(known.outcome))
        twin = self.store.in_flight_with_hash(search_id, digest)
        if twin is not None:
            self.store.add_candidate(
                search_id, text, digest, p.decisions, Status.WAITING, None, twin.id
            )
            return None
        return _NEW

    def _lease(self, search_id: str, spec: SearchSpec, p: Proposal, now: float) -> Handout:
        text = format_arch(canonical(p.arch))
        deadline = now + spec.lease_seconds
        cid = self.store.add_candidate(
            search_id, text, arch_hash(p.arch), p.decisions, Status.LEASED, deadline
        )
        return Handout(cid, text, deadline, None)

    def _screened(
        self,
        search_id: str,
        spec: SearchSpec,
        agent: Agent,
        group: list[Proposal],
        prepared: dict[str, _Prepared],
        now: float,
    ) -> Handout | None:
        """One child by screening a group of ``factor`` proposals; those that are invalid,
        known or in flight are handled as always (a known one is recorded as cached and
        learnt, but not handed out); of the new ones only the best-scoring is handed out, the
        others are recorded with their score and not learnt from."""
        screening = spec.screening
        fresh: dict[str, tuple[Proposal, float]] = {}
        for p in group:
            digest = arch_hash(p.arch)
            if digest in fresh or not isinstance(
                self._unless_new(search_id, spec, agent, p, prepared), _New
            ):
                continue
            value = prepared[digest].score
            if value is None:  # not new when prepared; cannot happen under the search's lock
                value = screen_score(screening.score, p.arch, spec.image())
            fresh[digest] = (p, value)
        if not fresh:
            return None
        best = max(fresh, key=lambda d: fresh[d][1])
        for digest, (p, value) in fresh.items():
            if digest != best:
                cid = self.store.add_candidate(
                    search_id,
                    format_arch(canonical(p.arch)),
                    digest,
                    p.decisions,
                    Status.INVALID,
                    None,
                )
                self.store.finish_candidate(
                    search_id, cid, Status.INVALID, {"screened": {screening.score: value}}, None
                )
        return self._lease(search_id, spec, fresh[best][0], now)

    def _settle(self, search_id: str, spec: SearchSpec) -> bool:
        """Mark the search done when nothing is in flight and no more may be proposed."""
        counts = self.store.counts(search_id)
        if counts.get(Status.LEASED, 0) == 0 and self._room(search_id, spec) == 0:
            self.store.set_search_state(search_id, SearchState.DONE)
            return True
        return False

    # ------------------------------------------------------------------ report (epochs)

    def report(self, search_id: str, cid: int, epoch: int, accuracy: float) -> Decision:
        """Record one finished epoch of a running child and decide whether it goes on. The
        decision is stored with the report: the same (candidate, epoch) reported again (a
        retry, a child handed out again) gets the first decision."""
        if not (
            isinstance(accuracy, (int, float)) and math.isfinite(accuracy) and 0 <= accuracy <= 1
        ):
            raise BadReport(f"validation_accuracy must be between 0 and 1, got {accuracy!r}")
        with self._locked(search_id), self.store.transaction():
            spec = SearchSpec.from_json(self._row(search_id).spec)
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
            rule = self._rule(search_id, spec)
            try:
                decision = rule.decide(cid, epoch, float(accuracy))
            except ValueError as exc:
                raise BadReport(str(exc)) from exc
            self.store.add_epoch_report(search_id, cid, epoch, float(accuracy), decision.value)
            return decision

    def _rule(self, search_id: str, spec: SearchSpec) -> StoppingRule:
        rule = self._rules.get(search_id)
        if rule is None:
            rule = make_rule(spec.early_stopping, spec.training.epochs)
            rule.replay(self.store.epoch_reports(search_id))
            self._rules[search_id] = rule
        return rule

    # ------------------------------------------------------------------ update

    def update(
        self, search_id: str, cid: int, outcome: TrainOutcome | None, failure: str | None
    ) -> UpdateAck:
        """Record a result or a ``failure`` reason (exactly one is given)."""
        if outcome is not None:
            _check_outcome(outcome)
            report: dict[str, Any] = {"result": _stored(outcome)}
        else:
            report = {"failure": (failure or "unspecified failure")[:MAX_FAILURE_TEXT]}
        mine = _Report(cid, self.store.canonical(report))  # compared with the stored report
        self._row(search_id)  # an unknown search is refused before anything is queued
        with self._reports_lock:
            self._reports.setdefault(search_id, []).append(mine)
        lock = self._lock_of(search_id)
        # Whoever holds the search's lock records the queued reports: this call, another
        # Update, or a Sample between its rounds, so a long Sample never holds up results.
        # This call waits until its report is recorded or the lock is free, whichever first.
        # (A holder releases the lock only while holding ``changed``, so no wake-up is lost.)
        holding = False
        with lock.changed:
            while not mine.done:
                if lock.lock.acquire(blocking=False):
                    holding = True
                    break
                lock.changed.wait()
        if holding:
            with self._holding(search_id, lock):
                if not mine.done:
                    group = self._take_reports(search_id)
                    if not any(item is mine for item in group):  # taken by one that crashed
                        group.append(mine)
                    self._update_group(search_id, group)
        if mine.error is not None:
            raise mine.error
        assert mine.ack is not None
        return mine.ack

    def _take_reports(self, search_id: str) -> list[_Report]:
        with self._reports_lock:
            return self._reports.pop(search_id, [])

    def _update_group(self, search_id: str, group: list[_Report]) -> None:
        """Group commit: the reports that queued on the search's lock, recorded in one
        transaction with one learning pass and one write of the agent (under load a search's
        Updates arrive far faster than one transaction each allows). If the group fails, each
        report is tried on its own, so one bad report fails only its own call."""
        try:
            self._record_group(search_id, group)
        except Exception:  # noqa: BLE001 - each report is retried alone below
            self._forget(search_id)  # the agent as of the last commit
            for item in group:
                if not item.done:
                    self._record_group(search_id, [item])
        finally:
            self._lock_of(search_id).recorded()  # their calls may return now

    def _record_group(self, search_id: str, group: list[_Report]) -> None:
        """Record ``group`` in one transaction (the caller holds the search's lock); a report
        that needs no recording (unknown candidate, a repeat) gets its answer at once."""
        try:
            row = self._row(search_id)
            fresh: list[tuple[_Report, CandidateRow]] = []
            for item in group:
                c = self.store.candidate(search_id, item.cid)
                if c is None:
                    item.fail(CandidateNotFound(f"search {search_id} has no candidate {item.cid}"))
                elif c.status != Status.LEASED:
                    try:
                        item.succeed(self._repeat(c, item.report, row.state))
                    except ReportConflict as exc:
                        item.fail(exc)
                elif any(c.id == f.id for _, f in fresh):
                    continue  # the same candidate twice: answered as a repeat after the commit
                else:
                    fresh.append((item, c))
            if fresh:
                spec = SearchSpec.from_json(row.spec)
                agent = self._agent(search_id, spec)
                self._learn(search_id, agent)  # earlier results' learning, outside the txn
                with self.store.transaction():
                    rewards = [
                        self._record(search_id, spec, agent, c, item.report) for item, c in fresh
                    ]
                    self._save(search_id, agent)
                    state = (
                        SearchState.DONE
                        if row.state == SearchState.RUNNING and self._settle(search_id, spec)
                        else row.state
                    )
                self._saved(search_id, agent)
                for (item, _), reward in zip(fresh, rewards):
                    item.succeed(UpdateAck(True, reward, state))
        except Exception as exc:
            if len(group) > 1:
                raise  # the group is retried report by report
            group[0].fail(exc)
            self._forget(search_id)
            return
        for item in group:
            if not item.done:  # a second report of a candidate recorded above
                self._record_group(search_id, [item])

    def _repeat(self, c: CandidateRow, report: dict[str, Any], state: str) -> UpdateAck:
        if c.status in (Status.WAITING, Status.INVALID):
            raise ReportConflict(f"candidate {c.id} was never handed out for training")
        if c.report == report:
            return UpdateAck(False, c.reward, state)
        raise ReportConflict(
            f"candidate {c.id} already has a different report ({c.status}); "
            "a candidate is reported once"
        )

    def _record(
        self,
        search_id: str,
        spec: SearchSpec,
        agent: Agent,
        c: CandidateRow,
        report: dict[str, Any],
    ) -> float | None:
        outcome = report.get("result")
        reward = reward_of(spec.reward, outcome, spec.constraints) if outcome is not None else None
        status = Status.DONE if outcome is not None else Status.FAILED
        self.store.finish_candidate(search_id, c.id, status, report, reward)
        if outcome is not None and self.store.result(search_id, c.arch_hash) is None:
            self.store.add_result(
                search_id,
                c.arch_hash,
                ResultRow(
                    c.id,
                    c.arch,
                    float(outcome["validation_accuracy"]),
                    float(outcome["test_accuracy"]),
                    int(outcome["params"]),
                    int(outcome["flops"]),
                    float(outcome["seconds"]),
                    float(reward or 0.0),
                    outcome,
                ),
            )
        agent.record(c.decisions, reward)
        for twin in self.store.waiting_twins(search_id, c.id):
            # Answered without training, whether the twin succeeded or failed.
            self.store.finish_candidate(search_id, twin.id, Status.CACHED, report, reward)
            agent.record(twin.decisions, reward)
        return reward
