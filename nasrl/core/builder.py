"""Builds a PyTorch module from an architecture spec.

The builder walks the layers in order, like torchvision's MobileNetV3 walks its block specs.
Shapes come from ``nasrl.core.shapes.analyze``, which has already validated the graph, so every
module is created with known input sizes. Zoph & Le's three fixes make every expressible graph
build: a layer reads the image when it names it (the agents encode "no input" as ``@[0]``);
outputs nobody consumes are concatenated into the classifier; maps of different spatial size
are zero-padded to the largest before concatenation.

A cell network is built the same way from its blocks (``nasrl.core.arch.network_blocks``:
stem, cells, reductions, head, each reading the one before) with the modules of
``nasrl.core.cell_modules``, NAS-Bench-201's; its classifier reads the head's pooled channels.

``nasrl/cli/export.py`` copies ``_cat``'s source and calls ``same_padding`` to write standalone
modules: what they compute is the builder's own code, not a copy that can drift.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nasrl.core import cell_modules
from nasrl.core.arch import FC, GAP, Architecture, Conv, Pool, network_blocks
from nasrl.core.cell import CellBlock, Head, Reduction, Stem
from nasrl.core.shapes import Analysis, InputShape, Limits, Shape, analyze, merged

__all__ = ["ChildNet", "build", "count_params"]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow-style "same" padding (before, after) so the output is ceil(size/stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv_block(op: Conv, x: Shape) -> nn.Module:
    top, bottom = same_padding(x.height, op.kernel_h, op.stride_h)
    left, right = same_padding(x.width, op.kernel_w, op.stride_w)
    return nn.Sequential(
        nn.ZeroPad2d((left, right, top, bottom)),
        nn.Conv2d(
            x.channels,
            op.filters,
            (op.kernel_h, op.kernel_w),
            (op.stride_h, op.stride_w),
            bias=False,
        ),
        nn.BatchNorm2d(op.filters),
        nn.ReLU(inplace=True),
    )


def _fc_block(op: FC, x: Shape) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(x.numel, op.units),
        nn.ReLU(inplace=True),
        nn.Unflatten(1, (op.units, 1, 1)),
    )


def _block(op: object, x: Shape) -> nn.Module:
    if isinstance(op, Conv):
        return _conv_block(op, x)
    if isinstance(op, Pool):
        return nn.MaxPool2d(op.kernel, op.stride)
    if isinstance(op, FC):
        return _fc_block(op, x)
    if isinstance(op, GAP):
        return nn.AdaptiveAvgPool2d(1)
    return _cell_block(op, x)


def _cell_block(block: object, x: Shape) -> nn.Module:
    if isinstance(block, Stem):
        return cell_modules.stem(x.channels, block.channels)
    if isinstance(block, CellBlock):
        return cell_modules.CellModule(tuple(op.value for op in block.ops), x.channels)
    if isinstance(block, Reduction):
        return cell_modules.Reduction(x.channels, block.channels)
    if isinstance(block, Head):
        return cell_modules.head(x.channels)
    raise TypeError(f"unknown operation {block!r}")


def gather(outputs: list[torch.Tensor], indices: tuple[int, ...]) -> torch.Tensor:
    """The maps ``indices`` name, concatenated (``_cat``)."""
    return _cat([outputs[j] for j in indices])


def _cat(maps: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate maps along channels, zero-padding smaller ones (centred) to the largest."""
    if len(maps) == 1:
        return maps[0]
    height = max(m.shape[-2] for m in maps)
    width = max(m.shape[-1] for m in maps)
    padded = []
    for m in maps:
        dh, dw = height - m.shape[-2], width - m.shape[-1]
        if dh or dw:
            m = F.pad(m, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        padded.append(m)
    return torch.cat(padded, dim=1)


class ChildNet(nn.Module):
    """One sampled child network; ``forward`` maps N x C x H x W images to N x classes logits."""

    def __init__(self, arch: Architecture, analysis: Analysis) -> None:
        super().__init__()
        self.arch = arch
        self.analysis = analysis
        self.inputs = analysis.inputs
        self.heads = analysis.classifier_inputs
        shapes = list(analysis.shapes)
        self.blocks = nn.ModuleList(
            _block(op, merged(shapes, ins))
            for op, ins in zip(network_blocks(arch), analysis.inputs)
        )
        self.classifier = nn.Linear(analysis.classifier_features, analysis.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for block, ins in zip(self.blocks, self.inputs):
            outputs.append(block(gather(outputs, ins)))
        logits: torch.Tensor = self.classifier(torch.flatten(gather(outputs, self.heads), 1))
        return logits


def build(arch: Architecture, image: InputShape, limits: Limits | None = None) -> ChildNet:
    """Validate ``arch`` for ``image`` (raises ArchError) and build it."""
    return ChildNet(arch, analyze(arch, image, limits))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
