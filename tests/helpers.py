"""Small helpers shared by the tests."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch


def same_state(a: object, b: object) -> bool:
    """Deep equality of agent states (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(same_state(x, y) for x, y in zip(a, b))
        )
    return a == b


def through_bytes(state: dict[str, Any]) -> dict[str, Any]:
    """An agent state after torch.save and torch.load(weights_only=True), as the store does."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded: dict[str, Any] = torch.load(buffer, weights_only=True)
    return loaded


def load_module(path: Path) -> ModuleType:
    """Import a Python file by path (an exported network) as its own module."""
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nasrl_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``nasrl ARGS`` as a user would (a separate process), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "nasrl.cli", *args], capture_output=True, text=True, timeout=timeout
    )
