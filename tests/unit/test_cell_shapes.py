"""Shape analysis of cell networks before allocation: shapes, parameters and FLOPs of every
op and block, the limits, and the maps a reduction cannot halve."""

from __future__ import annotations

import pytest

from nasrl.core.arch import ArchError, Architecture, parse
from nasrl.core.cell import CELL_OPS, Cell, CellOp, Skeleton
from nasrl.core.shapes import InputShape, Limits, Shape, analyze

CIFAR = InputShape(3, 32, 32, 10)
DIGITS = InputShape(1, 8, 8, 10)
MNIST = InputShape(1, 28, 28, 10)

N = CellOp.NONE


def net(
    ops: tuple[CellOp, ...], channels: int = 16, cells: int = 5, stages: int = 3
) -> Architecture:
    return Architecture(cell=Cell(ops, Skeleton(channels, cells, stages)))


def only(op: CellOp) -> tuple[CellOp, ...]:
    """A cell with ``op`` on the edge 0->3 and none elsewhere."""
    return (N, N, N, op, N, N)


def test_the_default_skeleton_on_cifar_is_nas_bench_201s() -> None:
    a = analyze(
        parse(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        ),
        CIFAR,
    )
    # NAS-Bench-201 reports 0.073306 to 1.531546 M parameters and 7.78304 to 220.11968 M
    # multiply-adds on CIFAR-10: this is the largest cell; FLOPs here count 2 per multiply-add
    assert a.params == 1_531_546
    assert a.flops == 2 * 220_119_680
    smallest = analyze(net((N,) * 6), CIFAR)
    assert smallest.params == 73_306 and smallest.flops == 2 * 7_783_040


def test_shapes_are_a_chain_of_blocks() -> None:
    a = analyze(net((N,) * 6), CIFAR)
    got = [str(s) for s in a.shapes]
    assert got == (
        ["3x32x32", "16x32x32"] + ["16x32x32"] * 5 + ["32x16x16"] * 6 + ["64x8x8"] * 6 + ["64x1x1"]
    )
    assert a.inputs == tuple((i,) for i in range(len(a.shapes) - 1))
    assert a.classifier_inputs == (len(a.shapes) - 1,)
    assert a.classifier_features == 64 and a.classes == 10


def test_small_inputs_halve_to_two_by_two() -> None:
    a = analyze(net((N,) * 6, cells=1), DIGITS)
    assert [str(s) for s in a.shapes] == [
        "1x8x8",
        "16x8x8",
        "16x8x8",
        "32x4x4",
        "32x4x4",
        "64x2x2",
        "64x2x2",
        "64x1x1",
    ]


def skeleton_cost(image: InputShape, c: int = 16) -> tuple[int, int]:
    """Params and FLOPs of one stage of one cell of nothing: stem, head and classifier."""
    stem = 9 * image.channels * c + 2 * c
    stem_flops = 2 * 9 * image.channels * c * image.height * image.width
    return stem + 2 * c + c * image.classes + image.classes, stem_flops + 2 * c * image.classes


@pytest.mark.parametrize(
    ("op", "params", "flops"),
    [
        (CellOp.NONE, 0, 0),
        (CellOp.SKIP_CONNECT, 0, 0),
        (CellOp.AVG_POOL_3X3, 0, 0),  # pooling is free, as torch's flop counter counts
        (CellOp.NOR_CONV_1X1, 8 * 8 + 2 * 8, 2 * 8 * 8 * 6 * 5),
        (CellOp.NOR_CONV_3X3, 9 * 8 * 8 + 2 * 8, 2 * 9 * 8 * 8 * 6 * 5),
    ],
)
def test_params_and_flops_of_every_op(op: CellOp, params: int, flops: int) -> None:
    image = InputShape(2, 6, 5, 3)
    base_params, base_flops = skeleton_cost(image, 8)
    a = analyze(net(only(op), 8, 1, 1), image)
    assert [str(s) for s in a.shapes] == ["2x6x5", "8x6x5", "8x6x5", "8x1x1"]
    assert a.params == base_params + params
    assert a.flops == base_flops + flops


