"""Katib's ENAS-style assignments for a nasrl network: ``nn_config`` (the layer count, input and
output sizes, and an ``embedding`` numbering every convolution the space allows) and
``architecture`` (per layer ``[operation id, skip bits…]``).

Layer i (0-based) is ``[id, s_0, …, s_{i-1}]`` where ``id`` numbers its convolution in the
embedding and ``s_j`` is 1 when it reads layer j's output besides the default (nasrl's
``@[…]`` inputs). nasrl's text form (``nasrl_architecture``) says the same exactly — including
which layers read the image — and is what nasrl's own trial command trains.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from nasrl.core.arch import Conv, parse
from protos import controller_pb2 as cpb

__all__ = ["assignments"]


def _size(h: int, w: int) -> str:
    return str(h) if h == w else f"{h}x{w}"


def _embedding(space: cpb.ZophSpace) -> dict[tuple[int, int, int, int, int], int]:
    """Every (kernel_h, kernel_w, stride_h, stride_w, filters) of the space, numbered."""
    combos = itertools.product(
        space.filter_sizes, space.filter_sizes, space.strides, space.strides, space.filters
    )
    return {combo: i for i, combo in enumerate(combos)}


def nn_config(space: cpb.ZophSpace, shape: cpb.DatasetShape) -> dict[str, Any]:
    embedding = {
        str(i): {
            "opt_id": i,
            "opt_type": "convolution",
            "opt_params": {
                "filter_size": _size(kh, kw),
                "num_filter": str(f),
                "stride": _size(sh, sw),
            },
        }
        for (kh, kw, sh, sw, f), i in _embedding(space).items()
    }
    return {
        "num_layers": space.max_layers,
        "input_sizes": [shape.height, shape.width, shape.channels],
        "output_sizes": [shape.classes],
        "embedding": embedding,
    }


def architecture(text: str, space: cpb.ZophSpace) -> list[list[int]]:
    ids = _embedding(space)
    rows = []
    arch = parse(text)
    if arch.cell is not None:
        raise ValueError(f"{text} is a cell network; Katib's ENAS format holds only layers")
    for i, layer in enumerate(arch.layers):
        op = layer.op
        if not isinstance(op, Conv):
            raise ValueError(f"layer {i + 1} of {text} is not a convolution")
        skips = [1 if j + 1 in layer.inputs else 0 for j in range(i)]
        rows.append([ids[(op.kernel_h, op.kernel_w, op.stride_h, op.stride_w, op.filters)], *skips])
    return rows


def assignments(text: str, space: cpb.ZophSpace, shape: cpb.DatasetShape) -> dict[str, str]:
    """Katib's ``architecture`` and ``nn_config`` assignments (JSON text) for ``text``."""
    return {
        "architecture": json.dumps(architecture(text, space)),
        "nn_config": json.dumps(nn_config(space, shape)),
    }
