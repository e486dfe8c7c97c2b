"""Training and evaluating children on shared weights (ENAS's shared-weights phase).

``train_child`` runs one mini-batch step of one child and updates **only the entries of the
shared weights that child reads** (``supernet.used(plan)``). torch's optimisers cannot do
that here: a sliced parameter gets a dense gradient (zeros outside the slice), and weight
decay and momentum would still move the entries the child never read. ``SharedSGD`` is SGD
with (Nesterov) momentum and weight decay applied to the used entries only; the momentum
buffer of an unused entry neither decays nor moves its weight (a "lazy" update, as sparse
optimisers do). Batch-norm running statistics move only for the channels the child reads.

Both supernets (``nasrl.core.supernet.ZophSupernet``, ``nasrl.core.supernet_cell.
CellSupernet``) have the same surface: ``plan(arch)``, ``forward(x, plan)``, ``used(plan)``,
``child_state_dict(plan)``; this module is written against it (``Supernet``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from nasrl.core.arch import Architecture
from nasrl.core.supernet import Index

__all__ = ["Supernet", "SharedSGD", "train_child", "evaluate", "BN_MODES"]


class Supernet(Protocol):
    training: bool

    def plan(self, arch: Architecture) -> Any: ...
    def used(self, plan: Any) -> dict[str, Index]: ...
    def __call__(self, x: torch.Tensor, plan: Any) -> torch.Tensor: ...
    def named_parameters(self) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...
    def child_state_dict(self, plan: Any) -> dict[str, torch.Tensor]: ...
    def buffers(self) -> Any: ...


@dataclass
class SharedSGD:
    """SGD with momentum and weight decay on the used entries of named parameters only."""

    params: dict[str, nn.Parameter]
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True

    def __post_init__(self) -> None:
        self.buffers = {name: torch.zeros_like(p) for name, p in self.params.items()}

    @torch.no_grad()
    def step(self, used: dict[str, Index]) -> None:
        for name, index in used.items():
            p = self.params[name]
            if p.grad is None:
                continue
            idx: Any = index if index is not None else (...,)
            w, g = p[idx], p.grad[idx]
            if self.weight_decay:
                g = g + self.weight_decay * w
            buf = self.buffers[name]
            b = buf[idx] * self.momentum + g
            buf[idx] = b
            update = g + self.momentum * b if self.nesterov else b
            p[idx] = w - self.lr * update

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"momentum.{name}": b for name, b in self.buffers.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, b in self.buffers.items():
            b.copy_(state[f"momentum.{name}"])


def train_child(
    supernet: Supernet,
    plan: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: SharedSGD,
    grad_clip: float = 1.0,
) -> float:
    """One step of the child ``plan`` on the batch (x, y); the batch's mean loss."""
    supernet.train()
    used = supernet.used(plan)
    for p in optimizer.params.values():
        p.grad = None
    loss = F.cross_entropy(supernet(x, plan), y)
    loss.backward()  # type: ignore[no-untyped-call]
    if grad_clip > 0:
        grads = [optimizer.params[n] for n in used if optimizer.params[n].grad is not None]
        nn.utils.clip_grad_norm_(grads, grad_clip)
    optimizer.step(used)
    return float(loss.detach())


#: how ``evaluate`` normalises: the shared running statistics, or each batch's own
BN_MODES = ("running", "batch")


@torch.no_grad()
def evaluate(
    supernet: Supernet,
    plan: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int = 1024,
    bn: str = "running",
) -> float:
    """The child's accuracy on (x, y) under the shared weights. ``bn="running"``: eval mode,
    batch-norm uses the shared running statistics of the channels it reads (what the
    exported child computes). ``bn="batch"``: batch-norm normalises with each evaluation
    batch's own statistics (the running statistics are left as they were), which does not
    depend on the statistics other children left in the shared buffers."""
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
    saved = [(b, b.clone()) for b in supernet.buffers()] if bn == "batch" else []
    supernet.train(bn == "batch")
    correct = 0
    try:
        for start in range(0, len(y), batch):
            logits = supernet(x[start : start + batch], plan)
            correct += int((logits.argmax(1) == y[start : start + batch]).sum())
    finally:
        for b, value in saved:
            b.copy_(value)
        supernet.train(False)
    return correct / max(1, len(y))
