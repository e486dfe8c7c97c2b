"""Export a found architecture as a standalone PyTorch module, with its trained weights.

``export_source`` writes the source of a module that imports only ``torch`` and defines
``class Net(nn.Module)`` with the same layers, parameter names and forward pass as the
trainer's ``nasrl.core.builder.ChildNet``, so a state dict saved from one loads into the
other. The forward is spelled out one line per layer, so the file reads as the network.
``write_export`` with a state dict also writes it as ``NAME.pt`` beside ``NAME.py``, and the
module's ``load_trained()`` returns the network with those weights.

A cell network's file carries the classes of ``nasrl.core.cell_modules`` (copied from their
source, so they are the trainer's own) and one line per block: stem, cells, reductions, head.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasrl.core import builder, cell_modules
from nasrl.core.arch import (
    FC,
    GAP,
    Architecture,
    Conv,
    Op,
    Pool,
    describe_block,
    format_arch,
    network_blocks,
)
from nasrl.core.cell import Block, CellBlock, Head, Reduction, Stem
from nasrl.core.shapes import Analysis, InputShape, Shape, analyze, merged

__all__ = ["export_source", "write_export"]

#: the builder's own concatenation (the forward passes call it ``_cat``), copied from its source
_CAT = "\n" + inspect.getsource(builder._cat)


def _cell_helpers() -> str:
    """The source of the modules a cell network is built of (they import only torch)."""
    parts: list[Callable[..., object]] = [
        cell_modules.ReLUConvBN,
        cell_modules.Zero,
        cell_modules.CellModule,
        cell_modules.Reduction,
        cell_modules.stem,
        cell_modules.head,
    ]
    return "\n\n".join(inspect.getsource(part) for part in parts)


def _cell_block_lines(block: Block, x: Shape) -> list[str]:
    if isinstance(block, Stem):
        return [f"stem({x.channels}, {block.channels})"]
    if isinstance(block, CellBlock):
        return [f"CellModule(CELL_OPS, {x.channels})"]
    if isinstance(block, Reduction):
        return [f"Reduction({x.channels}, {block.channels})"]
    if isinstance(block, Head):
        return [f"head({x.channels})"]
    raise TypeError(f"not a block: {block!r}")


def _block_lines(op: Op | Block, x: Shape) -> list[str]:
    """Source of one block, the same modules at the same indices as the builder's."""
    if isinstance(op, Conv):
        top, bottom = builder.same_padding(x.height, op.kernel_h, op.stride_h)
        left, right = builder.same_padding(x.width, op.kernel_w, op.stride_w)
        kernel, stride = (op.kernel_h, op.kernel_w), (op.stride_h, op.stride_w)
        return [
            "nn.Sequential(",
            f"    nn.ZeroPad2d({(left, right, top, bottom)}),",
            f"    nn.Conv2d({x.channels}, {op.filters}, {kernel}, {stride}, bias=False),",
            f"    nn.BatchNorm2d({op.filters}),",
            "    nn.ReLU(inplace=True),",
            ")",
        ]
    if isinstance(op, FC):
        return [
            "nn.Sequential(",
            "    nn.Flatten(),",
            f"    nn.Linear({x.numel}, {op.units}),",
            "    nn.ReLU(inplace=True),",
            f"    nn.Unflatten(1, ({op.units}, 1, 1)),",
            ")",
        ]
    if isinstance(op, Pool):
        return [f"nn.MaxPool2d({op.kernel}, {op.stride})"]
    if isinstance(op, GAP):
        return ["nn.AdaptiveAvgPool2d(1)"]
    return _cell_block_lines(op, x)


def _blocks_source(arch: Architecture, analysis: Analysis) -> list[str]:
    lines = ["self.blocks = nn.ModuleList(["]
    shapes = list(analysis.shapes)
    for i, (op, ins) in enumerate(zip(network_blocks(arch), analysis.inputs), start=1):
        block = _block_lines(op, merged(shapes, ins))
        block[-1] += ","
        lines += [f"    # {i}: {describe_block(op)} -> {shapes[i]}"] + ["    " + b for b in block]
    lines.append("])")
    return lines


