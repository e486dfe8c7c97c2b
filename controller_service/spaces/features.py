"""A fixed-length numeric vector for each network of a space, from its decisions: what a learned
performance predictor reads (``controller_service.predictor``). Plain NumPy, no torch.

* Zoph: per layer slot up to ``max_layers`` — present, filter height, filter width, stride
  height, stride width, filters (the values, not indices) — then every skip bit (layer i reads
  layer j), then the depth;
* MetaQNN: per depth up to ``max_depth`` — a one-hot of the layer kind (C, P, FC, GAP, SM) and
  its two numbers (receptive field and filters, size and stride, units) — then the depth;
* NB201: a one-hot of each edge's operation (6 × len(ops)).

Absent slots are zeros, so networks of every depth share one layout.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from controller_service.spaces.base import Decisions, Space
from controller_service.spaces.metaqnn import MetaQNNSpace
from controller_service.spaces.nb201 import Nb201Space
from controller_service.spaces.zoph import ZOPH_DECISIONS
from nasrl.core.cell import EDGES

__all__ = ["features", "width"]

_KINDS = ("C", "P", "FC", "GAP", "SM")
_ACTION = re.compile(r"^(C|P|FC|GAP|SM)(?:\((\d+)(?:,(\d+))?\))?$")


def width(space: Space) -> int:
    """The length of every feature vector of ``space``."""
    if isinstance(space, Nb201Space):
        return len(EDGES) * len(space.ops)
    if isinstance(space, MetaQNNSpace):
        return space.max_depth * (len(_KINDS) + 2) + 1
    n = space.max_layers
    return n * (1 + len(ZOPH_DECISIONS)) + n * (n - 1) // 2 + 1


def features(space: Space, decisions: Decisions) -> np.ndarray:
    """The vector of one network (``decisions`` as the space's agents record them)."""
    out = np.zeros(width(space), dtype=np.float64)
    if isinstance(space, Nb201Space):
        for edge, op in enumerate(decisions["path"]):
            out[edge * len(space.ops) + space.ops.index(op)] = 1.0
        return out
    if isinstance(space, MetaQNNSpace):
        return _metaqnn(space, list(decisions["path"]), out)
    return _zoph(space, decisions, out)


def _metaqnn(space: MetaQNNSpace, path: list[str], out: np.ndarray) -> np.ndarray:
    step = len(_KINDS) + 2
    for depth, action in enumerate(path[: space.max_depth]):
        m = _ACTION.match(action)
        if m is None:
            raise ValueError(f"{action!r} is not a MetaQNN layer")
        kind, a, b = m.groups()
        base = depth * step
        out[base + _KINDS.index(kind)] = 1.0
        out[base + len(_KINDS)] = float(a or 0)
        out[base + len(_KINDS) + 1] = float(b or 0)
    out[-1] = float(len(path))
    return out


def _zoph(space: Any, decisions: Decisions, out: np.ndarray) -> np.ndarray:
    n, per = space.max_layers, 1 + len(ZOPH_DECISIONS)
    tokens = decisions["tokens"]
    for i, row in enumerate(tokens[:n]):
        out[i * per] = 1.0
        for k, (name, index) in enumerate(zip(ZOPH_DECISIONS, row)):
            out[i * per + 1 + k] = float(space.choices(name)[index])
    bit = n * per
    skips = decisions.get("skips") or []
    for i in range(n):
        for j in range(i):
            if i < len(skips) and j < len(skips[i]):
                out[bit] = float(skips[i][j])
            bit += 1
    out[-1] = float(len(tokens))
    return out
