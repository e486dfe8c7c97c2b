"""Weight sharing over NAS-Bench-201's cell space: the standard one-shot network, one weight
set per (cell position, edge, operation), with the stem, reductions, head and classifier
shared by every child.

``blocks`` mirrors ``nasrl.core.builder.ChildNet`` for a cell network of the same skeleton:
the stem, reductions and head are the same ``nasrl.core.cell_modules`` modules; a cell
position is a ``SharedCell`` whose edge ``k`` holds one module per operation
(``blocks.{b}.edges.{k}.{op}``). A child runs its own operation on each edge and nothing else
(``none`` multiplies by zero, ``skip_connect`` is the identity, ``avg_pool_3x3`` has no
weights), so ``child_state_dict`` is that ChildNet's state dict with the ``.{op}`` level
dropped, and the forward gives the same logits (``tests/unit/test_supernet_cell.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from nasrl.core import cell_modules
from nasrl.core.arch import Architecture
from nasrl.core.cell import CELL_OPS, Cell, CellBlock, Head, Reduction, Skeleton, Stem, blocks
from nasrl.core.shapes import InputShape, analyze, merged
from nasrl.core.supernet import Index, SupernetError

__all__ = ["CellSupernet", "SharedCell", "CellPlan"]

_EDGE_PARAM = re.compile(r"blocks\.(\d+)\.edges\.(\d+)\.(\w+?)\.(.+)")


class SharedCell(nn.Module):
    """Every operation of every edge of one cell position."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict(
                {op.value: cell_modules.CellModule._edge(op.value, channels) for op in CELL_OPS}
            )
            for _ in cell_modules.CellModule.EDGES
        )
        edges = cell_modules.CellModule.EDGES
        self.incoming = tuple(
            tuple((k, j) for k, (j, i) in enumerate(edges) if i == node)
            for node in range(1, edges[-1][1] + 1)
        )

    def forward(self, x: torch.Tensor, ops: tuple[str, ...]) -> torch.Tensor:
        """``cell_modules.CellModule.forward`` with edge ``k`` running ``ops[k]``."""
        nodes = [x]
        for incoming in self.incoming:
            total: torch.Tensor | None = None
            for k, j in incoming:
                edge = self.edges[k]
                assert isinstance(edge, nn.ModuleDict)
                y = edge[ops[k]](nodes[j])
                total = y if total is None else total + y
            assert total is not None
            nodes.append(total)
        return nodes[-1]


@dataclass(frozen=True)
class CellPlan:
    arch: Architecture
    ops: tuple[str, ...]  # NAS-Bench-201 op name per edge


class CellSupernet(nn.Module):
    """The shared weights of every cell of a skeleton on one image shape."""

    def __init__(self, image: InputShape, skeleton: Skeleton) -> None:
        super().__init__()
        self.image, self.skeleton = image, skeleton
        probe = Architecture(cell=Cell((CELL_OPS[0],) * 6, skeleton))
        analysis = analyze(probe, image)  # checks the skeleton fits the image
        shapes = list(analysis.shapes)
        modules: list[nn.Module] = []
        for block, ins in zip(blocks(probe.cell), analysis.inputs):  # type: ignore[arg-type]
            x = merged(shapes, ins)
            if isinstance(block, Stem):
                modules.append(cell_modules.stem(x.channels, block.channels))
            elif isinstance(block, CellBlock):
                modules.append(SharedCell(x.channels))
            elif isinstance(block, Reduction):
                modules.append(cell_modules.Reduction(x.channels, block.channels))
            elif isinstance(block, Head):
                modules.append(cell_modules.head(x.channels))
        self.blocks = nn.ModuleList(modules)
        self.classifier = nn.Linear(analysis.classifier_features, image.classes)

    def plan(self, arch: Architecture) -> CellPlan:
        """The child's ops; raises ArchError (SupernetError for another skeleton)."""
        if arch.cell is None:
            raise SupernetError("a layer network runs on the layer supernet, not the cell one")
        if arch.cell.skeleton != self.skeleton:
            raise SupernetError(
                f"the cell's skeleton {arch.cell.skeleton} is not this supernet's {self.skeleton}"
            )
        analyze(arch, self.image)
        return CellPlan(arch, tuple(op.value for op in arch.cell.ops))

    def used(self, plan: CellPlan) -> dict[str, Index]:
        """Every parameter outside the cells' edges, and those of the child's ops."""
        out: dict[str, Index] = {}
        for name, _ in self.named_parameters():
            m = _EDGE_PARAM.fullmatch(name)
            if m is None or plan.ops[int(m.group(2))] == m.group(3):
                out[name] = None
        return out

    def forward(self, x: torch.Tensor, plan: CellPlan) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, plan.ops) if isinstance(block, SharedCell) else block(x)
        logits: torch.Tensor = self.classifier(torch.flatten(x, 1))
        return logits

    def child_state_dict(self, plan: CellPlan) -> dict[str, torch.Tensor]:
        """The state dict of ``builder.build(plan.arch, image)``: copies, on the CPU."""
        out: dict[str, torch.Tensor] = {}
        for name, value in self.state_dict().items():
            m = _EDGE_PARAM.fullmatch(name)
            if m is None:
                out[name] = value
            elif plan.ops[int(m.group(2))] == m.group(3):
                out[f"blocks.{m.group(1)}.edges.{m.group(2)}.{m.group(4)}"] = value
        return {k: v.detach().to("cpu").clone().contiguous() for k, v in out.items()}
