"""``ZophSpace``, the space of Zoph & Le (2017): a stack of convolutions, each with five
decisions (filter height, filter width, stride height, stride width, number of filters) and,
optionally, skip connections from any earlier layer. Plain data, no torch."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nasrl.core.arch import Architecture, Conv, Layer, arch_hash, canonical
from nasrl.core.shapes import InputShape

__all__ = ["ZophSpace", "SpaceError", "ZOPH_DECISIONS", "check_choices"]

ZOPH_DECISIONS = ("filter_height", "filter_width", "stride_height", "stride_width", "filters")


class SpaceError(ValueError):
    """Search-space settings that make no sense; the message names the setting."""


MAX_CHOICES = 64


def check_choices(name: str, values: tuple[int, ...], low: int, high: int) -> None:
    if not values:
        raise SpaceError(f"{name} needs at least one value")
    if len(values) > MAX_CHOICES:
        raise SpaceError(f"{name} lists {len(values)} values; at most {MAX_CHOICES}")
    if len(set(values)) != len(values):
        raise SpaceError(f"{name} lists a value twice: {list(values)}")
    for v in values:
        if not low <= v <= high:
            raise SpaceError(f"{name} values must be between {low} and {high}, got {v}")


@dataclass(frozen=True)
class ZophSpace:
    """Zoph & Le's convolutional space. Each layer is five categorical decisions (indices into
    the tuples below) plus, when ``skip_connections``, one yes/no per earlier layer."""

    filter_sizes: tuple[int, ...] = (1, 3, 5, 7)
    strides: tuple[int, ...] = (1, 2, 3)
    filters: tuple[int, ...] = (24, 36, 48, 64)
    max_layers: int = 15
    skip_connections: bool = True

    name = "zoph"

    def validate(self) -> ZophSpace:
        check_choices("filter_sizes", self.filter_sizes, 1, 15)
        check_choices("strides", self.strides, 1, 8)
        check_choices("filters", self.filters, 1, 2048)
        if not 1 <= self.max_layers <= 64:
            raise SpaceError(f"max_layers must be between 1 and 64, got {self.max_layers}")
        return self

    def bind(self, image: InputShape) -> ZophSpace:
        """The same space: Zoph's "same"-padded convolutions fit any input."""
        return self

    def random_decisions(self, rng: random.Random, layers: int) -> dict[str, Any]:
        """Every decision uniform: five tokens per layer and, with skip connections, a fair
        coin per earlier layer."""
        tokens = [
            [rng.randrange(len(self.choices(d))) for d in ZOPH_DECISIONS] for _ in range(layers)
        ]
        skips = [[rng.randrange(2) for _ in range(i)] for i in range(layers)]
        return {"tokens": tokens, "skips": skips if self.skip_connections else None}

    def mutate(self, decisions: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        """Change exactly one decision: one token of one layer, or one skip bit."""
        tokens = [list(t) for t in decisions["tokens"]]
        skips = [list(b) for b in decisions["skips"]] if decisions.get("skips") else None
        n_bits = sum(len(b) for b in skips) if skips else 0
        options = [
            (i, j)
            for i in range(len(tokens))
            for j in range(len(ZOPH_DECISIONS))
            if len(self.choices(ZOPH_DECISIONS[j])) > 1
        ]
        pick = rng.randrange(len(options) + n_bits) if options or n_bits else -1
        if 0 <= pick < len(options):
            i, j = options[pick]
            values = [v for v in range(len(self.choices(ZOPH_DECISIONS[j]))) if v != tokens[i][j]]
            tokens[i][j] = rng.choice(values)
        elif pick >= len(options) and skips:
            bit = pick - len(options)
            for row in skips:
                if bit < len(row):
                    row[bit] ^= 1
                    break
                bit -= len(row)
        return {"tokens": tokens, "skips": skips}

    def choices(self, decision: str) -> tuple[int, ...]:
        """The values of one of the five per-layer decisions (see ZOPH_DECISIONS)."""
        if decision in ("filter_height", "filter_width"):
            return self.filter_sizes
        if decision in ("stride_height", "stride_width"):
            return self.strides
        if decision == "filters":
            return self.filters
        raise KeyError(decision)

    def decode(self, tokens: list[list[int]], skips: list[list[int]] | None) -> Architecture:
        """Turn per-layer decision indices (``tokens[i]`` = five indices for layer i+1) and
        skip bits (``skips[i][j]`` = 1 if layer i+1 reads layer j+1's output, j < i) into an
        architecture. With skip connections a layer reads exactly the layers it chose, and the
        image when it chose none (Zoph & Le's first fix). Without them, each layer reads the
        previous one."""
        layers = []
        for i, t in enumerate(tokens):
            fh, fw, sh, sw, nf = (self.choices(d)[k] for d, k in zip(ZOPH_DECISIONS, t))
            inputs: tuple[int, ...] = ()
            if self.skip_connections and skips is not None:
                chosen = tuple(j + 1 for j, bit in enumerate(skips[i][:i]) if bit)
                inputs = chosen or (0,)
            layers.append(Layer(Conv(nf, fh, fw, sh, sw), inputs))
        return Architecture(tuple(layers))

    def encode(self, arch: Architecture, verify: bool = True) -> dict[str, Any]:
        """The decisions that ``decode`` turns into ``arch`` (as ``{"tokens", "skips"}``), for
        priors given as networks; ValueError names the layer that is not in this space.
        ``verify=False`` skips decoding them back (for a network this space produced)."""
        arch = canonical(arch)
        if not 1 <= len(arch.layers) <= self.max_layers:
            raise ValueError(f"{len(arch.layers)} layers; this space has 1 to {self.max_layers}")
        tokens: list[list[int]] = []
        skips: list[list[int]] = []
        for i, layer in enumerate(arch.layers, start=1):
            op = layer.op
            if not isinstance(op, Conv):
                raise ValueError(f"layer {i} is not a convolution; this space has only those")
            values = (op.kernel_h, op.kernel_w, op.stride_h, op.stride_w, op.filters)
            row = []
            for decision, value in zip(ZOPH_DECISIONS, values):
                options = self.choices(decision)
                if value not in options:
                    raise ValueError(f"layer {i}: {decision} {value} is not one of {list(options)}")
                row.append(options.index(value))
            tokens.append(row)
            inputs = layer.inputs or (i - 1,)
            if not self.skip_connections:
                if inputs != (i - 1,):
                    raise ValueError(
                        f"layer {i} reads {list(inputs)}; this space has no skip connections"
                    )
                continue
            if 0 in inputs and inputs != (0,):
                raise ValueError(
                    f"layer {i} reads the image and earlier layers; this space "
                    "reads the image only when a layer chose no other input"
                )
            skips.append([int(j + 1 in inputs) for j in range(i - 1)])
        decisions = {"tokens": tokens, "skips": skips if self.skip_connections else None}
        if verify and arch_hash(self.decode(tokens, decisions["skips"])) != arch_hash(arch):
            raise ValueError("the network does not decode back to itself in this space")
        return decisions