@pytest.mark.parametrize("op", CELL_OPS)
def test_every_edge_counts_even_one_that_cannot_reach_the_output(op: CellOp) -> None:
    # 0->1 carries op; node 1 is read by nobody who reaches node 3 (1->2 and 1->3 are none,
    # node 2 feeds node 3 through none): NAS-Bench-201 builds it anyway
    dead = analyze(net((op, N, N, N, N, N), 8, 1, 1), DIGITS)
    direct = analyze(net(only(op), 8, 1, 1), DIGITS)
    assert (dead.params, dead.flops) == (direct.params, direct.flops)


def test_reduction_params_and_flops() -> None:
    one = analyze(net((N,) * 6, 8, 1, 1), DIGITS)
    two = analyze(net((N,) * 6, 8, 1, 2), DIGITS)
    # conv3x3/2 8->16 + BN, conv3x3 16->16 + BN, 1x1 8->16 shortcut, on a 4x4 map; then a
    # cell of none, and the head and classifier see 16 channels instead of 8
    reduction = 9 * 8 * 16 + 32 + 9 * 16 * 16 + 32 + 8 * 16
    head = 2 * 8 + 8 * 10  # the extra channels of the head's BN and the classifier's weights
    assert two.params - one.params == reduction + head
    macs = (9 * 8 * 16 + 9 * 16 * 16 + 8 * 16) * 4 * 4
    assert two.flops - one.flops == 2 * macs + 2 * 8 * 10


def test_an_odd_map_cannot_be_halved() -> None:
    with pytest.raises(ArchError) as info:
        analyze(net((N,) * 6, stages=4), MNIST)  # 28 -> 14 -> 7 -> ?
    message = str(info.value)
    assert "the reduction before stage 4 receives a 7x7 map" in message
    assert "fewer stages" in message
    with pytest.raises(ArchError, match="before stage 4 receives a 1x1 map"):
        analyze(net((N,) * 6, cells=1, stages=4), InputShape(1, 4, 4, 10))
    with pytest.raises(ArchError, match="before stage 2 receives a 8x5 map"):
        analyze(net((N,) * 6, cells=1), InputShape(1, 8, 5, 10))


@pytest.mark.parametrize(
    ("skeleton", "phrase"),
    [
        ((0, 5, 3), "stem channels (C) must be between 1 and 2048, got 0"),
        ((16, 0, 3), "cells per stage (N) must be between 1 and 64, got 0"),
        ((16, 5, 0), "stages must be between 1 and 64, got 0"),
        ((-1, 5, 3), "stem channels (C)"),
        ((10**9, 5, 3), "stem channels (C)"),
        ((16, 5, 10**9), "stages must be between"),
        ((512, 1, 4), "the last of 4 stages has 4096 channels"),
        ((16, 30, 3), "3 stages of 30 cells and their reductions make 92 blocks"),
    ],
)
def test_skeleton_limits(skeleton: tuple[int, int, int], phrase: str) -> None:
    with pytest.raises(ArchError) as info:
        analyze(net((N,) * 6, *skeleton), MNIST)
    assert phrase in str(info.value)


def test_param_and_flop_limits_name_the_block_that_crosses_them() -> None:
    conv = (CellOp.NOR_CONV_3X3,) * 6
    with pytest.raises(ArchError, match="cell 3 of stage 2: the network has .* parameters"):
        analyze(net(conv), CIFAR, Limits(max_params=200_000))
    with pytest.raises(ArchError, match="the stem: the network needs 884,736 FLOPs"):
        analyze(net(conv), CIFAR, Limits(max_flops=100_000))
    with pytest.raises(ArchError, match="classifier"):
        analyze(net((N,) * 6), CIFAR, Limits(max_params=73_305))
    assert analyze(net((N,) * 6), CIFAR, Limits(max_params=73_306)).params == 73_306


def test_sm_must_match_the_dataset() -> None:
    text = "[N=1]|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert analyze(parse(text + " SM(10)"), DIGITS).classes == 10
    with pytest.raises(ArchError, match=r"SM\(7\) does not match the dataset"):
        analyze(parse(text + " SM(7)"), DIGITS)


def test_the_head_pools_to_the_classifier() -> None:
    a = analyze(net((N,) * 6, 4, 1, 2), InputShape(3, 10, 6, 5))
    assert a.shapes[-2] == Shape(8, 5, 3) and a.shapes[-1] == Shape(8, 1, 1)
    assert a.classifier_features == 8
