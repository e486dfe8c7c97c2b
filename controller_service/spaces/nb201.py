"""``Nb201Space``, NAS-Bench-201's cell space (Dong & Yang 2020): one cell of 4 nodes whose 6
edges each take an operation, repeated on a macro skeleton. Plain data, no torch.

Decisions are a path of the edges' operations in NAS-Bench-201's string order (0->1, 0->2,
1->2, 0->3, 1->3, 2->3), e.g. ``["nor_conv_3x3", "none", "skip_connect", ...]``: the same
``{"path": [...]}`` form as the MetaQNN space, so that Q-learning walks it edge by edge (a
state is the edges decided so far) and random search and evolution treat both alike.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from controller_service.spaces.zoph import SpaceError
from nasrl.core.arch import Architecture
from nasrl.core.cell import CELL_OPS, DEFAULT_SKELETON, EDGES, Cell, CellOp, Skeleton
from nasrl.core.shapes import InputShape

__all__ = ["Nb201Space", "EdgeState"]

_OPS = {op.value: op for op in CELL_OPS}
_EDGE_NAMES = tuple(f"{j}->{i}" for j, i in EDGES)  # for messages


@dataclass(frozen=True)
class EdgeState:
    """The edges decided so far (their operations' names, in edge order); Q-learning's state."""

    ops: tuple[str, ...]

    @property
    def terminal(self) -> bool:
        return len(self.ops) == len(EDGES)

    @property
    def action(self) -> str:
        """The operation this state adds (its last edge's), as the path stores it."""
        return self.ops[-1] if self.ops else "start"

    @functools.cached_property
    def key(self) -> str:
        """The Q-table's name of the state: the decided edges' operations in edge order,
        e.g. "nor_conv_3x3|none" ("start" before the first edge)."""
        return "|".join(self.ops) if self.ops else "start"


@dataclass(frozen=True)
class Nb201Space:
    """NAS-Bench-201's cell space: the operations an edge may take and the skeleton every child
    is built on (NAS-Bench-201's by default: C=16, N=5, 3 stages)."""

    ops: tuple[str, ...] = tuple(op.value for op in CELL_OPS)
    skeleton: Skeleton = DEFAULT_SKELETON

    name = "nb201"

    def validate(self) -> Nb201Space:
        if not self.ops:
            raise SpaceError("ops needs at least one operation")
        unknown = [op for op in self.ops if op not in _OPS]
        if unknown:
            raise SpaceError(
                f"ops lists {unknown[0]!r}, which is not a cell operation; "
                f"choose from {', '.join(_OPS)}"
            )
        if len(set(self.ops)) != len(self.ops):
            raise SpaceError(f"ops lists an operation twice: {list(self.ops)}")
        s = self.skeleton
        for name, value, high in (
            ("skeleton.channels", s.channels, 1024),
            ("skeleton.cells_per_stage", s.cells_per_stage, 32),
            ("skeleton.stages", s.stages, 6),
        ):
            if not 1 <= value <= high:
                raise SpaceError(f"{name} must be between 1 and {high}, got {value}")
        return self

    def bind(self, image: InputShape) -> Nb201Space:
        """The same space (whether the skeleton fits the input is checked per child)."""
        return self

    @property
    def size(self) -> int:
        """The number of cells (ops per edge ^ edges), isomorphic ones counted apart."""
        return int(len(self.ops) ** len(EDGES))

    # ------------------------------------------------------------------ walking (Q-learning)

    def start(self) -> EdgeState:
        return EdgeState(())

    def actions(self, s: EdgeState) -> list[EdgeState]:
        """One next state per operation for the next edge, in ``ops`` order; none at the end."""
        if s.terminal:
            return []
        return [EdgeState((*s.ops, op)) for op in self.ops]

    def follow(self, path: list[str]) -> list[EdgeState]:
        """The states a path passes through, the start first; ValueError for a path that is
        not 6 of this space's operations."""
        if len(path) != len(EDGES):
            raise ValueError(f"a cell path has {len(EDGES)} operations, got {len(path)}")
        for edge, op in zip(_EDGE_NAMES, path):
            if op not in self.ops:
                raise ValueError(
                    f"edge {edge}: {op!r} is not one of this space's ops ({', '.join(self.ops)})"
                )
        return [EdgeState(tuple(path[:i])) for i in range(len(path) + 1)]

    # ------------------------------------------------------------------ decisions ⇄ networks

    def decode(self, path: list[str]) -> Architecture:
        self.follow(path)
        return Architecture(cell=Cell(tuple(_OPS[op] for op in path), self.skeleton))

    def encode(self, arch: Architecture) -> list[str]:
        """The path of a cell network in this space; ValueError says what does not fit."""
        if arch.cell is None:
            raise ValueError("a layer network is not a cell; this search space holds cells")
        if arch.cell.skeleton != self.skeleton:
            raise ValueError(
                f"the cell's skeleton {_skeleton_text(arch.cell.skeleton)} is not this "
                f"space's {_skeleton_text(self.skeleton)}"
            )
        path = [op.value for op in arch.cell.ops]
        self.follow(path)
        return path

    def random_path(self, rng: random.Random) -> list[str]:
        """Every edge's operation uniform."""
        return [rng.choice(self.ops) for _ in EDGES]

    def mutate(self, path: list[str], rng: random.Random) -> list[str]:
        """One edge's operation changed to another (NAS-Bench-201's REA mutation); a space of
        one operation has nothing to change."""
        new = list(path)
        if len(self.ops) < 2:
            return new
        edge = rng.randrange(len(EDGES))
        new[edge] = rng.choice([op for op in self.ops if op != path[edge]])
        return new

    def op_index(self, op: str) -> int:
        return self.ops.index(op)

    def cell_op(self, index: int) -> CellOp:
        return _OPS[self.ops[index]]


def _skeleton_text(s: Skeleton) -> str:
    return f"(C={s.channels}, N={s.cells_per_stage}, S={s.stages})"