def _read(indices: tuple[int, ...]) -> str:
    names = [f"x{j}" for j in indices]
    return names[0] if len(names) == 1 else "_cat([" + ", ".join(names) + "])"


def _forward_source(analysis: Analysis) -> list[str]:
    lines = ["def forward(self, x0: torch.Tensor) -> torch.Tensor:"]
    for i, ins in enumerate(analysis.inputs, start=1):
        lines.append(f"    x{i} = self.blocks[{i - 1}]({_read(ins)})")
    heads = _read(analysis.classifier_inputs)
    lines.append(f"    return self.classifier(torch.flatten({heads}, 1))")
    return lines


def _one_line(text: str) -> str:
    """``text`` made safe inside a triple-quoted docstring: printable, one line, no quotes."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split()).replace("\\", "\\\\").replace('"', '\\"')


_FRESH = """The weights are freshly initialised: `Net()` is untrained. Its layers, parameter names and
forward pass match nasrl's trainer, so a state dict saved there loads here."""

_TRAINED = """`load_trained()` returns the network with the weights the search trained ({weights},
beside this file: the best-validation epoch of that short run); `Net()` alone is untrained.
Its layers, parameter names and forward pass match nasrl's trainer."""

_LOADER = '''

def load_trained(path: str | None = None) -> Net:
    """The network with its trained weights (by default the .pt file beside this module)."""
    from pathlib import Path

    net = Net()
    weights = Path(path) if path else Path(__file__).with_suffix(".pt")
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()
'''


def _docstring(
    text: str, image: InputShape, analysis: Analysis, title: str, weights: str | None
) -> str:
    about = _TRAINED.format(weights=weights) if weights else _FRESH
    return f'''"""{_one_line(title) or "A child network found by nasrl's architecture search."}

Exported by nasrl from the architecture

    {text}

for {image.channels}x{image.height}x{image.width} inputs and {analysis.classes} classes, \
{analysis.params:,} parameters.

{about}
"""'''


def _indent(lines: list[str], depth: int) -> str:
    return "\n".join(" " * 4 * depth + line for line in lines)


def export_source(
    arch: Architecture, image: InputShape, *, title: str = "", weights: str | None = None
) -> str:
    """Source of a standalone module defining ``Net`` for ``arch`` on ``image`` (and
    ``load_trained()`` when ``weights`` names the file of its trained weights); raises
    ArchError, like the builder, when the architecture would not build."""
    analysis = analyze(arch, image)
    text = format_arch(arch)
    init = ["super().__init__()"] + _blocks_source(arch, analysis)
    init.append(f"self.classifier = nn.Linear({analysis.classifier_features}, {analysis.classes})")
    loader = _LOADER if weights else ""
    constants, helpers = "", _CAT
    if arch.cell is not None:  # the cell's ops in NAS-Bench-201's edge order, and its modules
        constants = f"\nCELL_OPS = {tuple(op.value for op in arch.cell.ops)!r}"
        helpers = "\n" + _cell_helpers()
    return f"""{_docstring(text, image, analysis, title, weights)}

import torch
from torch import nn
from torch.nn import functional as F

INPUT_SHAPE = {(image.channels, image.height, image.width)}
NUM_CLASSES = {analysis.classes}
ARCHITECTURE = {text!r}{constants}

{helpers}

class Net(nn.Module):
    \"\"\"Maps N x {image.channels} x {image.height} x {image.width} images to N x \
{analysis.classes} logits.\"\"\"

    def __init__(self) -> None:
{_indent(init, 2)}

{_indent(_forward_source(analysis), 1)}
{loader}"""


def write_export(
    path: str | Path,
    arch: Architecture,
    image: InputShape,
    title: str = "",
    state_dict: dict[str, Any] | None = None,
) -> Path | None:
    """Write ``export_source(arch, image, title=title)`` to ``path``; with ``state_dict``
    (the trained weights) also ``torch.save`` it beside, as the same name with ``.pt``, and
    return that path."""
    path = Path(path)
    weights = path.with_suffix(".pt") if state_dict is not None else None
    if weights is not None:
        import torch

        torch.save(state_dict, weights)
    source = export_source(arch, image, title=title, weights=weights.name if weights else None)
    path.write_text(source, encoding="utf-8")
    return weights
