"""Shape inference and validation: every op's output shape, merging, the classifier, errors."""

from __future__ import annotations

import pytest

from nasrl.core.arch import FC, ArchError, Architecture, Conv, Layer, Pool, parse
from nasrl.core.shapes import InputShape, Limits, Shape, analyze, merged, unconsumed

MNIST = InputShape(1, 28, 28, 10)
DIGITS = InputShape(1, 8, 8, 10)
CIFAR = InputShape(3, 32, 32, 10)


def shapes_of(text: str, image: InputShape = MNIST) -> list[tuple[int, int, int]]:
    a = analyze(parse(text), image)
    return [(s.channels, s.height, s.width) for s in a.shapes]


def square(size: int, channels: int = 1) -> InputShape:
    return InputShape(channels, size, size, 10)


# ---------------------------------------------------------------------------- every op


@pytest.mark.parametrize(
    ("size", "op", "out"),
    [
        (28, "C(8,3,1)", (8, 28, 28)),
        (28, "C(8,5,1)", (8, 28, 28)),
        (28, "C(8,3,2)", (8, 14, 14)),
        (27, "C(8,3,2)", (8, 14, 14)),  # odd size: ceil(27/2)
        (7, "C(8,3,3)", (8, 3, 3)),  # ceil(7/3)
        (7, "C(8,1,3)", (8, 3, 3)),
        (8, "C(8,3,3)", (8, 3, 3)),
        (28, "C(8,3,3)", (8, 10, 10)),
        (28, "C(8,3x5,1x2)", (8, 28, 14)),
        (28, "C(8,1x7,3x1)", (8, 10, 28)),
        (1, "C(8,15,1)", (8, 1, 1)),  # kernel larger than the map
        (5, "C(8,3,8)", (8, 1, 1)),  # stride larger than the map
        (28, "P(2,2)", (1, 14, 14)),
        (8, "P(3,2)", (1, 3, 3)),
        (28, "P(5,3)", (1, 8, 8)),
        (28, "P(3,1)", (1, 26, 26)),
        (7, "P(2,2)", (1, 3, 3)),
        (7, "P(7,1)", (1, 1, 1)),  # kernel equal to the map
        (28, "FC(32)", (32, 1, 1)),
        (28, "GAP", (1, 1, 1)),
    ],
)
def test_output_shape_of_each_op(size: int, op: str, out: tuple[int, int, int]) -> None:
    assert shapes_of(op, square(size))[1] == out


def test_gap_keeps_channels_and_fc_flattens_everything() -> None:
    assert shapes_of("C(12,3,1) GAP FC(7) GAP") == [
        (1, 28, 28),
        (12, 28, 28),
        (12, 1, 1),
        (7, 1, 1),
        (7, 1, 1),
    ]


def test_design_example_on_cifar() -> None:
    a = analyze(parse("C(64,3,1) P(2,2) C(128,3x5,1x2)@[0,2] FC(256) GAP SM(10)"), CIFAR)
    assert [str(s) for s in a.shapes] == [
        "3x32x32",
        "64x32x32",
        "64x16x16",
        "128x32x16",  # reads the image (3x32x32) and layer 2 (64x16x16 padded to 32x32)
        "256x1x1",
        "256x1x1",
    ]
    assert a.inputs == ((0,), (1,), (0, 2), (3,), (4,))


# ---------------------------------------------------------------------------- params and flops


def test_conv_params_and_flops() -> None:
    a = analyze(parse("C(8,3,1)"), MNIST)
    conv_params = 3 * 3 * 1 * 8 + 2 * 8  # no bias; batch-norm scale and shift
    classifier = 8 * 28 * 28 * 10 + 10
    assert a.params == conv_params + classifier
    assert a.flops == 2 * (3 * 3 * 1 * 8) * 28 * 28 + 2 * 8 * 28 * 28 * 10
    assert a.classifier_features == 8 * 28 * 28


def test_strided_rectangular_conv_params_and_flops() -> None:
    a = analyze(parse("C(4,3x5,2x3)"), CIFAR)
    assert a.shapes[1] == Shape(4, 16, 11)
    macs = 3 * 5 * 3 * 4
    assert a.params == macs + 8 + 4 * 16 * 11 * 10 + 10
    assert a.flops == 2 * macs * 16 * 11 + 2 * 4 * 16 * 11 * 10


def test_pool_and_gap_have_no_params_or_flops() -> None:
    a = analyze(parse("P(2,2) GAP"), MNIST)
    assert a.params == 1 * 10 + 10
    assert a.flops == 2 * 1 * 10


