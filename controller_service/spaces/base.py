"""What every search space shares: the ``Space`` type and the operations on a space's
decisions that work in either space (random and mutated decisions, decisions ⇄ networks).

Decisions: ``{"tokens": ..., "skips": ...}`` in the Zoph space (as the reinforce agent's),
``{"path": ["C(3,64)", "P(2,2)", ..., "SM"]}`` in the MetaQNN space (as the qlearning agent's),
``{"path": ["nor_conv_3x3", "none", ...]}`` (one operation per edge) in the NB201 space.
"""

from __future__ import annotations

import random
from typing import Any

from controller_service.spaces.metaqnn import MetaQNNSpace
from controller_service.spaces.nb201 import Nb201Space
from controller_service.spaces.zoph import ZophSpace
from nasrl.core.arch import Architecture, format_arch

__all__ = [
    "Space",
    "PathSpace",
    "Decisions",
    "random_decisions",
    "mutate_decisions",
    "decode",
    "encode",
]

Space = ZophSpace | MetaQNNSpace | Nb201Space
#: the spaces whose decisions are a path (``{"path": [...]}``) walked from a start state
PathSpace = MetaQNNSpace | Nb201Space
Decisions = dict[str, Any]  # the choices that produced a network, as an agent records them


def decode(space: Space, decisions: Decisions) -> Any:
    if isinstance(space, PathSpace):
        return space.decode(list(decisions["path"]))
    return space.decode(decisions["tokens"], decisions["skips"])


def encode(space: Space, arch: Architecture, verify: bool = True) -> Decisions:
    """The decisions that produce ``arch`` in ``space`` (the inverse of ``decode``), in the
    form every agent of that space learns from; ValueError says what does not fit.
    ``verify=False`` skips decoding them back to ``arch`` (the layer spaces' costliest check),
    for a network the space itself produced."""
    if isinstance(space, Nb201Space):
        return {"path": space.encode(arch)}
    if arch.cell is not None:  # the layer spaces would read it as a network of no layers
        raise ValueError(
            f"{format_arch(arch)} is a cell network; this search space holds layer networks"
        )
    if isinstance(space, MetaQNNSpace):
        return {"path": space.encode(arch, verify)}
    decisions = space.encode(arch, verify)
    return {**decisions, "layers": len(decisions["tokens"])}


def random_decisions(space: Space, rng: random.Random, layers: int) -> Decisions:
    """Uniform: a random walk in MetaQNN, every edge's operation uniform in NB201, every
    decision uniform over ``layers`` in Zoph."""
    if isinstance(space, PathSpace):
        decisions: Decisions = {"path": space.random_path(rng)}
    else:
        decisions = space.random_decisions(rng, layers)
    return decisions


def mutate_decisions(space: Space, decisions: Decisions, rng: random.Random) -> Decisions:
    """One decision changed (Real et al. 2019's mutation; one edge's operation in NB201)."""
    if isinstance(space, PathSpace):
        new: Decisions = {"path": space.mutate(list(decisions["path"]), rng)}
    else:
        new = space.mutate(decisions, rng)
    return new
