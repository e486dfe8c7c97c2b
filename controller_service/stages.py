"""The stages of a SHARED search (weight sharing, ENAS; the settings are ``evaluation.py``'s):

1. **warm-up**: the first ``warmup_children`` children are drawn uniformly at random from the
   space (``warmup_proposals``; new, valid networks only), so that the supernet trains before
   the agent's choices count. The agent neither proposes them nor learns from them;
2. **search**: the agent's children. Every child of stages 1 and 2 is handed out with
   ``Handout.shared`` (``with_shared``): trained a few steps on the supernet and scored under
   its weights; the budget counts them;
3. **top-k**: once the budget's shared children are all reported, the ``top_k`` networks with
   the best shared scores are handed out once more for full training (``final_handouts``;
   candidates marked ``final``). Their results replace the shared scores in the results
   table (``keeps``), so the leaderboard ranks them as trained accuracies; the agent does not
   learn from them either (``learns``).

Everything is read from the store, so a restarted controller continues in the same stage."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

from controller_service import budget
from controller_service.agents import Agent, Proposal
from controller_service.budget import final_left, room
from controller_service.evaluation import evaluation_conflict, shared_training
from controller_service.live import LiveSearch
from controller_service.reports import Report, Result
from controller_service.spaces import ZophSpace, decode, random_decisions
from controller_service.states import Status
from controller_service.store import CandidateRow, ResultRow, Store
from controller_service.views import Handout
from nasrl.core.arch import ArchError, arch_hash
from nasrl.core.results import Evaluation, TrainOutcome
from nasrl.core.shapes import analyze

__all__ = [
    "proposals",
    "warmup_proposals",
    "final_handouts",
    "with_shared",
    "learns",
    "keeps",
    "report_conflict",
]

log = logging.getLogger(__name__)

MAX_DRAWS = 50  # uniform draws per warm-up child before the agent proposes instead


def proposals(store: Store, live: LiveSearch, agent: Agent, n: int) -> list[Proposal]:
    """``n`` proposals: the warm-up's while it lasts, the agent's for the rest."""
    warm = warmup_proposals(store, live, n)
    rest = n - len(warm)
    return warm + (agent.sample(rest) if rest > 0 else [])


def warmup_proposals(store: Store, live: LiveSearch, n: int) -> list[Proposal]:
    """Up to ``n`` uniform proposals while fewer than ``warmup_children`` children have been
    handed out; each new, valid for the input and within the constraints (so that none is
    recorded as cached, waiting or invalid, which the agent would learn from). The draws are
    seeded by the search's seed and progress: a restarted controller draws the same."""
    spec = live.spec
    ev = spec.evaluation
    if not ev.shared or ev.warmup_children == 0:
        return []
    counts = store.counts(live.id)
    spent = budget.spent(counts)
    per = spec.screening.factor if spec.screening.score else 1
    want = min(n, (ev.warmup_children - spent) * per)
    space, image = spec.bound_space(), spec.image()
    layers = space.max_layers if isinstance(space, ZophSpace) else 0
    out: list[Proposal] = []
    seen: set[str] = set()
    for draw in range(max(0, want) * MAX_DRAWS):
        if len(out) >= want:
            break
        decisions = random_decisions(space, random.Random(f"{spec.seed}/{spent}/{draw}"), layers)
        arch = decode(space, decisions)
        digest = arch_hash(arch)
        if digest in seen or store.has_hash(live.id, digest):
            continue
        try:
            size = analyze(arch, image)
        except ArchError:
            continue
        if spec.constraints.violation(size.params, size.flops) is None:
            seen.add(digest)
            out.append(Proposal(arch, {**decisions, "warmup": True}))
    return out


def final_handouts(
    store: Store, live: LiveSearch, now: float, request_id: str, count: int
) -> list[Handout]:
    """Up to ``count`` top-k networks for full training, once the budget's shared children
    are all reported (none otherwise)."""
    spec, search_id = live.spec, live.id
    left = min(count, final_left(store, search_id, spec))
    if left <= 0 or store.shared_in_flight(search_id) or room(spec, store.counts(search_id)):
        return []
    deadline = now + spec.lease_seconds
    out = []
    with store.transaction():
        for digest, text in store.untaken_shared(search_id, left):
            cid = store.add_candidate(
                search_id, text, digest, {}, Status.LEASED, deadline, final=True
            )
            if request_id:
                store.set_request(search_id, cid, request_id)
            out.append(Handout(cid, text, deadline, None))
    log.info("search %s: %d top-k network(s) handed out for full training", search_id, len(out))
    return out


def with_shared(store: Store, live: LiveSearch, handouts: list[Handout]) -> list[Handout]:
    """``handouts`` with ``shared`` set on those to train under shared weights: in a SHARED
    search, every one to train but the top-k stage's."""
    ev = live.spec.evaluation
    if not ev.shared:
        return handouts
    training = shared_training(ev, live.spec.bound_space())
    final = store.final_ids(live.id, [h.id for h in handouts if h.cached is None])
    return [
        h if h.cached is not None or h.id in final else replace(h, shared=training)
        for h in handouts
    ]


def learns(c: CandidateRow) -> bool:
    """Whether the agent learns from this candidate's result: not from the warm-up's nor the
    top-k stage's."""
    return not c.final and not c.decisions.get("warmup")


def keeps(store: Store, search_id: str, c: CandidateRow, outcome: TrainOutcome) -> bool:
    """Whether ``outcome`` becomes its network's result: the first result of a network, or a
    trained one replacing a shared-weights score (the top-k stage's)."""
    known = store.result(search_id, c.arch_hash)
    return known is None or _replaces(outcome, known)


def _replaces(outcome: TrainOutcome, known: ResultRow) -> bool:
    shared = Evaluation.SHARED
    return known.outcome.evaluation is shared and outcome.evaluation is not shared


def report_conflict(live: LiveSearch, c: CandidateRow, report: Report) -> str | None:
    """Why ``report`` contradicts what candidate ``c`` was handed out for (a shared-weights
    result of a child handed out for full training, or the reverse); None when it fits."""
    if not isinstance(report, Result):
        return None
    shared = live.spec.evaluation.shared and not c.final
    return evaluation_conflict(c.id, shared, report.outcome)
