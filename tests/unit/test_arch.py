"""The architecture text form: parse/format round trip, error positions, canonical form, hash."""

from __future__ import annotations

import copy
import hashlib
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasrl.core.arch import (
    FC,
    GAP,
    ArchError,
    Architecture,
    ArchSyntaxError,
    Conv,
    Layer,
    Pool,
    arch_hash,
    canonical,
    consumers,
    format_arch,
    parse,
    resolved_inputs,
)

DESIGN = "C(64,3,1) P(2,2) C(128,3x5,1x2)@[0,2] FC(256) GAP SM(10)"
DESIGN_ARCH = Architecture(
    (
        Layer(Conv(64, 3, 3, 1, 1)),
        Layer(Pool(2, 2)),
        Layer(Conv(128, 3, 5, 1, 2), (0, 2)),
        Layer(FC(256)),
        Layer(GAP()),
    ),
    classes=10,
)


# ---------------------------------------------------------------------------- strategies

sizes = st.integers(min_value=0, max_value=64)  # 0 is invalid to build, but parses
ops = st.one_of(
    st.builds(Conv, sizes, sizes, sizes, sizes, sizes),
    st.builds(Pool, sizes, sizes),
    st.builds(FC, st.integers(min_value=0, max_value=4096)),
    st.just(GAP()),
)


@st.composite
def architectures(draw: st.DrawFn, max_layers: int = 10) -> Architecture:
    """Random architectures, including invalid skip lists (negative, forward, duplicates)."""
    n = draw(st.integers(min_value=1, max_value=max_layers))
    layers = []
    for i in range(1, n + 1):
        op = draw(ops)
        valid = st.lists(st.integers(0, i - 1), min_size=1, max_size=4, unique=True)
        anything = st.lists(st.integers(-3, n + 3), min_size=1, max_size=5)
        inputs = draw(st.one_of(st.just([]), valid, anything))
        layers.append(Layer(op, tuple(inputs)))
    classes = draw(st.none() | st.integers(min_value=1, max_value=1000))
    return Architecture(tuple(layers), classes)


# ---------------------------------------------------------------------------- examples


def test_parse_design_example() -> None:
    assert parse(DESIGN) == DESIGN_ARCH


def test_format_design_example_round_trips_exactly() -> None:
    assert format_arch(DESIGN_ARCH) == DESIGN
    assert format_arch(parse(DESIGN)) == DESIGN
    assert str(parse(DESIGN)) == DESIGN


@pytest.mark.parametrize(
    "text",
    [
        "C(8,3,1)",
        "C(8,1x7,2x1)",
        "C(8,3,2x3)",
        "P(3,1)",
        "FC(10)",
        "GAP",
        "C(8,3,1)@[0] GAP@[0,1] SM(2)",
        "C(1,1,1) C(2,2,2)@[-1,5,5]",  # invalid skip lists still round-trip
    ],
)
def test_formatted_strings_round_trip_exactly(text: str) -> None:
    assert format_arch(parse(text)) == text


def test_square_and_pair_forms_are_the_same_conv() -> None:
    assert parse("C(8,3x3,2x2)") == parse("C(8,3,2)")
    assert format_arch(parse("C(8,3x3,2x2)")) == "C(8,3,2)"


def test_whitespace_is_free_between_tokens_and_inside_parentheses() -> None:
    messy = "  C( 64 , 3 , 1 )\tP(2,2)\n C(128, 3 x 5 ,1x2)@[ 0 , 2 ]  FC(256) GAP   SM(10)  "
    assert parse(messy) == DESIGN_ARCH


def test_no_sm_means_classes_from_dataset() -> None:
    assert parse("C(8,3,1) GAP").classes is None


