"""Shape inference of a cell network (``nasrl.core.cell``) before anything is allocated,
called by ``nasrl.core.shapes.analyze``.

The network is analysed as the chain of its blocks (``nasrl.core.cell.blocks``: stem, cells,
reductions, head), so its ``Analysis`` has the layer networks' form: one shape per block, each
block reading the one before, the head's channels feeding the classifier. Parameters are
those of the module ``nasrl.core.builder`` builds: every edge is built, as NAS-Bench-201 does,
even one that cannot reach the cell's output. FLOPs are counted as ``torch.utils.flop_counter``
counts them: 2 per multiply-accumulate of convolutions and linear layers; pooling,
batch-norm, ReLU and sums are free.
"""

from __future__ import annotations

from nasrl.core.arch import ArchError
from nasrl.core.cell import Block, Cell, CellBlock, CellOp, Reduction, Stem, blocks
from nasrl.core.shapes import Analysis, InputShape, Limits, Shape, check_range, check_totals

__all__ = ["analyze_cell"]


_CONV_KERNEL = {CellOp.NOR_CONV_1X1: 1, CellOp.NOR_CONV_3X3: 3}


def _check_skeleton(cell: Cell, limits: Limits) -> None:
    s = cell.skeleton
    check_range("stem channels (C)", s.channels, 1, limits.max_filters, "skeleton")
    check_range("cells per stage (N)", s.cells_per_stage, 1, limits.max_layers, "skeleton")
    check_range("stages", s.stages, 1, limits.max_layers, "skeleton")
    widest = s.channels << (s.stages - 1)
    if widest > limits.max_filters:
        raise ArchError(
            f"skeleton: the last of {s.stages} stages has {widest} channels (C = {s.channels} "
            f"doubled at each reduction), over the limit of {limits.max_filters}"
        )
    count = s.stages * s.cells_per_stage + s.stages - 1
    if count > limits.max_layers:
        raise ArchError(
            f"skeleton: {s.stages} stages of {s.cells_per_stage} cells and their reductions "
            f"make {count} blocks, over the limit of {limits.max_layers} layers"
        )


def _conv_cost(c_in: int, c_out: int, kernel: int, out: Shape) -> tuple[int, int]:
    """Weights and FLOPs of a bias-free conv giving the ``out`` map (a batch-norm after it adds
    2 parameters per channel)."""
    macs = kernel * kernel * c_in * c_out
    return macs, 2 * macs * out.height * out.width


def _cell_cost(ops: tuple[CellOp, ...], x: Shape) -> tuple[int, int]:
    """Every edge is built and run (as NAS-Bench-201 does), even one that cannot reach the
    output; only the convolutions have weights (and their batch-norms' scale and shift)."""
    params = flops = 0
    for op in ops:
        if op in _CONV_KERNEL:
            p, f = _conv_cost(x.channels, x.channels, _CONV_KERNEL[op], x)
            params, flops = params + p + 2 * x.channels, flops + f
    return params, flops


def _reduction(block: Reduction, x: Shape, where: str) -> tuple[Shape, int, int]:
    if x.height % 2 or x.width % 2:
        raise ArchError(
            f"{where} receives a {x.height}x{x.width} map; halving it needs an even height "
            "and width (its stride-2 conv and 2x2 average-pool shortcut would disagree "
            "otherwise): use fewer stages or an input whose sides divide by 2 per reduction"
        )
    out = Shape(block.channels, x.height // 2, x.width // 2)
    a_params, a_flops = _conv_cost(x.channels, block.channels, 3, out)  # ReLU-conv/2-BN
    b_params, b_flops = _conv_cost(block.channels, block.channels, 3, out)  # ReLU-conv-BN
    s_params, s_flops = _conv_cost(x.channels, block.channels, 1, out)  # pool + 1x1, no BN
    params = a_params + b_params + s_params + 4 * block.channels
    return out, params, a_flops + b_flops + s_flops


def _cell_block(block: Block, x: Shape, where: str) -> tuple[Shape, int, int]:
    if isinstance(block, Stem):
        out = Shape(block.channels, x.height, x.width)
        params, flops = _conv_cost(x.channels, block.channels, 3, out)
        return out, params + 2 * block.channels, flops
    if isinstance(block, CellBlock):
        return (x, *_cell_cost(block.ops, x))
    if isinstance(block, Reduction):
        return _reduction(block, x, where)
    return Shape(x.channels, 1, 1), 2 * x.channels, 0  # head: batch-norm, ReLU, GAP


def _block_names(cell: Cell) -> list[str]:
    names, stage, index = ["the stem"], 1, 0
    for block in blocks(cell)[1:-1]:
        if isinstance(block, Reduction):
            stage, index = stage + 1, 0
            names.append(f"the reduction before stage {stage}")
        else:
            index += 1
            names.append(f"cell {index} of stage {stage}")
    return names + ["the head"]


def analyze_cell(cell: Cell, image: InputShape, limits: Limits | None = None) -> Analysis:
    """Shapes, parameters and FLOPs of the cell network on ``image``; raises ArchError if it
    would not build or exceeds ``limits``. (``shapes.analyze`` also checks an SM(n).)"""
    limits = limits or Limits()
    _check_skeleton(cell, limits)
    shapes = [Shape(image.channels, image.height, image.width)]
    params = flops = 0
    for block, where in zip(blocks(cell), _block_names(cell)):
        out, p, f = _cell_block(block, shapes[-1], where)
        shapes.append(out)
        params, flops = params + p, flops + f
        check_totals(params, flops, limits, where)
    features = shapes[-1].channels
    params += features * image.classes + image.classes
    flops += 2 * features * image.classes
    check_totals(params, flops, limits, "classifier")
    chain = tuple((i,) for i in range(len(shapes) - 1))
    return Analysis(
        tuple(shapes), chain, (len(shapes) - 1,), features, image.classes, params, flops
    )