def test_fc_params_and_flops() -> None:
    a = analyze(parse("P(2,2) FC(32)"), MNIST)
    assert a.params == 14 * 14 * 32 + 32 + 32 * 10 + 10
    assert a.flops == 2 * 14 * 14 * 32 + 2 * 32 * 10


# ---------------------------------------------------------------------------- merging


def test_concatenation_pads_to_the_largest_map() -> None:
    a = analyze(parse("C(8,3,2) C(4,3,1)@[0,1]"), MNIST)
    # layer 2 reads the image (1x28x28) and layer 1 (8x14x14): 9 channels at 28x28
    assert a.shapes[2] == Shape(4, 28, 28)
    assert a.params == (3 * 3 * 9 * 4 + 8) + (3 * 3 * 1 * 8 + 16) + 4 * 28 * 28 * 10 + 10


def test_concatenation_pads_height_and_width_independently() -> None:
    a = analyze(parse("C(4,1,1x2) C(4,1,2x1)@[0] C(2,1,1)@[1,2]"), MNIST)
    assert a.shapes[1] == Shape(4, 28, 14)
    assert a.shapes[2] == Shape(4, 14, 28)
    assert merged(list(a.shapes), (1, 2)) == Shape(8, 28, 28)
    assert a.params == (4 + 8) + (4 + 8) + (8 * 2 + 4) + 2 * 28 * 28 * 10 + 10


def test_fc_output_concatenated_with_a_map_is_padded() -> None:
    a = analyze(parse("C(4,3,1) FC(6)@[0] C(2,1,1)@[1,2]"), DIGITS)
    assert a.shapes[3] == Shape(2, 8, 8)
    assert a.params == (9 * 4 + 8) + (64 * 6 + 6) + (10 * 2 + 4) + 2 * 64 * 10 + 10


# ---------------------------------------------------------------------------- classifier


def test_unconsumed_outputs_feed_the_classifier() -> None:
    arch = parse("C(16,3,2) C(16,3,1)@[0] C(8,5,2)@[0,1,2] FC(32)@[1] GAP@[3]")
    a = analyze(arch, MNIST)
    assert unconsumed(arch) == (4, 5)
    assert a.classifier_inputs == (4, 5)
    assert a.classifier_features == 32 + 8
    assert a.shapes[3] == Shape(8, 14, 14)


def test_unconsumed_maps_of_different_size_are_padded_for_the_classifier() -> None:
    a = analyze(parse("C(8,3,1) C(4,3,2)@[0]"), MNIST)
    assert a.classifier_inputs == (1, 2)
    assert a.classifier_features == (8 + 4) * 28 * 28
    assert a.params == (9 * 8 + 16) + (9 * 4 + 8) + 12 * 28 * 28 * 10 + 10


def test_only_the_last_layer_feeds_a_chain_classifier() -> None:
    a = analyze(parse("C(8,3,1) P(2,2) C(4,3,1) GAP"), MNIST)
    assert a.classifier_inputs == (4,)
    assert a.classifier_features == 4


def test_classes_come_from_the_dataset_and_may_match_sm() -> None:
    assert analyze(parse("GAP"), InputShape(1, 8, 8, 7)).classes == 7
    assert analyze(parse("GAP SM(7)"), InputShape(1, 8, 8, 7)).classes == 7


# ---------------------------------------------------------------------------- errors


def expect_error(
    text: str | Architecture, *phrases: str, image: InputShape = MNIST, limits: Limits | None = None
) -> str:
    arch = parse(text) if isinstance(text, str) else text
    with pytest.raises(ArchError) as info:
        analyze(arch, image, limits)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_pool_below_one_pixel_names_the_layer() -> None:
    expect_error(
        "C(8,3,1) P(2,2) P(2,2) P(2,2) P(2,2)", "layer 5 (P(2,2))", "1x1 map", image=DIGITS
    )


def test_pool_larger_than_map() -> None:
    expect_error("P(9,1)", "layer 1 (P(9,1))", "8x8", image=DIGITS)
    expect_error("C(8,3,1x4) P(3,1)", "layer 2", "8x2", image=DIGITS)


def test_strided_convs_never_shrink_below_one() -> None:
    a = analyze(parse("C(8,3,8) C(8,3,8) C(8,3,8)"), DIGITS)
    assert a.shapes[-1] == Shape(8, 1, 1)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("C(8,3,1) C(8,3,1)@[3]", "layer 2 (C(8,3,1)@[3]): input 3 does not exist"),
        ("C(8,3,1) C(8,3,1)@[2]", "layer 2 (C(8,3,1)@[2]): input 2 does not exist"),  # itself
        ("C(8,3,1)@[1]", "layer 1 (C(8,3,1)@[1]): input 1 does not exist"),
        ("C(8,3,1) C(8,3,1)@[-1]", "layer 2 (C(8,3,1)@[-1]): input -1 does not exist"),
        ("C(8,3,1) C(8,3,1)@[0,0]", "layer 2 (C(8,3,1)@[0,0]): an input is listed twice"),
        ("C(8,3,1) C(8,3,1)@[1,0,1]", "layer 2"),
    ],
)
def test_bad_inputs(text: str, phrase: str) -> None:
    expect_error(text, phrase)


