"""Training-free scores of a network at initialisation, for screening proposals before any
training (zero-cost proxies):

* ``params`` and ``flops`` — from ``nasrl.core.shapes.analyze``, no model built;
* ``synflow`` — Tanaka et al. 2020 (as used as a NAS proxy by Abdelfattah et al. 2021): with
  every weight replaced by its absolute value and batch norm at its initial identity (eval
  mode), the sum over parameters of |θ · ∂R/∂θ| where R is the sum of the network's output
  for an all-ones input; data-free. Computed in float64 (the products overflow float32 in
  deep nets) and reported as log;
* ``naswot`` — Mellor et al. 2021, "Neural Architecture Search without Training": for a
  mini-batch of training images, the binary ReLU activation pattern of each image; the score
  is log|K| with K[i, j] = number of units on which images i and j agree. Needs data.

Higher is better for every score (the ``params``/``flops`` scores are the counts themselves:
bigger networks tend to do better in small spaces, which is what screening by them assumes).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nasrl.core.arch import Architecture
from nasrl.core.builder import build
from nasrl.core.shapes import InputShape, analyze

__all__ = ["SCORES", "score", "synflow", "naswot"]

SCORES = ("params", "flops", "synflow", "naswot")


def synflow(model: nn.Module, image: InputShape) -> float:
    """log of the SynFlow score of ``model`` (modified in place: weights made absolute)."""
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    x = torch.ones((1, image.channels, image.height, image.width), dtype=torch.float64)
    torch.autograd.backward(model(x).sum())
    total = sum(
        float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None
    )
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log|K| of the ReLU activation patterns of ``images`` (one mini-batch)."""
    codes: list[torch.Tensor] = []

    def hook(_: nn.Module, __: object, out: torch.Tensor) -> None:
        codes.append((out.detach().flatten(1) > 0).double())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model.train()(images)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        return -math.inf
    c = torch.cat(codes, dim=1)
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else -math.inf


def score(
    kind: str,
    arch: Architecture,
    image: InputShape,
    images: torch.Tensor | None = None,
    seed: int = 0,
) -> float:
    """One training-free score (see the module docstring); ``images`` for ``naswot``."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")
    if kind in ("params", "flops"):
        a = analyze(arch, image)
        return float(a.params if kind == "params" else a.flops)
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays as it was
        torch.manual_seed(seed)
        model = build(arch, image)
    if kind == "synflow":
        return synflow(model, image)
    if images is None:
        raise ValueError("the naswot score needs a mini-batch of images")
    return naswot(model, images)