def test_resolved_inputs_and_consumers() -> None:
    arch = parse("C(8,3,1) C(8,3,1)@[0] C(4,1,1)@[1,2] FC(4)@[1]")
    assert resolved_inputs(arch) == [(0,), (0,), (1, 2), (1,)]
    # node 0 (image) read by layers 1 and 2; node 1 by 3 and 4; node 2 by 3; 3 and 4 by nobody
    assert consumers(arch) == [2, 2, 1, 0, 0]


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "phrase"),
    [
        ("C(32,3,1) P(2,2", 10, "malformed P"),
        ("C(1,1,1) Q", 9, "expected a layer"),
        ("FC(2)x", 5, "unexpected 'x'"),
        ("C(8,3,1) SM(10) C(8,3,1)", 16, "last"),
        ("SM(10) GAP", 7, "last"),
        ("", 0, "at least one layer"),
        ("   ", 3, "at least one layer"),
        ("SM(10)", 6, "at least one layer"),
        ("C(8,3,1)@[]", 8, "empty skip list"),
        ("C(8,3,1) GAP@[ ]", 12, "empty skip list"),
        ("C(8,3,1)@[1,", 8, "skip list"),
        ("C(8,3,1)@[a]", 8, "skip list"),
        ("C(8,3,1) SM(10)@[0]", 15, "no skip list"),
        ("C(8,3x,1)", 0, "malformed C"),
        ("C(8,3,1) FC()", 9, "malformed FC"),
        ("C(8,3,1) C(8,3,1)C(8,3,1)", 17, "unexpected 'C'"),
        ("GAPx", 0, "expected a layer"),
        ("C(8,3,1) SM(x)", 9, "malformed SM"),
        ("C(-8,3,1)", 0, "malformed C"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, phrase: str) -> None:
    with pytest.raises(ArchSyntaxError) as info:
        parse(text)
    assert info.value.position == position
    assert phrase in str(info.value)
    assert f"at position {position}" in str(info.value)
    assert info.value.text == text


def test_syntax_error_is_an_arch_error_with_a_caret() -> None:
    with pytest.raises(ArchError, match=r"C\(32,3,1\) -->P\(2,2"):
        parse("C(32,3,1) P(2,2")


def test_syntax_error_survives_pickling_and_copying() -> None:
    """Errors cross process boundaries (worker pools, DataLoader workers) by pickling; an
    exception whose __init__ takes extra arguments must still rebuild from its args."""
    with pytest.raises(ArchSyntaxError) as info:
        parse("C(1,1,1) Q")
    for clone in (pickle.loads(pickle.dumps(info.value)), copy.copy(info.value)):
        assert isinstance(clone, ArchSyntaxError)
        assert clone.position == 9
        assert clone.text == "C(1,1,1) Q"
        assert str(clone) == str(info.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ArchError, match="must be a string"):
        parse(b"C(8,3,1)")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- properties


@given(architectures())
def test_parse_inverts_format(arch: Architecture) -> None:
    text = format_arch(arch)
    assert parse(text) == arch
    assert format_arch(parse(text)) == text


@given(architectures(), st.data())
def test_junk_token_error_position_is_where_it_was_inserted(
    arch: Architecture, data: st.DataObject
) -> None:
    tokens = format_arch(arch).split(" ")
    k = data.draw(st.integers(0, len(tokens)), label="insert at")
    before = " ".join(tokens[:k])
    text = " ".join(tokens[:k] + ["Q(1)"] + tokens[k:])
    with pytest.raises(ArchSyntaxError) as info:
        parse(text)
    assert info.value.position == len(before) + (1 if k else 0)


@given(architectures())
def test_canonical_is_idempotent_and_keeps_the_layers(arch: Architecture) -> None:
    c = canonical(arch)
    assert canonical(c) == c
    assert c.classes is None
    assert [layer.op for layer in c.layers] == [layer.op for layer in arch.layers]
    assert arch_hash(c) == arch_hash(arch)
    assert arch_hash(parse(format_arch(arch))) == arch_hash(arch)


@given(architectures(), st.randoms(use_true_random=False))
def test_hash_ignores_skip_list_order_and_sm(arch: Architecture, rng: random.Random) -> None:
    shuffled = []
    for layer in arch.layers:
        inputs = list(layer.inputs)
        rng.shuffle(inputs)
        shuffled.append(Layer(layer.op, tuple(inputs)))
    other = Architecture(tuple(shuffled), None if arch.classes else 10)
    assert arch_hash(other) == arch_hash(arch)


@given(architectures(max_layers=4), architectures(max_layers=4))
def test_different_networks_hash_differently(a: Architecture, b: Architecture) -> None:
    assert (arch_hash(a) == arch_hash(b)) == (canonical(a) == canonical(b))


def test_hash_drops_a_skip_list_naming_only_the_previous_layer() -> None:
    assert arch_hash(parse("C(8,3,1) C(8,3,1)@[1]")) == arch_hash(parse("C(8,3,1) C(8,3,1)"))
    assert arch_hash(parse("C(8,3,1)@[0] GAP")) == arch_hash(parse("C(8,3,1) GAP"))
    assert format_arch(canonical(parse("C(8,3,1) C(8,3,1)@[1]"))) == "C(8,3,1) C(8,3,1)"


def test_hash_sorts_skip_lists() -> None:
    a = parse("C(8,3,1) C(8,3,1) C(8,3,1)@[2,0]")
    b = parse("C(8,3,1) C(8,3,1) C(8,3,1)@[0,2]")
    assert a != b
    assert arch_hash(a) == arch_hash(b)


def test_hash_ignores_sm_suffix() -> None:
    assert arch_hash(parse("C(8,3,1) GAP SM(10)")) == arch_hash(parse("C(8,3,1) GAP"))
    assert arch_hash(parse("C(8,3,1) GAP SM(10)")) == arch_hash(parse("C(8,3,1) GAP SM(100)"))


@pytest.mark.parametrize(
    "other",
    [
        "C(8,3,1) C(8,3,1)@[0]",  # a real skip from the image, not the default
        "C(8,3,1) C(8,3,1)@[0,1]",
        "C(8,3,1) C(16,3,1)",
        "C(8,3,1) C(8,3x1,1)",
        "C(8,3,1) C(8,3,2)",
        "C(8,3,1) P(3,1)",
        "C(8,3,1)",
        "C(8,3,1) C(8,3,1) GAP",
    ],
)
def test_different_networks_have_different_hashes(other: str) -> None:
    assert arch_hash(parse(other)) != arch_hash(parse("C(8,3,1) C(8,3,1)"))


def test_hash_is_16_hex_digits_and_stable() -> None:
    h = arch_hash(parse(DESIGN))
    assert len(h) == 16
    assert int(h, 16) >= 0
    # A literal: if this changes, every stored dedup key in every search database is lost.
    assert h == "a03c02f9aae00864"
    expected = hashlib.sha256(b"C(64,3,1) P(2,2) C(128,3x5,1x2)@[0,2] FC(256) GAP").hexdigest()
    assert h == expected[:16]


@settings(max_examples=50)
@given(architectures())
def test_hash_format(arch: Architecture) -> None:
    h = arch_hash(arch)
    assert len(h) == 16 and set(h) <= set("0123456789abcdef")
