"""Random and mutated proposals in either search space, for the agents that work in both
(random search, regularized evolution); the space operations themselves are in
``controller_service.spaces``."""

from __future__ import annotations

import random
from typing import Any

from controller_service.agents.base import AgentSettingsError, Proposal
from controller_service.spaces import (
    Decisions,
    Space,
    decode,
    encode,
    mutate_decisions,
    random_decisions,
)
from nasrl.core.arch import parse

__all__ = [
    "random_proposal",
    "mutate_proposal",
    "exploration",
    "exploration_draws",
    "mutation_draws",
    "check_space",
]


def check_space(agent: str, space: Any, allowed: tuple[type, ...]) -> None:
    if not isinstance(space, allowed):
        names = " or ".join(repr(getattr(t, "name", t.__name__)) for t in allowed)
        raise AgentSettingsError(
            f"agent {agent!r} cannot search the {getattr(space, 'name', space)!r} space; "
            f"use {names}"
        )


def random_proposal(space: Space, rng: random.Random, layers: int) -> Proposal:
    """Uniform: a random walk in MetaQNN, every decision uniform over ``layers`` in Zoph."""
    decisions = random_decisions(space, rng, layers)
    return Proposal(decode(space, decisions), decisions)


def exploration(space: Space, seed: int, *key: int) -> Proposal:
    """The convergence rule's exploration proposal: a network drawn uniformly from the space
    (decisions marked ``explore``), seeded by the search's seed and ``key`` (the controller:
    the candidates recorded so far and the group's place in its round), so that a restarted
    controller draws the same."""
    rng = random.Random(":".join(["explore", str(seed), *map(str, key)]))
    p = random_proposal(space, rng, getattr(space, "max_layers", 0))
    return Proposal(p.arch, {**p.decisions, "explore": True})


def exploration_draws(space: Space, seed: int, count: int, *key: int) -> list[Proposal]:
    """``count`` exploration proposals for one group (a screened search ranks them): the
    first is ``exploration(space, seed, *key)``, as an unscreened search draws it, the k-th
    after it is keyed by ``(*key, k)``."""
    keys = [key] + [(*key, k) for k in range(1, count)]
    return [exploration(space, seed, *k) for k in keys]


def mutation_draws(
    space: Space, seed: int, count: int, parents: list[str], *key: int
) -> list[Proposal]:
    """The convergence rule's exploration by mutation: ``count`` proposals, each one decision
    changed in one of ``parents`` (architecture texts: the search's best results), parent and
    change seeded by the search's seed and ``key`` as ``exploration`` is, decisions marked
    ``explore``."""
    out = []
    for k in range(count):
        rng = random.Random(":".join(["mutate", str(seed), *map(str, key), str(k)]))
        parent = parents[rng.randrange(len(parents))]
        p = mutate_proposal(space, encode(space, parse(parent)), rng)
        out.append(Proposal(p.arch, {**p.decisions, "explore": True}))
    return out


def mutate_proposal(space: Space, decisions: Decisions, rng: random.Random) -> Proposal:
    """One decision changed (Real et al. 2019's mutation)."""
    new = mutate_decisions(space, decisions, rng)
    return Proposal(decode(space, new), new)
