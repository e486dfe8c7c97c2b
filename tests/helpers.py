"""Small helpers shared by the tests."""

from __future__ import annotations

import torch


def same_state(a: object, b: object) -> bool:
    """Deep equality of agent states (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            same_state(x, y) for x, y in zip(a, b))
    return a == b
