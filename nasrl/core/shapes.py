"""Shape inference and validation of an architecture for a dataset's input, before any
tensor is allocated.

``analyze`` walks the layers with the same rules the trainer's builder uses ("same" conv
padding, valid max pooling, concatenation along channels with smaller maps zero-padded to the
largest, unconsumed outputs concatenated into the classifier) and returns every layer's
output shape, the parameter count and the forward FLOPs per image. Anything that would not
build, or that exceeds the limits, raises ``ArchError`` with a sentence naming the layer.

A cell network (``Architecture.cell``) is analysed by ``nasrl.core.cell_shapes`` into an
``Analysis`` of the same form: the chain of its blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nasrl.core.arch import (
    FC,
    GAP,
    ArchError,
    Architecture,
    Conv,
    Layer,
    Pool,
    consumers,
    format_layer,
)

__all__ = ["InputShape", "Limits", "Shape", "Analysis", "analyze", "unconsumed"]


@dataclass(frozen=True)
class InputShape:
    channels: int
    height: int
    width: int
    classes: int


@dataclass(frozen=True)
class Limits:
    """Upper bounds checked before building. Defaults keep one child within one GPU."""

    max_layers: int = 64
    max_filters: int = 2048
    max_units: int = 16384
    max_kernel: int = 15
    max_stride: int = 8
    max_fan_in: int = 64
    max_params: int = 50_000_000
    max_flops: int = 20_000_000_000  # per image, forward


@dataclass(frozen=True)
class Shape:
    channels: int
    height: int
    width: int

    @property
    def numel(self) -> int:
        return self.channels * self.height * self.width

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"


@dataclass(frozen=True)
class Analysis:
    shapes: tuple[Shape, ...]  # index 0 = image, i = output of layer i
    inputs: tuple[tuple[int, ...], ...]  # resolved inputs of each layer
    classifier_inputs: tuple[int, ...]  # outputs nobody consumes
    classifier_features: int
    classes: int
    params: int
    flops: int


def unconsumed(arch: Architecture) -> tuple[int, ...]:
    """Layers whose output no later layer reads; they all feed the classifier."""
    counts = consumers(arch)
    return tuple(j for j in range(1, len(counts)) if counts[j] == 0)


def merged(shapes: list[Shape], indices: tuple[int, ...]) -> Shape:
    """Shape of the channel-wise concatenation of several maps, padded to the largest."""
    sel = [shapes[j] for j in indices]
    return Shape(
        sum(s.channels for s in sel), max(s.height for s in sel), max(s.width for s in sel)
    )


def _where(i: int, layer: Layer) -> str:
    text = format_layer(layer)
    if len(text) > 60:  # a skip list of thousands stays out of the message
        text = text[:57] + "..."
    return f"layer {i} ({text})"


def check_range(what: str, value: int, low: int, high: int, where: str) -> None:
    if not low <= value <= high:
        raise ArchError(f"{where}: {what} must be between {low} and {high}, got {value}")


def _check_inputs(i: int, layer: Layer, limits: Limits) -> None:
    where = _where(i, layer)
    if len(layer.inputs) > limits.max_fan_in:
        raise ArchError(
            f"{where}: {len(layer.inputs)} inputs exceed the limit of {limits.max_fan_in}"
        )
    if len(set(layer.inputs)) != len(layer.inputs):
        raise ArchError(f"{where}: an input is listed twice in {list(layer.inputs)}")
    for j in layer.inputs:
        if not 0 <= j < i:
            earlier = "the image (0)" + (f" or an earlier layer (1..{i - 1})" if i > 1 else "")
            raise ArchError(f"{where}: input {j} does not exist; this layer can read {earlier}")


def _conv(op: Conv, x: Shape, where: str, limits: Limits) -> tuple[Shape, int, int]:
    check_range("filters", op.filters, 1, limits.max_filters, where)
    check_range("kernel height", op.kernel_h, 1, limits.max_kernel, where)
    check_range("kernel width", op.kernel_w, 1, limits.max_kernel, where)
    check_range("stride height", op.stride_h, 1, limits.max_stride, where)
    check_range("stride width", op.stride_w, 1, limits.max_stride, where)
    out = Shape(op.filters, math.ceil(x.height / op.stride_h), math.ceil(x.width / op.stride_w))
    macs_per_pixel = op.kernel_h * op.kernel_w * x.channels * op.filters
    params = macs_per_pixel + 2 * op.filters  # no bias: batch-norm's scale and shift follow
    return out, params, 2 * macs_per_pixel * out.height * out.width


def _pool(op: Pool, x: Shape, where: str, limits: Limits) -> tuple[Shape, int, int]:
    check_range("pool kernel", op.kernel, 1, limits.max_kernel, where)
    check_range("pool stride", op.stride, 1, limits.max_stride, where)
    if op.kernel > x.height or op.kernel > x.width:
        raise ArchError(
            f"{where} receives a {x.height}x{x.width} map; a {op.kernel}x{op.kernel} pool "
            "would shrink it below 1x1 (use a smaller kernel or fewer pooling/strided layers)"
        )
    h = (x.height - op.kernel) // op.stride + 1
    w = (x.width - op.kernel) // op.stride + 1
    return Shape(x.channels, h, w), 0, 0


def _fc(op: FC, x: Shape, where: str, limits: Limits) -> tuple[Shape, int, int]:
    check_range("units", op.units, 1, limits.max_units, where)
    weights = x.numel * op.units
    return Shape(op.units, 1, 1), weights + op.units, 2 * weights


def _layer(op: object, x: Shape, where: str, limits: Limits) -> tuple[Shape, int, int]:
    if isinstance(op, Conv):
        return _conv(op, x, where, limits)
    if isinstance(op, Pool):
        return _pool(op, x, where, limits)
    if isinstance(op, FC):
        return _fc(op, x, where, limits)
    if isinstance(op, GAP):
        return Shape(x.channels, 1, 1), 0, 0
    raise ArchError(f"{where}: unknown operation {op!r}")


def check_totals(params: int, flops: int, limits: Limits, where: str) -> None:
    if params > limits.max_params:
        raise ArchError(
            f"{where}: the network has {params:,} parameters, over the limit of "
            f"{limits.max_params:,}"
        )
    if flops > limits.max_flops:
        raise ArchError(
            f"{where}: the network needs {flops:,} FLOPs per image, over the limit of "
            f"{limits.max_flops:,}"
        )


def _check_classes(arch: Architecture, image: InputShape) -> None:
    if arch.classes is not None and arch.classes != image.classes:
        raise ArchError(
            f"SM({arch.classes}) does not match the dataset, which has {image.classes} classes"
        )


def analyze(arch: Architecture, image: InputShape, limits: Limits | None = None) -> Analysis:
    """Shapes, parameters and FLOPs of ``arch`` on ``image``; raises ArchError if it would
    not build or exceeds ``limits``."""
    limits = limits or Limits()
    if arch.cell is not None:
        from nasrl.core.cell_shapes import analyze_cell  # it builds on this module's types

        _check_classes(arch, image)
        return analyze_cell(arch.cell, image, limits)
    if not arch.layers:
        raise ArchError("an architecture needs at least one layer")
    if len(arch.layers) > limits.max_layers:
        raise ArchError(f"{len(arch.layers)} layers exceed the limit of {limits.max_layers} layers")
    _check_classes(arch, image)
    shapes = [Shape(image.channels, image.height, image.width)]
    resolved: list[tuple[int, ...]] = []
    params = flops = 0
    for i, layer in enumerate(arch.layers, start=1):
        where = _where(i, layer)
        _check_inputs(i, layer, limits)
        ins = layer.inputs or (i - 1,)
        resolved.append(ins)
        out, p, f = _layer(layer.op, merged(shapes, ins), where, limits)
        shapes.append(out)
        params, flops = params + p, flops + f
        check_totals(params, flops, limits, where)
    heads = unconsumed(arch)
    features = merged(shapes, heads).numel
    params += features * image.classes + image.classes
    flops += 2 * features * image.classes
    check_totals(params, flops, limits, "classifier")
    return Analysis(tuple(shapes), tuple(resolved), heads, features, image.classes, params, flops)
