"""The PyTorch modules of a cell network, NAS-Bench-201's (``xautodl``'s ``InferCell``,
``ReLUConvBN``, ``ResNetBasicblock`` and ``TinyNetwork`` head), built from plain ints and op
names. This module imports only torch: ``nasrl.cli.export`` copies its classes into a
standalone exported file, so the trainer's network and the exported one are the same code.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ReLUConvBN", "Zero", "CellModule", "Reduction", "stem", "head"]


class ReLUConvBN(nn.Sequential):
    """ReLU, a k x k convolution (padding k // 2, no bias), batch-norm: ``nor_conv_kxk``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # the cell's other edges read the same input
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` edge: a zero map of its input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class CellModule(nn.Module):
    """One cell: node 0 is the input, node i the sum of its edges from nodes 0..i-1, the last
    node the output. ``ops`` are NAS-Bench-201's op names in the order of ``EDGES``."""

    EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target) per op

    def __init__(self, ops: tuple[str, ...], channels: int) -> None:
        super().__init__()
        if len(ops) != len(self.EDGES):
            raise ValueError(f"a cell has {len(self.EDGES)} edges, got {len(ops)} ops")
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(self._edge(op, channels) for op in ops)
        last = self.EDGES[-1][1]
        # for each node after the input: the (edge index, source node) of its incoming edges
        self.incoming = tuple(
            tuple((k, j) for k, (j, i) in enumerate(self.EDGES) if i == node)
            for node in range(1, last + 1)
        )

    @staticmethod
    def _edge(op: str, channels: int) -> nn.Module:
        if op == "none":
            return Zero()
        if op == "skip_connect":
            return nn.Identity()
        if op == "nor_conv_1x1":
            return ReLUConvBN(channels, channels, 1)
        if op == "nor_conv_3x3":
            return ReLUConvBN(channels, channels, 3)
        if op == "avg_pool_3x3":
            return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        raise ValueError(f"unknown cell operation {op!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in self.incoming:
            total = self.edges[incoming[0][0]](nodes[incoming[0][1]])
            for k, j in incoming[1:]:
                total = total + self.edges[k](nodes[j])
            nodes.append(total)
        return nodes[-1]


class Reduction(nn.Module):
    """NAS-Bench-201's residual reduction (ResNet basic block, stride 2): ReLU-conv3x3/2-BN,
    ReLU-conv3x3-BN, plus a 2x2 stride-2 average pool and 1x1 conv (no bias) shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.downsample(x) + self.conv_b(self.conv_a(x))
        return out


def stem(c_in: int, channels: int) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias) and batch-norm."""
    return nn.Sequential(
        nn.Conv2d(c_in, channels, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(channels)
    )


def head(channels: int) -> nn.Sequential:
    """Batch-norm, ReLU, global average pooling: channels x 1 x 1 (the classifier follows)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
