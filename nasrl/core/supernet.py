"""Weight sharing (ENAS, Pham et al. 2018) over Zoph & Le's layer space: one supernet whose
weights every child slices, instead of each child training its own from scratch.

Layout of the shared weights, for a space with ``max_layers`` L, largest kernel side K and
largest filter count F, on an image of C channels and H x W pixels (B = max(F, C), the width
of an earlier layer's channel block; B = F whenever the space has at least C filters):

* layer ``i`` (1-based) has one conv weight ``[F, C + (i - 1) * B, K, K]``: its input
  channels are laid out as the image's C channels, then B channels for each earlier layer
  ``j`` (block ``j`` starts at ``C + (j - 1) * B``), so a skip from layer ``j`` always reads
  the same weights whatever else the child concatenates;
* a child's conv with ``f`` filters and a ``kh x kw`` kernel reading inputs ``(a, b, ...)``
  uses output channels ``[:f]``, the first ``f_a`` channels of block ``a``, then of block
  ``b`` (in the child's own concatenation order), and the centre ``kh x kw`` window of the
  K x K kernel (rows ``(K - kh) // 2 ...``); its batch-norm the first ``f`` channels (affine
  weights and running statistics) of layer ``i``'s F-channel batch-norm;
* the classifier's weight is ``[classes, L * B, H, W]`` (block ``j`` of the channels is layer
  ``j``'s output; the image never reaches the classifier). A child's classifier reads the
  flattened concatenation of its unconsumed outputs, an ``c x h x w`` map (h x w the largest
  of those maps, smaller ones zero-padded, centred, as ``nasrl.core.builder.gather`` does);
  it uses channel rows as above and the **top-left** ``h x w`` positions. So a child's flatten
  order (channel, row, column) is reproduced exactly, and a position's weight is shared by
  every child whose head map has that size or larger.

``child_state_dict`` returns a child's slice as the state dict of the standalone network
``nasrl.core.builder.build(arch, image)`` builds, and the supernet's forward on a child is that
network's forward (same logits; ``tests/unit/test_supernet.py``). Strides and skips need no
weights of their own, nor do max pooling and global average pooling layers (MetaQNN's space
without FC layers): a pool's output is one block like a conv's, so a pool may read one input,
or several whose channels fit one block. Pure torch; nothing here imports grpc.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from nasrl.core.arch import GAP, ArchError, Architecture, Conv, Pool
from nasrl.core.builder import gather, same_padding
from nasrl.core.shapes import InputShape, analyze, merged

__all__ = ["SupernetError", "ZophBounds", "ZophSupernet", "Index", "LayerPlan", "ZophPlan"]

#: the entries of one parameter a child uses: an index into it (None: all of it)
Index = tuple[slice | torch.Tensor, ...] | None


class SupernetError(ArchError):
    """A child that does not fit the supernet's space; the message says what to change."""


@dataclass(frozen=True)
class ZophBounds:
    """The largest choices of a Zoph space (``controller_service.spaces.ZophSpace``'s
    ``max(filter_sizes)``, ``max(filters)``, ``max_layers``): they size the shared weights."""

    max_kernel: int
    max_filters: int
    max_layers: int

    def __post_init__(self) -> None:
        for name in ("max_kernel", "max_filters", "max_layers"):
            if getattr(self, name) < 1:
                raise SupernetError(f"a supernet's {name} must be at least 1")


@dataclass(frozen=True)
class LayerPlan:
    op: Conv | Pool | GAP
    inputs: tuple[int, ...]
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # conv: builder's "same" (l, r, t, b)
    weight: tuple[slice | torch.Tensor, ...] = ()  # conv: into its [F, C_in_max, K, K] weight


@dataclass(frozen=True)
class ZophPlan:
    """How one child runs on the supernet: per layer its slices, then the classifier's."""

    arch: Architecture
    layers: tuple[LayerPlan, ...]
    heads: tuple[int, ...]
    classifier: tuple[slice | torch.Tensor, ...]  # into [classes, L * F, H, W]