def test_fan_in_limit() -> None:
    expect_error(
        "C(2,1,1) C(2,1,1) C(2,1,1)@[0,1,2]",
        "layer 3",
        "3 inputs exceed",
        limits=Limits(max_fan_in=2),
    )
    assert analyze(parse("C(2,1,1) C(2,1,1) C(2,1,1)@[0,1,2]"), MNIST, Limits(max_fan_in=3))


@pytest.mark.parametrize(
    ("op", "phrase"),
    [
        (Conv(-8, 3, 3), "filters"),
        (Conv(0, 3, 3), "filters"),
        (Conv(8, 0, 3), "kernel height"),
        (Conv(8, 3, -1), "kernel width"),
        (Conv(8, 3, 3, 0, 1), "stride height"),
        (Conv(8, 3, 3, 1, -2), "stride width"),
        (Conv(8, 16, 3), "kernel height"),
        (Conv(8, 3, 3, 9, 1), "stride height"),
        (Pool(0, 1), "pool kernel"),
        (Pool(-2, 2), "pool kernel"),
        (Pool(2, 0), "pool stride"),
        (FC(0), "units"),
        (FC(-5), "units"),
        (FC(16385), "units"),
    ],
)
def test_sizes_out_of_range(op: object, phrase: str) -> None:
    arch = Architecture((Layer(Conv(4, 1, 1)), Layer(op)))  # type: ignore[arg-type]
    expect_error(arch, "layer 2", phrase)


def test_a_billion_filters_is_rejected_before_allocation() -> None:
    expect_error("C(1000000000,3,1)", "layer 1", "filters", "2048", "1000000000")
    expect_error("C(8,3,1) FC(1000000000)", "layer 2", "units")


def test_too_many_layers() -> None:
    expect_error(" ".join(["C(1,1,1)"] * 65), "65 layers", "64")
    expect_error("C(1,1,1) C(1,1,1) C(1,1,1)", "3 layers", limits=Limits(max_layers=2))
    assert analyze(parse(" ".join(["C(1,1,1)"] * 64)), MNIST)


def test_param_limit_names_the_layer_that_crosses_it() -> None:
    # layer 1: 3*3*1*8 + 16 = 88 params; layer 2: 3*3*8*8 + 16 = 592 more
    expect_error(
        "C(8,3,1) C(8,3,1)",
        "layer 2",
        "680 parameters",
        "limit of 100",
        limits=Limits(max_params=100),
    )


def test_param_limit_on_the_classifier() -> None:
    expect_error("C(8,3,1)", "classifier", "parameters", limits=Limits(max_params=1000))


def test_flop_limit_names_the_layer_that_crosses_it() -> None:
    # layer 1: 2*3*3*1*8*28*28 = 112,896 FLOPs
    expect_error("C(8,3,1) C(8,3,1)", "layer 1", "112,896 FLOPs", limits=Limits(max_flops=100_000))
    expect_error("C(8,3,1) C(8,3,1)", "layer 2", "FLOPs", limits=Limits(max_flops=200_000))


def test_limits_are_inclusive() -> None:
    a = analyze(parse("C(8,3,1)"), MNIST)
    assert analyze(parse("C(8,3,1)"), MNIST, Limits(max_params=a.params, max_flops=a.flops))
    expect_error("C(8,3,1)", "classifier", limits=Limits(max_params=a.params - 1))
    expect_error("C(8,3,1)", "classifier", limits=Limits(max_flops=a.flops - 1))


def test_sm_must_match_the_dataset() -> None:
    expect_error("C(8,3,1) GAP SM(100)", "SM(100)", "10 classes")


def test_empty_architecture() -> None:
    expect_error(Architecture(()), "at least one layer")


def test_every_analyzed_graph_is_consistent() -> None:
    a = analyze(parse("C(16,3,2) C(16,3,1)@[0] C(8,5,2)@[0,1,2] FC(32)@[1] GAP@[3]"), MNIST)
    assert len(a.shapes) == 6 and len(a.inputs) == 5
    assert all(max(ins) < i for i, ins in enumerate(a.inputs, start=1))
    assert a.classes == 10
