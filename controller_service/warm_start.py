"""Warm starts: reuse an earlier search's results and pre-train a new search's agent on
known-good networks (the given ones, then the earlier search's best ``top``)."""

from __future__ import annotations

import logging
from typing import Any

from controller_service.agents import Agent
from controller_service.reports import Result
from controller_service.spaces import encode
from controller_service.spec import SearchSpec, SpecError
from controller_service.states import Status
from controller_service.store import ResultRow, Store
from nasrl.core.arch import arch_hash, parse

__all__ = ["warm_start", "MAX_REUSED"]

log = logging.getLogger(__name__)

MAX_REUSED = 100_000  # results of an earlier search a warm start reuses


def warm_start(store: Store, search_id: str, spec: SearchSpec, agent: Agent) -> None:
    """Pre-train ``agent`` on the priors: the given networks, then the earlier search's best
    ``top``. Reused results (those of children that trained every epoch, in this search's
    space and limits) are recorded as cached candidates (no budget), and the agent learns the
    best ``top`` of them, worst first, through ``record``; the others are answered from the
    cache if proposed. Runs inside the creating transaction."""
    warm, space = spec.warm_start, spec.bound_space()
    priors = [encode(space, parse(text)) for text in warm.architectures]
    if warm.search_id:
        learnt = _reuse(store, search_id, spec, agent)
        priors += [decisions for decisions, _ in learnt]
    agent.pretrain(priors, warm.pretrain_steps, warm.pretrain_learning_rate)
    log.info("search %s: warm start from %d prior network(s)", search_id, len(priors))


def _reuse(
    store: Store, search_id: str, spec: SearchSpec, agent: Agent
) -> list[tuple[dict[str, Any], float]]:
    source_id = spec.warm_start.search_id
    source = store.search(source_id)
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
    for r in store.top_results(source_id, MAX_REUSED):
        arch = parse(r.arch)
        digest = arch_hash(arch)
        try:
            decisions = {**encode(space, arch), "prior": True}
        except ValueError:
            continue  # not in this search's space
        if (
            spec.constraints.violation(r.params, r.flops)
            or r.outcome.stopped_early  # a partial result stands for nothing
            or store.has_hash(search_id, digest)
        ):
            continue
        reward = spec.reward_of(r.outcome)
        cid = store.add_candidate(
            search_id,
            r.arch,
            digest,
            decisions,
            Status.CACHED,
            None,
            report=Result(r.outcome),
            reward=reward,
        )
        store.add_result(search_id, digest, ResultRow.of(cid, r.arch, r.outcome, reward))
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