class ZophSupernet(nn.Module):
    """The shared weights of every child of a Zoph space on one image shape."""

    def __init__(self, image: InputShape, bounds: ZophBounds) -> None:
        super().__init__()
        self.image, self.bounds = image, bounds
        k, f, n = bounds.max_kernel, bounds.max_filters, bounds.max_layers
        self.block = max(f, image.channels)  # channels of one earlier layer's block
        self.convs = nn.ParameterList(
            nn.Parameter(torch.empty(f, image.channels + i * self.block, k, k)) for i in range(n)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(f) for _ in range(n))
        self.classifier_weight = nn.Parameter(
            torch.empty(image.classes, n * self.block, image.height, image.width)
        )
        self.classifier_bias = nn.Parameter(torch.empty(image.classes))
        self.reset_parameters()

    @staticmethod
    def size(image: InputShape, bounds: ZophBounds) -> int:
        """Parameters of the supernet for ``image`` and ``bounds``, before allocating it."""
        k, f, n = bounds.max_kernel, bounds.max_filters, bounds.max_layers
        block = max(f, image.channels)
        convs = sum(f * (image.channels + i * block) * k * k for i in range(n))
        head = image.classes * (n * block * image.height * image.width + 1)
        return convs + 2 * f * n + head

    def reset_parameters(self) -> None:
        """nn.Conv2d's and nn.Linear's default initialisation, over the full tensors."""
        for w in self.convs:
            nn.init.kaiming_uniform_(w, a=5**0.5)
        nn.init.kaiming_uniform_(self.classifier_weight.flatten(1), a=5**0.5)
        bound = self.classifier_weight[0].numel() ** -0.5
        nn.init.uniform_(self.classifier_bias, -bound, bound)

    # ------------------------------------------------------------------ planning

    def _block_start(self, j: int) -> int:
        """First input channel of source ``j`` (0 = the image) in a conv weight."""
        return 0 if j == 0 else self.image.channels + (j - 1) * self.block

    def plan(self, arch: Architecture) -> ZophPlan:
        """The slices ``arch`` uses; raises ArchError (SupernetError when it is a valid
        network outside this supernet's space)."""
        if arch.cell is not None:
            raise SupernetError("a cell network runs on the cell supernet, not the layer one")
        analysis = analyze(arch, self.image)
        b = self.bounds
        if len(arch.layers) > b.max_layers:
            raise SupernetError(f"{len(arch.layers)} layers; this supernet has {b.max_layers}")
        widths = [self.image.channels]
        layers = []
        for i, (layer, ins) in enumerate(zip(arch.layers, analysis.inputs), start=1):
            op = layer.op
            if isinstance(op, (Pool, GAP)):
                channels = sum(widths[j] for j in ins)
                if channels > self.block:
                    raise SupernetError(
                        f"layer {i}: a pool over {channels} channels does not fit this "
                        f"supernet's blocks of {self.block}"
                    )
                layers.append(LayerPlan(op, ins))
                widths.append(channels)
                continue
            if not isinstance(op, Conv):
                raise SupernetError(
                    f"layer {i}: the layer supernet has convolutions and pooling only"
                )
            if op.filters > b.max_filters or max(op.kernel_h, op.kernel_w) > b.max_kernel:
                raise SupernetError(
                    f"layer {i}: {op.filters} filters of {op.kernel_h}x{op.kernel_w} exceed "
                    f"this supernet's {b.max_filters} filters of {b.max_kernel}x{b.max_kernel}"
                )
            x = merged(list(analysis.shapes), ins)
            top, bottom = same_padding(x.height, op.kernel_h, op.stride_h)
            left, right = same_padding(x.width, op.kernel_w, op.stride_w)
            rows = torch.cat(
                [torch.arange(self._block_start(j), self._block_start(j) + widths[j]) for j in ins]
            )
            dh, dw = (b.max_kernel - op.kernel_h) // 2, (b.max_kernel - op.kernel_w) // 2
            index = (
                slice(0, op.filters),
                rows,
                slice(dh, dh + op.kernel_h),
                slice(dw, dw + op.kernel_w),
            )
            layers.append(LayerPlan(op, ins, (left, right, top, bottom), index))
            widths.append(op.filters)
        heads = analysis.classifier_inputs
        head = merged(list(analysis.shapes), heads)
        f = self.block
        cols = torch.cat([torch.arange((j - 1) * f, (j - 1) * f + widths[j]) for j in heads])
        classifier = (slice(None), cols, slice(0, head.height), slice(0, head.width))
        return ZophPlan(arch, tuple(layers), heads, classifier)

    def used(self, plan: ZophPlan) -> dict[str, Index]:
        """The parameters (by name) and entries a child's forward reads."""
        out: dict[str, Index] = {}
        for i, layer in enumerate(plan.layers):
            if isinstance(layer.op, Conv):
                out[f"convs.{i}"] = layer.weight
                out[f"bns.{i}.weight"] = out[f"bns.{i}.bias"] = (slice(0, layer.op.filters),)
        out["classifier_weight"] = plan.classifier
        out["classifier_bias"] = None
        return out

    # ------------------------------------------------------------------ running

    def forward(self, x: torch.Tensor, plan: ZophPlan) -> torch.Tensor:
        outputs = [x]
        for i, layer in enumerate(plan.layers):
            x, op = gather(outputs, layer.inputs), layer.op
            if isinstance(op, Pool):
                outputs.append(F.max_pool2d(x, op.kernel, op.stride))
            elif isinstance(op, GAP):
                outputs.append(F.adaptive_avg_pool2d(x, 1))
            else:
                y = F.conv2d(
                    F.pad(x, layer.padding),
                    self.convs[i][layer.weight],
                    stride=(op.stride_h, op.stride_w),
                )
                outputs.append(F.relu(self._batch_norm(i, y, op.filters)))
        head = torch.flatten(gather(outputs, plan.heads), 1)
        weight = self.classifier_weight[plan.classifier].flatten(1)
        return F.linear(head, weight, self.classifier_bias)

    def _batch_norm(self, i: int, y: torch.Tensor, f: int) -> torch.Tensor:
        """Layer ``i``'s batch-norm over its first ``f`` channels; in training the running
        statistics of those channels (views into the shared buffers) are updated in place."""
        bn = self.bns[i]
        assert isinstance(bn, nn.BatchNorm2d)
        assert bn.running_mean is not None and bn.running_var is not None
        if self.training:
            assert bn.num_batches_tracked is not None
            bn.num_batches_tracked.add_(1)
        return F.batch_norm(
            y,
            bn.running_mean[:f],
            bn.running_var[:f],
            bn.weight[:f],
            bn.bias[:f],
            self.training,
            bn.momentum if bn.momentum is not None else 0.1,
            bn.eps,
        )

    def child_state_dict(self, plan: ZophPlan) -> dict[str, torch.Tensor]:
        """The child's slice as the state dict of ``builder.build(plan.arch, image)``
        (keys ``blocks.{i}.1.weight`` for the conv, ``blocks.{i}.2.*`` for its batch-norm,
        ``classifier.*``); copies, on the CPU."""
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(plan.layers):
            if not isinstance(layer.op, Conv):
                continue  # pooling has no state
            f = layer.op.filters
            bn = self.bns[i]
            out[f"blocks.{i}.1.weight"] = self.convs[i][layer.weight]
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"blocks.{i}.2.{name}"] = getattr(bn, name)[:f]
            out[f"blocks.{i}.2.num_batches_tracked"] = getattr(bn, "num_batches_tracked")
        out["classifier.weight"] = self.classifier_weight[plan.classifier].flatten(1)
        out["classifier.bias"] = self.classifier_bias
        return {k: v.detach().to("cpu").clone().contiguous() for k, v in out.items()}
