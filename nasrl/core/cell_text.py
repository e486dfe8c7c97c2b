"""The text form of cell networks (see ``nasrl.core.cell`` for the network)::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|
    [N=1]|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|none~2|

NAS-Bench-201's own cell string: the edges of node 1, then 2, then 3 between ``|``, nodes
joined by ``+``, each edge ``op~source`` with the sources in order. A bare string is
NAS-Bench-201's skeleton (C=16, N=5, 3 stages); another skeleton is a prefix naming the values
that differ from it, in the order C (stem channels), N (cells per stage), S (stages), e.g.
``[C=32,N=2,S=4]``. ``parse_cell(format_cell(c))[0] == c`` for every cell and
``format_cell(parse_cell(s)[0]) == s`` for every formatted string; errors name the position.
"""

from __future__ import annotations

import re

from nasrl.core.cell import (
    DEFAULT_SKELETON,
    EDGES,
    NODES,
    Block,
    Cell,
    CellBlock,
    CellOp,
    Reduction,
    Skeleton,
    Stem,
)
from nasrl.core.errors import ArchSyntaxError

__all__ = [
    "cell_string",
    "format_skeleton",
    "format_cell",
    "parse_cell",
    "parse_skeleton",
    "format_block",
]


def format_block(block: Block) -> str:
    """A short name of a block for messages and comments."""
    if isinstance(block, Stem):
        return f"stem to {block.channels}"
    if isinstance(block, CellBlock):
        return "cell"
    if isinstance(block, Reduction):
        return f"reduction to {block.channels}"
    return "head"


# ---------------------------------------------------------------------------- text form

_KEYS = {"C": "channels", "N": "cells_per_stage", "S": "stages"}
_KEY_HINT = "C (stem channels), N (cells per stage) or S (stages)"
_OP_NAMES = {op.value: op for op in CellOp}
_OP_LIST = ", ".join(_OP_NAMES)
_ENTRY = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*(\d{1,12})\s*")
_EDGE = re.compile(r"([A-Za-z_]\w*)(?:~(\d{1,12}))?")
_SPACE = re.compile(r"\s*")


def cell_string(ops: Cell | tuple[CellOp, ...]) -> str:
    """NAS-Bench-201's string of the ops (no skeleton): the key of its table's rows."""
    if isinstance(ops, Cell):
        ops = ops.ops
    nodes = [
        "|" + "|".join(f"{op.value}~{j}" for op, (j, i) in zip(ops, EDGES) if i == node) + "|"
        for node in range(1, NODES)
    ]
    return "+".join(nodes)


def format_skeleton(skeleton: Skeleton) -> str:
    """The prefix of a non-default skeleton, e.g. ``[N=1]``; empty for NAS-Bench-201's."""
    entries = [
        f"{key}={getattr(skeleton, name)}"
        for key, name in _KEYS.items()
        if getattr(skeleton, name) != getattr(DEFAULT_SKELETON, name)
    ]
    return "[" + ",".join(entries) + "]" if entries else ""


def format_cell(cell: Cell) -> str:
    return format_skeleton(cell.skeleton) + cell_string(cell)


def _parse_skeleton(text: str, pos: int) -> tuple[Skeleton, int]:
    if not text.startswith("[", pos):
        return DEFAULT_SKELETON, pos
    values: dict[str, int] = {}
    pos += 1
    while True:
        m = _ENTRY.match(text, pos)
        if not m:
            raise ArchSyntaxError(
                f"malformed skeleton, expected KEY=N entries with KEY {_KEY_HINT}, e.g. [N=1]",
                text,
                pos,
            )
        key = m.group(1)
        if key not in _KEYS:
            raise ArchSyntaxError(
                f"unknown skeleton setting {key!r}; use {_KEY_HINT}", text, m.start(1)
            )
        if _KEYS[key] in values:
            raise ArchSyntaxError(f"skeleton setting {key} given twice", text, m.start(1))
        values[_KEYS[key]] = int(m.group(2))
        pos = m.end()
        if text.startswith("]", pos):
            break
        if not text.startswith(",", pos):
            raise ArchSyntaxError("expected ',' or ']' in the skeleton", text, pos)
        pos += 1
    return Skeleton(**values), pos + 1


def parse_skeleton(text: str) -> Skeleton:
    """A skeleton alone, with or without its brackets: ``N=1,C=8`` or ``[N=1,C=8]``; the
    values not named are NAS-Bench-201's. ArchSyntaxError names the position."""
    bracketed = text if text.startswith("[") else f"[{text}]"
    skeleton, pos = _parse_skeleton(bracketed, 0)
    if pos != len(bracketed):
        raise ArchSyntaxError("unexpected text after the skeleton", bracketed, pos)
    return skeleton


def _sources(node: int) -> str:
    """``node 0``, ``nodes 0 and 1``, ``nodes 0, 1 and 2``: where ``node``'s edges come from."""
    if node == 1:
        return "node 0"
    return "nodes " + ", ".join(str(j) for j in range(node - 1)) + f" and {node - 1}"


def _parse_node(text: str, pos: int, node: int) -> tuple[list[CellOp], int]:
    """The ops of ``node``'s edges, ``|op~0|op~1|...|``."""
    if not text.startswith("|", pos):
        raise ArchSyntaxError(f"expected '|' to open the edges of node {node}", text, pos)
    pos += 1
    ops = []
    for source in range(node):
        m = _EDGE.match(text, pos)
        if not m:
            raise ArchSyntaxError(
                f"expected the edge {source}->{node} as op~{source} with op one of {_OP_LIST}",
                text,
                pos,
            )
        if m.group(1) not in _OP_NAMES:
            raise ArchSyntaxError(
                f"unknown operation {m.group(1)!r} on edge {source}->{node}; use {_OP_LIST}",
                text,
                pos,
            )
        if m.group(2) is None:
            raise ArchSyntaxError(
                f"expected '~{source}' (the edge's source node) after the operation",
                text,
                m.end(1),
            )
        if int(m.group(2)) != source:
            raise ArchSyntaxError(
                f"expected ~{source}: node {node}'s edges come from {_sources(node)}, in "
                f"that order, got ~{m.group(2)}",
                text,
                m.start(2) - 1,
            )
        ops.append(_OP_NAMES[m.group(1)])
        pos = m.end()
        if not text.startswith("|", pos):
            raise ArchSyntaxError(f"expected '|' after the edge {source}->{node}", text, pos)
        pos += 1
    return ops, pos


def parse_cell(text: str, pos: int = 0) -> tuple[Cell, int]:
    """Parse a cell network starting at ``pos``; returns it and the position after it.
    Raises ArchSyntaxError naming the position of the problem."""
    skeleton, pos = _parse_skeleton(text, pos)
    pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    ops: list[CellOp] = []
    for node in range(1, NODES):
        if node > 1:
            if not text.startswith("+", pos):
                raise ArchSyntaxError(
                    f"node {node - 1}'s edges (from {_sources(node - 1)}) end here; "
                    f"expected '+' and node {node}",
                    text,
                    pos,
                )
            pos += 1
        node_ops, pos = _parse_node(text, pos, node)
        ops += node_ops
    if text.startswith("+", pos):
        raise ArchSyntaxError(
            f"a cell has {NODES - 1} nodes after its input; another starts here", text, pos
        )
    return Cell(tuple(ops), skeleton), pos
