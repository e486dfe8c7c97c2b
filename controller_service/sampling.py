"""Sample: hand out candidates. Each round proposes and prepares outside any transaction
(rollouts, shape checks, screening scores), then records in one short transaction; usually
one round, more when proposals turn out known or in flight.

Dedup: a network already evaluated in a search is never trained again; it is answered from
the results table (``cached``) and the agent learns from the stored reward. A network equal
to one in flight is not handed out either: it waits (``waiting``) for its twin's report.

Screening: ``factor`` proposals per child, the new ones ranked by a training-free score or by
the search's predictor (``screen_model``), only the best handed out.

Convergence: after ``convergence.patience`` of the agent's proposals in a row were known, the
agent is converged: with ``explore`` every child's group gets one more proposal, drawn
uniformly from the space or (``draws`` "mutations") a mutation of one of the best results, a
uniform draw when no mutation is new (its decisions marked ``explore``), recorded only when the
agent's own proposals bring nothing new — when the search screens, the best-scoring new one of
``factor`` such draws (the others are not recorded); with ``end`` the search ends. The streak is kept in the agent's
``Memory`` and rebuilt from the candidates on reload (``Store.known_streak``); the draw is
seeded by the search's seed, the candidates recorded so far and the group's place in the
round, so a restarted controller draws the same networks."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from controller_service import budget, stages
from controller_service.agents import Agent, Proposal
from controller_service.agents.proposals import exploration_draws, mutation_draws
from controller_service.checks import Checks
from controller_service.live import LiveSearch, Memory
from controller_service.reports import Rejected, Result, Screened
from controller_service.screen_model import Fitted
from controller_service.spaces import encode
from controller_service.states import SearchState, Status
from controller_service.store import CandidateRow, Store
from controller_service.views import Handout
from nasrl.core.arch import arch_hash, parse

__all__ = ["Sampling", "handout_of"]

log = logging.getLogger(__name__)


class _New:
    """What ``Sampling._unless_new`` returns for a proposal that needs training."""


_NEW = _New()


@dataclass
class _Group:
    """The proposals that yield at most one child: the agent's (one, or ``factor`` when
    screened) and, while the agent is converged, the controller's exploration draws (one,
    or ``factor`` when screened; with mutation draws, a uniform ``fallback`` for when none of
    them is new)."""

    proposals: list[Proposal]
    screened: bool
    explore: list[Proposal] = field(default_factory=list)
    fallback: list[Proposal] = field(default_factory=list)
    new: bool = field(default=False)  # set when one of the agent's proposals was new


def handout_of(c: CandidateRow) -> Handout:
    """A stored candidate as a Sample handed it out."""
    report = c.report if c.status == Status.CACHED else None
    cached = report.outcome if isinstance(report, Result) else None
    return Handout(c.id, c.arch, c.lease_deadline or 0.0, cached)


class Sampling:
    """One Sample call on one search, run under the search's lock."""

    def __init__(self, store: Store, live: LiveSearch, now: float, request_id: str) -> None:
        self.store, self.live, self.spec = store, live, live.spec
        self.now = now
        self.request_id = request_id
        self.model: Fitted | None = None  # the predictor of this call (screen_model)
        self.group: _Group | None = None  # the group being recorded
        self.checks = Checks(store, live.spec, live.id)

    def run(
        self,
        count: int,
        reclaim: bool,
        proposing: Callable[[int], bool],
        between_rounds: Callable[[], None],
    ) -> tuple[list[Handout], bool]:
        """Up to ``count`` handouts (expired leases first) and whether the search is done.
        ``proposing(attempts)`` says whether to propose more; ``between_rounds`` runs
        before every round but the first (the search's queued Updates are recorded there)."""
        store, live, search_id = self.store, self.live, self.live.id
        deadline = self.now + self.spec.lease_seconds
        self.model = live.model(store)
        agent = live.learn(store, self._dream)
        memory = live.memory(store)
        expired = store.expired_leases(search_id, math.inf if reclaim else self.now, count)
        out: list[Handout] = []
        attempts = 0
        first = True
        while True:
            if not first:
                between_rounds()
                agent = live.learn(store, self._dream)  # reloaded if a recorded group failed
                memory = live.memory(store)
            want = 0
            counts = store.counts(search_id)
            ending = self._converged(memory) and self.spec.convergence.action == "end"
            if proposing(attempts) and not ending:
                want = min(count - len(out) - len(expired), budget.room(self.spec, counts))
            groups = self._proposals(agent, want, memory, counts) if want > 0 else []
            attempts += len(groups)
            self.checks.run(
                (
                    (p, group.screened)
                    for group in groups
                    for p in group.proposals + group.explore + group.fallback
                ),
                self._score_name(),
                self.model,
            )
            with store.transaction():
                out += [self._reissue(c, deadline) for c in expired]
                expired = []
                for group in groups:
                    handout = self._group(agent, group)
                    if handout is not None:
                        if self.request_id:
                            store.set_request(search_id, handout.id, self.request_id)
                        out.append(handout)
                last = want <= 0 or len(out) >= count
                live.save(store)
                done = False
                if ending and store.counts(search_id).get(Status.LEASED, 0) == 0:
                    store.set_search_state(search_id, SearchState.DONE)
                    log.info(
                        "search %s: the agent converged (%d known proposals in a row); "
                        "the search ends",
                        search_id,
                        memory.streak,
                    )
                    done = True
                elif last:
                    done = budget.settle(store, search_id, self.spec)
            live.saved()
            if last:
                return out, done
            first = False

    def release(self, handouts: list[Handout]) -> None:
        """A Sample whose caller left before the answer: its leases end now, so the next
        Sample hands those candidates out again first, as it does expired ones, and their
        request id is forgotten, so a retry with it is a new Sample (and gets them first).
        Runs under the search's lock, before anyone saw the candidates; a candidate reported
        or handed out again meanwhile keeps its state (the store checks). Cached ones have no
        lease: only their request id goes."""
        released = 0
        with self.store.transaction():
            for h in handouts:
                if h.cached is None:
                    released += self.store.release_lease(self.live.id, h.id, h.lease_deadline)
                else:
                    self.store.set_request(self.live.id, h.id, None)
        log.info(
            "search %s: the caller of a Sample left before its answer; %d lease(s) released",
            self.live.id,
            released,
        )

    def _reissue(self, c: CandidateRow, deadline: float) -> Handout:
        self.store.renew_lease(self.live.id, c.id, deadline, self.request_id or None)
        log.info("search %s: handing candidate %d out again", self.live.id, c.id)
        return Handout(c.id, c.arch, deadline, None)

    def _dream(self, agent: Agent) -> None:
        """The agent's model-based steps on this call's predictor (``Agent.dream``)."""
        model, spec = self.model, self.spec
        if model is not None:
            agent.dream(lambda ps: model.predicted(ps, spec.image(), spec.constraints), model.size)

    def _converged(self, memory: Memory) -> bool:
        return memory.streak >= self.spec.convergence.patience

    def _score_name(self) -> str:
        """What ranks screened proposals now ("" = no screening in this call)."""
        screening = self.spec.screening
        if not screening.learnt:
            return screening.score
        return "predictor" if self.model is not None else screening.cold_start_score

    def _proposals(
        self, agent: Agent, want: int, memory: Memory, counts: dict[str, int]
    ) -> list[_Group]:
        """``want`` groups of proposals, each to yield at most one child: the warm start's
        networks not yet recorded first (one each, never screened), else the agent's
        (``factor`` each when screening, else one), sampled in one batched call, each with
        exploration draws while the agent is converged."""
        priors = self._next_priors(want)
        if priors:
            return [_Group([p], False) for p in priors]
        screened = bool(self._score_name())
        per = self.spec.screening.factor if screened else 1
        batch = stages.proposals(self.store, self.live, agent, want * per)  # warm-up first
        groups = [_Group(batch[i * per : (i + 1) * per], screened) for i in range(want)]
        rule = self.spec.convergence
        if self._converged(memory) and rule.action == "explore":
            space, seed, recorded = self.spec.bound_space(), self.spec.seed, budget.recorded(counts)
            parents = []
            if rule.draws == "mutations":
                parents = [r.arch for r in self.store.best_results(self.live.id, rule.top)]
            for j, group in enumerate(groups):
                uniform = exploration_draws(space, seed, 1 if parents else per, recorded, j)
                if parents:
                    group.explore = mutation_draws(space, seed, per, parents, recorded, j)
                    group.fallback = uniform
                else:
                    group.explore = uniform
        return groups

    def _group(self, agent: Agent, group: _Group) -> Handout | None:
        """Record one group: the agent's proposals, then, when they brought nothing new and
        the agent is converged, the exploration proposal: of the draws, the best-scoring new
        one (unscreened: the first new one); when none is new, the fallback draw, else the
        first."""
        self.group = group
        if group.screened:
            handout = self._screened(agent, group.proposals)
        else:
            handout = self._propose(agent, group.proposals[0])
        if group.new or not group.explore:
            return handout
        pick = self._pick(group.explore) or self._pick(group.fallback)
        if pick is None:
            pick = (group.fallback or group.explore)[0]
        explored = self._propose(agent, pick)
        return explored if explored is not None and explored.cached is None else handout

    def _pick(self, draws: list[Proposal]) -> Proposal | None:
        """The best-scoring new draw (unscored: the first new one); None when none is new."""
        new = [p for p in draws if self.checks[p].new]
        return max(new, key=lambda p: self.checks[p].score or 0.0) if new else None

    def _next_priors(self, want: int) -> list[Proposal]:
        """Up to ``want`` warm-start networks not yet recorded, in the order given."""
        priors = self.spec.warm_start.architectures
        memory = self.live.memory(self.store)
        done = memory.priors_done
        while done < len(priors) and self.store.has_hash(
            self.live.id, arch_hash(parse(priors[done]))
        ):
            done += 1
        memory.priors_done = done
        out = []
        for text in priors[done : done + want]:
            arch = parse(text)
            out.append(Proposal(arch, {**encode(self.spec.bound_space(), arch), "prior": True}))
        return out

    def _propose(self, agent: Agent, p: Proposal) -> Handout | None:
        """Record a proposal: a new network is leased out for training."""
        outcome = self._unless_new(agent, p)
        return self._lease(p) if isinstance(outcome, _New) else outcome

    def _unless_new(self, agent: Agent, p: Proposal) -> Handout | _New | None:
        """Record a proposal that needs no training — invalid, over the limits (both learnt
        as failures), already evaluated (cached, learnt from its reward) or equal to one in
        flight (waiting) — and return its handout (or None); ``_NEW`` for a new network,
        which is not recorded."""
        ready = self.checks[p]
        if ready.size is None:
            self._add(p, Status.INVALID)
            self._note(p, known=False)
            agent.record(p.decisions, None)
            log.info(
                "search %s: agent proposed an invalid network: %s", self.live.id, ready.invalid
            )
            return None
        if ready.rejected is not None:  # rejected before training: no budget, learnt as a failure
            self._add(p, Status.INVALID, Rejected(ready.rejected))
            self._note(p, known=False)
            agent.record(p.decisions, None)
            return None
        known, twin = self.checks.lookup(p)
        if known is not None:
            cid = self._add(p, Status.CACHED, Result(known.outcome), known.reward)
            self._note(p, known=True)
            agent.record(p.decisions, known.reward)
            return Handout(cid, self.checks.key(p)[1], 0.0, known.outcome)
        if twin is not None:
            self._add(p, Status.WAITING, twin=twin.id)
            self._note(p, known=True)
            return None
        return _NEW

    def _add(
        self,
        p: Proposal,
        status: str,
        report: Rejected | Result | Screened | None = None,
        reward: float | None = None,
        deadline: float | None = None,
        twin: int | None = None,
    ) -> int:
        """Record a proposal of this call as a candidate (finished when ``report`` is given)."""
        digest, text = self.checks.key(p)
        self.checks.recorded(p)
        return self.store.add_candidate(
            self.live.id, text, digest, p.decisions, status, deadline, twin, False, report, reward
        )

    def _note(self, p: Proposal, known: bool) -> None:
        """Count one recorded proposal towards the agent's streak of known ones (only the
        agent's own: not warm-start priors nor exploration)."""
        if "prior" in p.decisions or "explore" in p.decisions:
            return
        memory = self.live.memory(self.store)
        if known:
            memory.streak += 1
        else:
            memory.streak = 0
            if self.group is not None:
                self.group.new = True

    def _lease(self, p: Proposal) -> Handout:
        self._note(p, known=False)
        deadline = self.now + self.spec.lease_seconds
        cid = self._add(p, Status.LEASED, deadline=deadline)
        return Handout(cid, self.checks.key(p)[1], deadline, None)

    def _screened(self, agent: Agent, group: list[Proposal]) -> Handout | None:
        """One child by screening a group of ``factor`` proposals; those that are invalid,
        known or in flight are handled as always (a known one is recorded as cached and
        learnt, but not handed out); of the new ones only the best-scoring is handed out, the
        others are recorded with their score and not learnt from."""
        score = self._score_name()
        fresh: dict[str, tuple[Proposal, float]] = {}
        for p in group:
            digest = self.checks.digest(p)
            if digest in fresh or not isinstance(self._unless_new(agent, p), _New):
                continue
            value = self.checks[p].score
            if value is None:  # not new when checked; cannot happen under the search's lock
                value = self.checks.scores(score, self.model, [p])[0]
            fresh[digest] = (p, value)
        if not fresh:
            return None
        best = max(fresh, key=lambda d: fresh[d][1])
        for digest, (p, value) in fresh.items():
            if digest != best:
                self._note(p, known=False)
                self._add(p, Status.INVALID, Screened(score, value))
        return self._lease(fresh[best][0])
