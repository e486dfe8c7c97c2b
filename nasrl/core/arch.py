"""Architecture specs and their text form.

A child network is either a tuple of layers or a cell network (``Architecture.cell``, see
``nasrl.core.cell``: a NAS-Bench-201 cell on its macro skeleton; then ``layers`` is empty).
Each layer is an operation plus the indices of the layers it reads (0 = the image, ``i`` =
layer ``i``'s output, empty = the previous layer). The text form of layers, whitespace
separated, MetaQNN-like::

    C(64,3,1) P(2,2) C(128,3x5,1x2)@[0,2] FC(256) GAP SM(10)

and of a cell network NAS-Bench-201's cell string, with an optional skeleton prefix (see
``nasrl.core.cell``) and the same optional ``SM(n)``::

    [N=1]|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|

``parse`` and ``format_arch`` round-trip exactly for formatted strings, and
``parse(format_arch(a)) == a`` for every architecture with at least one layer and
non-negative sizes (anything else is rejected by ``nasrl.core.shapes.analyze`` anyway). ``canonical`` and ``arch_hash`` give
the form the dedup cache keys on; a cell network's canonical form keeps its own ops, while its
hash is that of the function it computes (``nasrl.core.cell.isomorphism_key``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from nasrl.core.cell import Block, Cell, blocks, isomorphism_key
from nasrl.core.cell_text import format_block, format_cell, format_skeleton, parse_cell
from nasrl.core.errors import ArchError, ArchSyntaxError

__all__ = [
    "Conv",
    "Pool",
    "FC",
    "GAP",
    "Op",
    "Layer",
    "Architecture",
    "ArchError",
    "ArchSyntaxError",
    "parse",
    "format_arch",
    "canonical",
    "arch_hash",
    "resolved_inputs",
    "consumers",
    "network_blocks",
    "describe_block",
]


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1


@dataclass(frozen=True)
class Pool:
    kernel: int
    stride: int


@dataclass(frozen=True)
class FC:
    units: int


@dataclass(frozen=True)
class GAP:
    pass


Op = Conv | Pool | FC | GAP


@dataclass(frozen=True)
class Layer:
    op: Op
    inputs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Architecture:
    """A child network: its ``layers``, or a ``cell`` network (then ``layers`` is empty;
    ``Architecture(cell=Cell(ops))``). Exactly one must be given for it to build."""

    layers: tuple[Layer, ...] = ()
    classes: int | None = None  # from a trailing SM(n); None = the dataset's
    cell: Cell | None = None

    def __post_init__(self) -> None:
        if self.cell is not None and self.layers:
            raise ArchError("an architecture has layers or a cell, not both")

    def __str__(self) -> str:
        return format_arch(self)


# ---------------------------------------------------------------------------- formatting


def _pair(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}x{b}"


def format_op(op: Op) -> str:
    if isinstance(op, Conv):
        return (
            f"C({op.filters},{_pair(op.kernel_h, op.kernel_w)},{_pair(op.stride_h, op.stride_w)})"
        )
    if isinstance(op, Pool):
        return f"P({op.kernel},{op.stride})"
    if isinstance(op, FC):
        return f"FC({op.units})"
    if isinstance(op, GAP):
        return "GAP"
    raise TypeError(f"not a layer operation: {op!r}")


def format_layer(layer: Layer) -> str:
    text = format_op(layer.op)
    if layer.inputs:
        text += "@[" + ",".join(str(i) for i in layer.inputs) + "]"
    return text


def format_arch(arch: Architecture) -> str:
    tokens = [format_cell(arch.cell)] if arch.cell is not None else []
    tokens += [format_layer(layer) for layer in arch.layers]
    if arch.classes is not None:
        tokens.append(f"SM({arch.classes})")
    return " ".join(tokens)


# ---------------------------------------------------------------------------- parsing

_INT = r"\s*(\d{1,12})\s*"
_PAIR = r"\s*(\d{1,12})(?:\s*x\s*(\d{1,12}))?\s*"
_TOKEN_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("C", re.compile(r"C\(" + _INT + "," + _PAIR + "," + _PAIR + r"\)")),
    ("P", re.compile(r"P\(" + _INT + "," + _INT + r"\)")),
    ("FC", re.compile(r"FC\(" + _INT + r"\)")),
    ("GAP", re.compile(r"GAP\b")),
    ("SM", re.compile(r"SM\(" + _INT + r"\)")),
]
_INPUTS = re.compile(r"@\[\s*(-?\d{1,12}(?:\s*,\s*-?\d{1,12})*)?\s*\]")
_SPACE = re.compile(r"\s*")
_HINTS = {
    "C": "C(filters,kernel,stride) with kernel/stride as N or HxW, e.g. C(64,3,1) or C(32,3x5,1x2)",
    "P": "P(kernel,stride), e.g. P(2,2)",
    "FC": "FC(units), e.g. FC(256)",
    "SM": "SM(classes), e.g. SM(10)",
}


def _op_from_match(kind: str, m: re.Match[str]) -> Op | int:
    g = m.groups()
    if kind == "C":
        kh = int(g[1])
        kw = int(g[2]) if g[2] is not None else kh
        sh = int(g[3])
        sw = int(g[4]) if g[4] is not None else sh
        return Conv(int(g[0]), kh, kw, sh, sw)
    if kind == "P":
        return Pool(int(g[0]), int(g[1]))
    if kind == "FC":
        return FC(int(g[0]))
    if kind == "GAP":
        return GAP()
    return int(g[0])  # SM(classes)


def _match_token(text: str, pos: int) -> tuple[str, re.Match[str]]:
    for kind, pattern in _TOKEN_PATTERNS:
        m = pattern.match(text, pos)
        if m:
            return kind, m
    for kind in ("FC", "C", "P", "SM"):  # longest prefixes first: FC before C
        if text.startswith(kind + "(", pos) or (kind != "C" and text.startswith(kind, pos)):
            raise ArchSyntaxError(f"malformed {kind} layer, expected {_HINTS[kind]}", text, pos)
    if text.startswith(("|", "["), pos):
        raise ArchSyntaxError(
            "a cell (|op~0|+...) is a whole architecture; it cannot follow layers", text, pos
        )
    raise ArchSyntaxError("expected a layer (C(...), P(...), FC(...), GAP) or SM(...)", text, pos)


def _parse_inputs(text: str, pos: int) -> tuple[tuple[int, ...], int]:
    if not text.startswith("@", pos):
        return (), pos
    m = _INPUTS.match(text, pos)
    if not m:
        raise ArchSyntaxError("malformed skip list, expected @[i,j,...] with integers", text, pos)
    if m.group(1) is None:
        raise ArchSyntaxError("empty skip list @[]; omit it to read the previous layer", text, pos)
    return tuple(int(x) for x in m.group(1).split(",")), m.end()


def _parse_cell_arch(text: str, pos: int) -> Architecture:
    """A cell network and an optional trailing SM(classes)."""
    cell, pos = parse_cell(text, pos)
    end = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if end == len(text):
        return Architecture(cell=cell)
    m = _TOKEN_PATTERNS[-1][1].match(text, end)  # SM(classes)
    if end == pos or not m:
        raise ArchSyntaxError(
            "unexpected text after the cell; only ' SM(classes)' may follow it", text, pos
        )
    after = _SPACE.match(text, m.end()).end()  # type: ignore[union-attr]
    if after < len(text):
        raise ArchSyntaxError("SM(classes) must be the last token", text, after)
    return Architecture(cell=cell, classes=int(m.group(1)))


def parse(text: str) -> Architecture:
    """Parse the text form (layers, or a cell network when the text starts with ``|`` or
    ``[``); raises ArchSyntaxError naming the position of the problem."""
    if not isinstance(text, str):
        raise ArchError(f"architecture text must be a string, not {type(text).__name__}")
    layers: list[Layer] = []
    classes: int | None = None
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if text.startswith(("|", "["), pos):
        return _parse_cell_arch(text, pos)
    while pos < len(text):
        if classes is not None:
            raise ArchSyntaxError("SM(classes) must be the last token", text, pos)
        start = pos
        kind, m = _match_token(text, pos)
        value = _op_from_match(kind, m)
        pos = m.end()
        if kind == "SM":
            if text.startswith("@", pos):
                raise ArchSyntaxError("SM(classes) takes no skip list", text, pos)
            assert isinstance(value, int)
            classes = value
        else:
            assert not isinstance(value, int)
            inputs, pos = _parse_inputs(text, pos)
            layers.append(Layer(value, inputs))
        if pos < len(text) and not text[pos].isspace():
            raise ArchSyntaxError(
                f"unexpected {text[pos]!r} after layer {len(layers)} (started at {start}); "
                "separate layers with spaces",
                text,
                pos,
            )
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
    if not layers:
        raise ArchSyntaxError("an architecture needs at least one layer", text, pos)
    return Architecture(tuple(layers), classes)


# ---------------------------------------------------------------------------- graph helpers


def resolved_inputs(arch: Architecture) -> list[tuple[int, ...]]:
    """Inputs of each layer with the default filled in (empty = previous layer)."""
    return [layer.inputs or (i,) for i, layer in enumerate(arch.layers)]


def consumers(arch: Architecture) -> list[int]:
    """How many later layers read each node (index 0 = image, i = layer i)."""
    counts = [0] * (len(arch.layers) + 1)
    for ins in resolved_inputs(arch):
        for j in ins:
            if 0 <= j < len(counts):
                counts[j] += 1
    return counts


def network_blocks(arch: Architecture) -> tuple[Op | Block, ...]:
    """What the builder walks: the layers' operations, or a cell network's blocks (stem,
    cells, reductions, head; their inputs are a chain)."""
    if arch.cell is not None:
        return blocks(arch.cell)
    return tuple(layer.op for layer in arch.layers)


def describe_block(block: Op | Block) -> str:
    """``C(64,3,1)`` for a layer's operation, ``reduction to 32`` for a cell network's block."""
    if isinstance(block, (Conv, Pool, FC, GAP)):
        return format_op(block)
    return format_block(block)


def canonical(arch: Architecture) -> Architecture:
    """The form that is equal for equal networks: skip lists sorted and deduplicated, a list
    that only names the previous layer dropped, and the SM(n) suffix dropped (the dataset
    fixes the classes). A cell network keeps its own ops (isomorphic cells stay apart here;
    ``arch_hash`` puts them together)."""
    if arch.cell is not None:
        return Architecture(cell=arch.cell)
    layers = []
    for i, layer in enumerate(arch.layers):
        inputs = tuple(sorted(set(layer.inputs)))
        if inputs == (i,):
            inputs = ()
        layers.append(Layer(layer.op, inputs))
    return Architecture(tuple(layers), None)


def arch_hash(arch: Architecture) -> str:
    """A stable 16-hex-digit hash of the canonical text form; for a cell network, of its
    skeleton and ``isomorphism_key``, so cells that compute the same function hash the same."""
    return _hash(arch, None if arch.cell is not None else format_arch(canonical(arch)))


def hashed(arch: Architecture) -> tuple[str, str]:
    """``(arch_hash(arch), format_arch(canonical(arch)))``, formatting the network once."""
    text = format_arch(canonical(arch))
    return _hash(arch, text), text


def _hash(arch: Architecture, text: str | None) -> str:
    """``arch_hash`` given the canonical text of a layer network."""
    if arch.cell is not None:
        text = "cell:" + format_skeleton(arch.cell.skeleton) + isomorphism_key(arch.cell)
    assert text is not None
    return hashlib.sha256(text.encode()).hexdigest()[:16]
