"""The PyTorch builder of cell networks: NAS-Bench-201's modules, output shapes for every op
and block, parameters and FLOPs equal to the shape analysis, and the training-free scores."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasrl.core import cell_modules
from nasrl.core.arch import ArchError, Architecture, parse
from nasrl.core.builder import ChildNet, build, count_params
from nasrl.core.cell import CELL_OPS, Cell, CellOp, Skeleton
from nasrl.core.scoring import score
from nasrl.core.shapes import InputShape, analyze

DIGITS = InputShape(1, 8, 8, 10)
CIFAR = InputShape(3, 16, 12, 7)  # small, rectangular, 7 classes

N, SKIP = CellOp.NONE, CellOp.SKIP_CONNECT
C1, C3, POOL = CellOp.NOR_CONV_1X1, CellOp.NOR_CONV_3X3, CellOp.AVG_POOL_3X3
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"

CELLS = {
    "example": (C3, C3, C3, SKIP, C1, C3),
    "all none": (N,) * 6,
    "all skip": (SKIP,) * 6,
    "all pool": (POOL,) * 6,
    "all conv1x1": (C1,) * 6,
    "mixed with dead edges": (C3, POOL, C1, SKIP, N, N),
    **{f"only {op.value} on 0->3": (N, N, N, op, N, N) for op in CELL_OPS},
}

pytestmark = pytest.mark.usefixtures("one_thread")


def net(
    ops: tuple[CellOp, ...], channels: int = 4, cells: int = 1, stages: int = 3
) -> Architecture:
    return Architecture(cell=Cell(ops, Skeleton(channels, cells, stages)))


def images(image: InputShape, n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, image.channels, image.height, image.width, generator=g)


def block_shapes(model: ChildNet, x: torch.Tensor) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = [tuple(x.shape[1:])]
    hooks = [
        b.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
        for b in model.blocks
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def flops_of(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


@pytest.mark.parametrize("image", [DIGITS, CIFAR], ids=["digits", "cifar"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_built_shapes_params_and_flops_match_analysis(name: str, image: InputShape) -> None:
    arch = net(CELLS[name], channels=4, cells=2, stages=3 if image is DIGITS else 2)
    a = analyze(arch, image)
    model = build(arch, image).eval()
    x = images(image, 1)
    with torch.no_grad():
        assert block_shapes(model, x) == [(s.channels, s.height, s.width) for s in a.shapes]
        assert model(x).shape == (1, image.classes)
    assert count_params(model) == a.params
    assert flops_of(model, x) == a.flops


def test_the_default_network_on_cifar_matches_its_analysis() -> None:
    image = InputShape(3, 32, 32, 10)
    arch = parse(EXAMPLE)
    model = build(arch, image).eval()
    a = analyze(arch, image)
    assert count_params(model) == a.params == 1_073_466
    assert flops_of(model, images(image, 1)) == a.flops
    assert len(model.blocks) == 1 + 15 + 2 + 1  # stem, 3 x 5 cells, 2 reductions, head


def test_nor_conv_is_relu_conv_batchnorm_without_bias() -> None:
    block = cell_modules.ReLUConvBN(4, 6, 3, stride=2)
    relu, conv, bn = block
    assert isinstance(relu, nn.ReLU) and not relu.inplace  # other edges read the same input
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (2, 2), (1, 1))
    assert isinstance(bn, nn.BatchNorm2d) and bn.affine
    assert cell_modules.ReLUConvBN(4, 4, 1)[1].padding == (0, 0)


def test_each_op_is_its_module() -> None:
    cell = cell_modules.CellModule(tuple(op.value for op in CELL_OPS) + ("none",), 4)
    none, skip, conv1, conv3, pool, _ = cell.edges
    assert isinstance(none, cell_modules.Zero) and isinstance(skip, nn.Identity)
    assert isinstance(conv1, cell_modules.ReLUConvBN) and conv1[1].kernel_size == (1, 1)
    assert isinstance(conv3, cell_modules.ReLUConvBN) and conv3[1].kernel_size == (3, 3)
    assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (
        3,
        1,
        1,
    )
    assert not pool.count_include_pad  # as NAS-Bench-201's POOLING
    with pytest.raises(ValueError, match="unknown cell operation 'max_pool'"):
        cell_modules.CellModule(("max_pool",) * 6, 4)


def test_a_node_sums_its_edges() -> None:
    x = torch.randn(2, 3, 5, 5)
    # node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    assert torch.equal(cell_modules.CellModule(("skip_connect",) * 6, 3)(x), 4 * x)
    # node3 = node2 only, node2 = x: skips on 0->2 and 2->3, none elsewhere
    ops = ("none", "skip_connect", "none", "none", "none", "skip_connect")
    assert torch.equal(cell_modules.CellModule(ops, 3)(x), x)
    zero = cell_modules.CellModule(("none",) * 6, 3)(x)
    assert zero.shape == x.shape and not zero.any()
    pool = cell_modules.CellModule(("none",) * 3 + ("avg_pool_3x3", "none", "none"), 3)
    corner = x[:, :, :2, :2].mean(dim=(2, 3))  # 3x3 window at the corner: 4 pixels, no padding
    torch.testing.assert_close(pool(x)[:, :, 0, 0], corner)


def test_reduction_halves_the_map_with_a_residual() -> None:
    block = cell_modules.Reduction(4, 8)
    x = torch.randn(2, 4, 6, 10)
    assert block(x).shape == (2, 8, 3, 5)
    with torch.no_grad():
        expected = block.downsample(x) + block.conv_b(block.conv_a(x))
    torch.testing.assert_close(block(x), expected)
    pool, conv = block.downsample
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.bias is None
    assert block.conv_a[1].stride == (2, 2) and block.conv_b[1].stride == (1, 1)


def test_stem_and_head() -> None:
    conv, bn = cell_modules.stem(3, 16)
    assert isinstance(conv, nn.Conv2d) and conv.padding == (1, 1) and conv.bias is None
    assert isinstance(bn, nn.BatchNorm2d)
    assert cell_modules.head(8)(torch.randn(2, 8, 3, 3)).shape == (2, 8, 1, 1)


def test_the_network_trains_and_gradients_reach_the_stem() -> None:
    torch.manual_seed(0)
    model = build(net(CELLS["example"]), DIGITS).train()
    logits = model(images(DIGITS, 4))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    stem = model.blocks[0]
    assert isinstance(stem, nn.Sequential)
    stem_conv = stem[0]
    assert isinstance(stem_conv, nn.Conv2d)
    assert stem_conv.weight.grad is not None and stem_conv.weight.grad.abs().sum() > 0


def test_build_rejects_what_analyze_rejects() -> None:
    with pytest.raises(ArchError, match="receives a 7x7 map"):
        build(net((N,) * 6, stages=4), InputShape(1, 28, 28, 10))


def test_scores_of_cell_networks() -> None:
    arch, none = net(CELLS["example"]), net(CELLS["all none"])
    a = analyze(arch, DIGITS)
    assert score("params", arch, DIGITS) == a.params
    assert score("flops", arch, DIGITS) == a.flops
    first = score("synflow", arch, DIGITS)
    assert math.isfinite(first) and score("synflow", arch, DIGITS) == first
    assert first > score("synflow", none, DIGITS)  # more paths, more synaptic flow
    assert math.isfinite(score("naswot", arch, DIGITS, images(DIGITS, 16)))
