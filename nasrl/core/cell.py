"""Cell networks (NAS-Bench-201's topology space): types, blocks and isomorphism key.

A cell has 4 nodes: node 0 is its input, node 3 its output, and every node sums its incoming
edges; each of the 6 edges ``j -> i`` (``j < i``) carries one of five operations. The network
repeats the cell on a macro skeleton (``Skeleton``): a 3x3 conv stem with ``channels`` (C)
channels, ``stages`` stages of ``cells_per_stage`` (N) cells with C, 2C, 4C, ... channels,
a residual reduction block between stages, then batch-norm, ReLU, global average pooling and
the classifier. ``blocks`` lists those blocks in order, the way ``Architecture.layers`` lists
a layer network's; ``nasrl.core.shapes`` and ``nasrl.core.builder`` walk that list.

Text form: NAS-Bench-201's own cell string, the edges of node 1, then 2, then 3, each edge
``op~source`` with the sources in order::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|

A bare string means NAS-Bench-201's skeleton (C=16, N=5, 3 stages); another skeleton is
written as a prefix naming the values that differ, in the order C, N, S (stages)::

    [N=1]|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|none~2|
    [C=32,N=2,S=4]|avg_pool_3x3~0|+|...

The text form is parsed and written by ``nasrl.core.cell_text`` (and, for a whole
architecture, by ``nasrl.core.arch.parse`` / ``format_arch``). ``isomorphism_key`` is the same
for cells that NAS-Bench-201 counts as computing the same function (its ``isomorphism_key``
column), while ``cell_text.cell_string`` keeps the cell's own ops.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nasrl.core.errors import ArchError

__all__ = [
    "CellOp",
    "CELL_OPS",
    "NODES",
    "EDGES",
    "Skeleton",
    "DEFAULT_SKELETON",
    "Cell",
    "Stem",
    "CellBlock",
    "Reduction",
    "Head",
    "Block",
    "blocks",
    "isomorphism_key",
]


class CellOp(enum.Enum):
    """The operation on one edge; the value is NAS-Bench-201's name."""

    NONE = "none"  # the zero map
    SKIP_CONNECT = "skip_connect"  # the identity
    NOR_CONV_1X1 = "nor_conv_1x1"  # ReLU -> 1x1 conv -> batch-norm
    NOR_CONV_3X3 = "nor_conv_3x3"  # ReLU -> 3x3 conv (padding 1) -> batch-norm
    AVG_POOL_3X3 = "avg_pool_3x3"  # 3x3 average pool, stride 1, padding 1


CELL_OPS: tuple[CellOp, ...] = tuple(CellOp)  # NAS-Bench-201's order of the operations
NODES = 4  # node 0 = the cell's input, node NODES - 1 = its output
# (source, target) of each edge, in NAS-Bench-201's string order: 0->1, 0->2, 1->2, 0->3, ...
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(1, NODES) for j in range(i))


@dataclass(frozen=True)
class Skeleton:
    """How the cell is stacked; the defaults are NAS-Bench-201's network."""

    channels: int = 16  # C: the stem's and the first stage's channels; stage s has C * 2^s
    cells_per_stage: int = 5  # N
    stages: int = 3  # each stage after the first starts with a reduction that halves the map


DEFAULT_SKELETON = Skeleton()


@dataclass(frozen=True)
class Cell:
    """A cell network: the operation of each edge (in ``EDGES`` order) and the skeleton.
    Sizes are checked by ``nasrl.core.shapes.analyze``; the ops here, at construction."""

    ops: tuple[CellOp, ...]
    skeleton: Skeleton = DEFAULT_SKELETON

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES) or not all(isinstance(op, CellOp) for op in self.ops):
            raise ArchError(f"a cell has {len(EDGES)} edges, each a CellOp; got {list(self.ops)!r}")

    def op(self, source: int, target: int) -> CellOp:
        """The operation on the edge ``source -> target``."""
        return self.ops[EDGES.index((source, target))]


# ---------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Stem:
    """3x3 conv (padding 1, no bias) to ``channels`` channels, then batch-norm."""

    channels: int


@dataclass(frozen=True)
class CellBlock:
    """One cell; it keeps its input's channels and map size."""

    ops: tuple[CellOp, ...]


@dataclass(frozen=True)
class Reduction:
    """NAS-Bench-201's residual reduction (ResNet basic block, stride 2) to ``channels``:
    ReLU-conv3x3/2-BN, ReLU-conv3x3-BN, plus a 2x2/2 average pool + 1x1 conv shortcut."""

    channels: int


@dataclass(frozen=True)
class Head:
    """Batch-norm, ReLU and global average pooling: a channels x 1 x 1 map."""


Block = Stem | CellBlock | Reduction | Head


def blocks(cell: Cell) -> tuple[Block, ...]:
    """The network's blocks in order (the classifier follows the head)."""
    s = cell.skeleton
    out: list[Block] = [Stem(s.channels)]
    for stage in range(s.stages):
        if stage:
            out.append(Reduction(s.channels << stage))
        out += [CellBlock(cell.ops)] * s.cells_per_stage
    out.append(Head())
    return tuple(out)


# ---------------------------------------------------------------------------- isomorphism


def isomorphism_key(cell: Cell | tuple[CellOp, ...]) -> str:
    """The same string for cells that compute the same function, as NAS-Bench-201 decides it
    (its ``Structure.to_unique_str(consider_zero=True)``; equal to the ``isomorphism_key``
    column of the benchmark's table). Each node is written as the sorted sum of its edges'
    terms: ``#`` for a ``none`` edge or an edge from a node that is exactly ``#``, the source's
    own expression for ``skip_connect``, ``(source)@op`` otherwise; the key is node 3's. So the
    order of a node's inputs, edges that do not reach the output, identities and zeros flowing
    through operations do not matter; zero terms are still counted (``#+0`` is not ``0``) and a
    sum read through a skip stays one term."""
    ops = cell.ops if isinstance(cell, Cell) else cell
    nodes = ["0"]
    for node in range(1, NODES):
        terms = []
        for op, (j, i) in zip(ops, EDGES):
            if i != node:
                continue
            if op is CellOp.NONE or nodes[j] == "#":
                terms.append("#")
            elif op is CellOp.SKIP_CONNECT:
                terms.append(nodes[j])
            else:
                terms.append(f"({nodes[j]})@{op.value}")
        nodes.append("+".join(sorted(terms)))
    return nodes[-1]
