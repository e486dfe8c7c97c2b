"""Random and mutated proposals in either search space, for the agents that work in both
(random search, regularized evolution).

Decisions: ``{"tokens": ..., "skips": ...}`` in the Zoph space (as the reinforce agent's),
``{"path": ["C(3,64)", "P(2,2)", ..., "SM"]}`` in the MetaQNN space (as the qlearning agent's).
"""

from __future__ import annotations

import random
from typing import Any

from controller_service.agents.base import AgentSettingsError, Decisions, Proposal
from controller_service.metaqnn_space import MetaQNNSpace
from controller_service.search_space import ZophSpace
from nasrl.core.arch import Architecture

__all__ = ["Space", "random_proposal", "mutate_proposal", "decode", "encode", "check_space"]

Space = ZophSpace | MetaQNNSpace


def check_space(agent: str, space: Any, allowed: tuple[type, ...]) -> None:
    if not isinstance(space, allowed):
        names = " or ".join(repr(getattr(t, "name", t.__name__)) for t in allowed)
        raise AgentSettingsError(
            f"agent {agent!r} cannot search the {getattr(space, 'name', space)!r} space; "
            f"use {names}"
        )


def decode(space: Space, decisions: Decisions) -> Any:
    if isinstance(space, MetaQNNSpace):
        return space.decode(list(decisions["path"]))
    return space.decode(decisions["tokens"], decisions["skips"])


def encode(space: Space, arch: Architecture) -> Decisions:
    """The decisions that produce ``arch`` in ``space`` (the inverse of ``decode``), in the
    form every agent of that space learns from; ValueError says what does not fit."""
    if isinstance(space, MetaQNNSpace):
        return {"path": space.encode(arch)}
    decisions = space.encode(arch)
    return {**decisions, "layers": len(decisions["tokens"])}


def random_proposal(space: Space, rng: random.Random, layers: int) -> Proposal:
    """Uniform: a random walk in MetaQNN, every decision uniform over ``layers`` in Zoph."""
    if isinstance(space, MetaQNNSpace):
        decisions: Decisions = {"path": space.random_path(rng)}
    else:
        decisions = space.random_decisions(rng, layers)
    return Proposal(decode(space, decisions), decisions)


def mutate_proposal(space: Space, decisions: Decisions, rng: random.Random) -> Proposal:
    """One decision changed (Real et al. 2019's mutation)."""
    if isinstance(space, MetaQNNSpace):
        new: Decisions = {"path": space.mutate(list(decisions["path"]), rng)}
    else:
        new = space.mutate(decisions, rng)
    return Proposal(decode(space, new), new)
