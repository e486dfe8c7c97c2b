"""Cell networks: the text form (NAS-Bench-201's string + skeleton prefix), its errors, the
typed form, the wire form, the canonical form and the hash of the function."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasrl.core import codec
from nasrl.core.arch import (
    ArchError,
    Architecture,
    ArchSyntaxError,
    arch_hash,
    canonical,
    format_arch,
    parse,
)
from nasrl.core.cell import (
    CELL_OPS,
    DEFAULT_SKELETON,
    EDGES,
    Cell,
    CellBlock,
    CellOp,
    Head,
    Reduction,
    Skeleton,
    Stem,
    blocks,
    isomorphism_key,
)
from nasrl.core.cell_text import cell_string, format_cell, parse_cell
from protos import architecture_pb2 as apb

N = CellOp.NONE
SKIP = CellOp.SKIP_CONNECT
C1 = CellOp.NOR_CONV_1X1
C3 = CellOp.NOR_CONV_3X3
POOL = CellOp.AVG_POOL_3X3

# NAS-Bench-201's example cell (its paper's figure), edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
EXAMPLE_CELL = Cell((C3, C3, C3, SKIP, C1, C3))

skeletons = st.builds(
    Skeleton, st.integers(0, 4096), st.integers(0, 64), st.integers(0, 64)
) | st.just(DEFAULT_SKELETON)
# the wire form's zero means "NAS-Bench-201's value", so only sizes >= 1 survive it
wire_cells = st.builds(
    Cell,
    st.tuples(*[st.sampled_from(CELL_OPS)] * len(EDGES)),
    st.builds(Skeleton, st.integers(1, 4096), st.integers(1, 64), st.integers(1, 64)),
)
cells = st.builds(Cell, st.tuples(*[st.sampled_from(CELL_OPS)] * len(EDGES)), skeletons)


def arch_of(ops: tuple[CellOp, ...], skeleton: Skeleton = DEFAULT_SKELETON) -> Architecture:
    return Architecture(cell=Cell(ops, skeleton))


# ---------------------------------------------------------------------------- text form


def test_parse_nas_bench_201_string() -> None:
    arch = parse(EXAMPLE)
    assert arch == Architecture(cell=EXAMPLE_CELL)
    assert arch.layers == () and arch.classes is None
    assert arch.cell is not None and arch.cell.skeleton == Skeleton(16, 5, 3)
    assert arch.cell.op(1, 3) is C1 and arch.cell.op(0, 3) is SKIP


def test_format_nas_bench_201_string_exactly() -> None:
    assert format_arch(Architecture(cell=EXAMPLE_CELL)) == EXAMPLE
    assert str(parse(EXAMPLE)) == EXAMPLE
    assert cell_string(EXAMPLE_CELL) == EXAMPLE == cell_string(EXAMPLE_CELL.ops)


@pytest.mark.parametrize(
    ("prefix", "skeleton"),
    [
        ("[N=1]", Skeleton(16, 1, 3)),
        ("[C=32]", Skeleton(32, 5, 3)),
        ("[S=2]", Skeleton(16, 5, 2)),
        ("[C=8,N=2,S=4]", Skeleton(8, 2, 4)),
        ("[C=0,N=0]", Skeleton(0, 0, 3)),  # parses; analyze rejects it
    ],
)
def test_a_skeleton_prefix_names_what_differs(prefix: str, skeleton: Skeleton) -> None:
    arch = parse(prefix + EXAMPLE)
    assert arch == arch_of(EXAMPLE_CELL.ops, skeleton)
    assert format_arch(arch) == prefix + EXAMPLE


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("[S=4,C=8]" + EXAMPLE, "[C=8,S=4]" + EXAMPLE),  # any order; formatted C, N, S
        ("[N=5]" + EXAMPLE, EXAMPLE),  # a default value written out is dropped
        ("  [ N = 1 , S=2 ]  " + EXAMPLE + "  ", "[N=1,S=2]" + EXAMPLE),
        (EXAMPLE + "   SM(10) ", EXAMPLE + " SM(10)"),
    ],
)
def test_other_spellings_format_to_the_formatted_form(text: str, formatted: str) -> None:
    assert format_arch(parse(text)) == formatted
    assert parse(formatted) == parse(text)


def test_sm_suffix_is_kept() -> None:
    arch = parse("[N=1]" + EXAMPLE + " SM(10)")
    assert arch.classes == 10 and arch.cell == Cell(EXAMPLE_CELL.ops, Skeleton(16, 1, 3))
    assert format_arch(arch) == "[N=1]" + EXAMPLE + " SM(10)"


@given(cells, st.none() | st.integers(1, 1000))
def test_parse_inverts_format(cell: Cell, classes: int | None) -> None:
    arch = Architecture(cell=cell, classes=classes)
    text = format_arch(arch)
    assert parse(text) == arch
    assert format_arch(parse(text)) == text


@given(cells)
def test_parse_cell_returns_where_it_stopped(cell: Cell) -> None:
    text = format_cell(cell)
    assert parse_cell(text + " rest") == (cell, len(text))


@pytest.mark.parametrize(
    ("text", "position", "phrase"),
    [
        ("|nor_conv_5x5~0|+", 1, "unknown operation 'nor_conv_5x5' on edge 0->1"),
        ("|nor_conv_3x3~1|", 13, "expected ~0: node 1's edges come from node 0"),
        ("|none~0|+|none~0|none~2|", 21, "expected ~1: node 2's edges come from nodes 0 and 1"),
        ("|none~0|+|none~0|none~1|+|none~0|none~2|", 37, "nodes 0, 1 and 2"),
        ("|none|+", 5, "expected '~0'"),
        ("|none~0+", 7, "expected '|' after the edge 0->1"),
        ("|none~0|none~1|+", 8, "node 1's edges (from node 0) end here; expected '+'"),
        ("|none~0|+", 9, "expected '|' to open the edges of node 2"),
        ("|none~0|+||", 10, "expected the edge 0->2"),
        ("|none~0|+|none~0|none~1|", 24, "expected '+' and node 3"),
        (EXAMPLE + "+|none~0|", 95, "a cell has 3 nodes after its input; another starts here"),
        (EXAMPLE + "x", 95, "only ' SM(classes)' may follow"),
        (EXAMPLE + "SM(10)", 95, "only ' SM(classes)' may follow"),
        (EXAMPLE + " C(8,3,1)", 95, "only ' SM(classes)' may follow"),
        (EXAMPLE + " SM(10) SM(10)", 103, "SM(classes) must be the last token"),
        ("[X=1]" + EXAMPLE, 1, "unknown skeleton setting 'X'; use C (stem channels)"),
        ("[N=1,N=2]" + EXAMPLE, 5, "skeleton setting N given twice"),
        ("[N=1" + EXAMPLE, 4, "expected ',' or ']'"),
        ("[]" + EXAMPLE, 1, "malformed skeleton"),
        ("[N=-1]" + EXAMPLE, 1, "malformed skeleton"),
        ("[N=1]", 5, "expected '|' to open the edges of node 1"),
        ("C(8,3,1) " + EXAMPLE, 9, "a cell (|op~0|+...) is a whole architecture"),
        ("C(8,3,1) [N=1]" + EXAMPLE, 9, "cannot follow layers"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, phrase: str) -> None:
    with pytest.raises(ArchSyntaxError) as info:
        parse(text)
    assert info.value.position == position, str(info.value)
    assert phrase in str(info.value)
    assert f"at position {position}" in str(info.value)
    assert info.value.text == text


def test_syntax_errors_pickle_from_the_new_errors_module() -> None:
    with pytest.raises(ArchSyntaxError) as info:
        parse("|skip~0|")
    clone = pickle.loads(pickle.dumps(info.value))
    assert isinstance(clone, ArchError) and str(clone) == str(copy.copy(info.value))


# ---------------------------------------------------------------------------- typed form


def test_a_cell_needs_six_cell_ops() -> None:
    with pytest.raises(ArchError, match="6 edges"):
        Cell((C3,) * 5)
    with pytest.raises(ArchError, match="6 edges"):
        Cell(("nor_conv_3x3",) * 6)  # type: ignore[arg-type]


def test_an_architecture_has_layers_or_a_cell_not_both() -> None:
    layers = parse("C(8,3,1)").layers
    with pytest.raises(ArchError, match="layers or a cell, not both"):
        Architecture(layers, cell=EXAMPLE_CELL)


def test_blocks_of_the_default_skeleton() -> None:
    got = blocks(EXAMPLE_CELL)
    cell = CellBlock(EXAMPLE_CELL.ops)
    assert got == (
        Stem(16),
        *[cell] * 5,
        Reduction(32),
        *[cell] * 5,
        Reduction(64),
        *[cell] * 5,
        Head(),
    )


def test_blocks_of_one_stage_and_of_four() -> None:
    cell = CellBlock(EXAMPLE_CELL.ops)
    assert blocks(Cell(EXAMPLE_CELL.ops, Skeleton(8, 2, 1))) == (Stem(8), cell, cell, Head())
    four = blocks(Cell(EXAMPLE_CELL.ops, Skeleton(4, 1, 4)))
    assert [b.channels for b in four if isinstance(b, Reduction)] == [8, 16, 32]


# ---------------------------------------------------------------------------- wire form


@given(wire_cells, st.none() | st.integers(1, 1000))
def test_codec_round_trips_cells(cell: Cell, classes: int | None) -> None:
    arch = Architecture(cell=cell, classes=classes)
    msg = codec.arch_to_proto(arch)
    assert msg.HasField("cell") and not msg.layers
    assert codec.arch_from_proto(apb.Architecture.FromString(msg.SerializeToString())) == arch


def test_codec_names_the_ops_as_the_proto_enum() -> None:
    msg = codec.arch_to_proto(parse("[N=1]" + EXAMPLE))
    assert [apb.CellOp.Name(op) for op in msg.cell.ops] == [
        "CELL_OP_NOR_CONV_3X3",
        "CELL_OP_NOR_CONV_3X3",
        "CELL_OP_NOR_CONV_3X3",
        "CELL_OP_SKIP_CONNECT",
        "CELL_OP_NOR_CONV_1X1",
        "CELL_OP_NOR_CONV_3X3",
    ]
    assert (msg.cell.skeleton.channels, msg.cell.skeleton.cells_per_stage) == (16, 1)
    assert [apb.CellOp.Value("CELL_OP_" + op.name) for op in CELL_OPS] == [1, 2, 3, 4, 5]


def test_codec_zero_skeleton_fields_are_nas_bench_201s() -> None:
    ops = [apb.CELL_OP_NOR_CONV_3X3] * 6
    bare = apb.Architecture(cell=apb.Cell(ops=ops))
    assert codec.arch_from_proto(bare) == arch_of((C3,) * 6)
    some = apb.Architecture(cell=apb.Cell(ops=ops, skeleton=apb.Skeleton(cells_per_stage=1)))
    assert codec.arch_from_proto(some) == arch_of((C3,) * 6, Skeleton(16, 1, 3))


@pytest.mark.parametrize(
    ("msg", "phrase"),
    [
        (
            apb.Architecture(
                layers=[apb.Layer(gap=apb.GAP())],
                cell=apb.Cell(ops=[apb.CELL_OP_NONE] * 6),
            ),
            "layers or a cell, not both",
        ),
        (apb.Architecture(), "at least one layer, or a cell"),
        (apb.Architecture(cell=apb.Cell()), "cell.ops needs 6 operations; got 0"),
        (apb.Architecture(cell=apb.Cell(ops=[apb.CELL_OP_NONE] * 7)), "got 7"),
        (
            apb.Architecture(cell=apb.Cell(ops=[apb.CELL_OP_NONE] * 5 + [apb.CELL_OP_UNSPECIFIED])),
            "edge 2->3 has no operation (0); use one of CELL_OP_NONE, CELL_OP_SKIP_CONNECT",
        ),
        (
            apb.Architecture(cell=apb.Cell(ops=[apb.CellOp.ValueType(9)] * 6)),
            "edge 0->1 has no operation (9)",
        ),
        (
            apb.Architecture(cell=apb.Cell(ops=[apb.CELL_OP_NONE] * 6), classes=-1),
            "classes must be positive",
        ),
    ],
)
def test_codec_rejects_bad_cells(msg: apb.Architecture, phrase: str) -> None:
    with pytest.raises(ArchError) as info:
        codec.arch_from_proto(msg)
    assert phrase in str(info.value)


# ---------------------------------------------------------------------------- canonical, hash


def test_canonical_keeps_the_cells_own_ops_and_drops_sm() -> None:
    arch = parse("[N=1]" + EXAMPLE + " SM(10)")
    assert canonical(arch) == parse("[N=1]" + EXAMPLE)
    assert format_arch(canonical(arch)) == "[N=1]" + EXAMPLE


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # node 1 is the input (skip), so 0->2 and 1->2 read the same map: their ops commute
        ((SKIP, C3, C1, N, N, SKIP), (SKIP, C1, C3, N, N, SKIP)),
        # a conv into node 1 read through a skip is the conv on the direct edge 0->3
        ((C3, N, N, N, SKIP, N), (N, N, N, C3, N, N)),
        # a pool of a zero node is zero
        ((N, N, POOL, SKIP, N, N), (N, N, N, SKIP, N, N)),
    ],
)
def test_isomorphic_cells_hash_the_same_but_keep_their_text(
    a: tuple[CellOp, ...], b: tuple[CellOp, ...]
) -> None:
    assert arch_hash(arch_of(a)) == arch_hash(arch_of(b))
    assert format_arch(canonical(arch_of(a))) != format_arch(canonical(arch_of(b)))
    assert arch_hash(arch_of(a)) == arch_hash(Architecture(cell=Cell(a), classes=10))


def test_edges_that_cannot_reach_the_output_do_not_change_the_hash() -> None:
    # node 2 feeds the output through a none edge: its own inputs are dead
    base = (C3, POOL, C1, C3, C1, N)
    for dead in CELL_OPS:
        changed = (base[0], dead, base[2], base[3], base[4], base[5])
        assert arch_hash(arch_of(changed)) == arch_hash(arch_of(base))


def test_the_hash_tells_functions_and_skeletons_apart() -> None:
    assert arch_hash(arch_of((C3,) * 6)) != arch_hash(arch_of((C1,) * 6))
    assert arch_hash(arch_of((C3,) * 6)) != arch_hash(arch_of((C3,) * 6, Skeleton(16, 1, 3)))
    assert arch_hash(parse(EXAMPLE)) != arch_hash(parse("C(16,3,1)"))


def test_hash_is_16_hex_digits_and_stable() -> None:
    digest = arch_hash(parse(EXAMPLE))
    assert len(digest) == 16 and int(digest, 16) >= 0
    # the key of the example: changing it re-keys every stored cell search
    assert isomorphism_key(EXAMPLE_CELL) == (
        "(((0)@nor_conv_3x3)@nor_conv_3x3+(0)@nor_conv_3x3)@nor_conv_3x3"
        "+((0)@nor_conv_3x3)@nor_conv_1x1+0"
    )


@pytest.mark.parametrize(
    ("ops", "key"),
    [
        ((N,) * 6, "#+#+#"),
        ((SKIP,) * 6, "0+0+0+0"),  # a sum read through a skip is one term: 0, 0, 0+0
        ((POOL, N, N, N, N, N), "#+#+#"),
        ((N, C3, C1, SKIP, N, N), "#+#+0"),  # zero terms are counted: not the key "0"
        ((N, N, C1, N, N, C3), "#+#+(#+#)@nor_conv_3x3"),  # "#+#" is not exactly zero
        ((N, SKIP, N, N, N, C3), "#+#+(#+0)@nor_conv_3x3"),  # nor is x + 0 the same as x
    ],
)
def test_isomorphism_key_zeros_and_skips(ops: tuple[CellOp, ...], key: str) -> None:
    assert isomorphism_key(ops) == key
