"""Training-free scores (nasrl.core.scoring): values, determinism, no side effects."""

from __future__ import annotations

import math

import pytest
import torch

from nasrl.core.arch import parse
from nasrl.core.datasets import input_shape
from nasrl.core.scoring import score
from nasrl.core.shapes import analyze

IMAGE = input_shape("digits")


def test_counts_come_from_the_shape_analysis() -> None:
    arch = parse("C(8,3,1) C(16,3,2)")
    a = analyze(arch, IMAGE)
    assert score("params", arch, IMAGE) == a.params
    assert score("flops", arch, IMAGE) == a.flops


def test_synflow_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    arch = parse("C(8,3,1) C(16,3,2)@[0,1]")
    state = torch.random.get_rng_state()
    first = score("synflow", arch, IMAGE)
    assert torch.equal(state, torch.random.get_rng_state())
    assert score("synflow", arch, IMAGE) == first and math.isfinite(first)
    # more paths from input to output: a larger synaptic flow
    assert score("synflow", parse("C(16,3,1) C(16,3,1)"), IMAGE) > score(
        "synflow", parse("C(8,1,1) C(8,1,1)"), IMAGE
    )


def test_naswot_needs_images_and_is_finite_with_them() -> None:
    arch = parse("C(8,3,1) C(16,3,2)")
    images = torch.randn(
        16, IMAGE.channels, IMAGE.height, IMAGE.width, generator=torch.Generator().manual_seed(0)
    )
    assert math.isfinite(score("naswot", arch, IMAGE, images))
    with pytest.raises(ValueError, match="mini-batch"):
        score("naswot", arch, IMAGE)
    with pytest.raises(ValueError, match="unknown score 'grasp'"):
        score("grasp", arch, IMAGE)
