"""Training one child network on whole-tensor data kept on the device.

No DataLoader: the splits are moved to the device once and mini-batches are index slices of a
seeded permutation, which is what makes small children cheap. On CUDA the model runs in
channels_last with bf16 autocast. ``train`` is a generator: it yields an ``EpochRecord`` after
each epoch and a ``TrainOutcome`` last; ``should_stop`` is polled before every batch so a
cancelled call stops within one batch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from nasrl.core.arch import Architecture, canonical, format_arch
from nasrl.core.builder import ChildNet, build, count_params
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.core.shapes import Limits
from trainer_service.data import Dataset

__all__ = ["train", "Cancelled", "resolve_device", "warm_up"]

log = logging.getLogger(__name__)

EVAL_BATCH = 1024
_init_lock = threading.Lock()  # torch's global RNG seeds weight init; one child at a time


class Cancelled(Exception):
    """Training stopped because the caller went away or the server is shutting down."""


class _Finish(Exception):
    """The caller asked to end training early: keep the finished epochs."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def warm_up(device: torch.device) -> int:
    """Count the FLOPs of a tiny network once. torch's FLOP counter spends about a second on
    its first use in a process; a trainer calls this at start-up so that the first child's
    ``seconds`` are not charged for it. Returns the tiny network's FLOPs."""
    from nasrl.core.arch import parse
    from nasrl.core.shapes import InputShape

    shape = InputShape(1, 8, 8, 10)
    model = build(parse("C(4,3,1) P(2,2) FC(4) GAP"), shape).to(device)
    return count_flops(model, torch.zeros((1, 1, 8, 8), device=device))


def count_flops(model: nn.Module, image: torch.Tensor) -> int:
    """Forward FLOPs of one image, counted by torch.utils.flop_counter."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image[:1])
    model.train(was_training)
    return int(counter.get_total_flops())


def _make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=s.lr,
        momentum=s.momentum,
        weight_decay=s.weight_decay,
        nesterov=s.momentum > 0,
    )


def _lr_factor(s: TrainSettings, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up over the first epoch (at most 30 % of all steps), then the schedule.
    The warm-up lets the high default rate train FC-heavy children that it would otherwise
    throw off in the first steps."""
    total = max(1, s.epochs * steps_per_epoch)
    warmup = max(1, min(steps_per_epoch, int(0.3 * total)))

    def decay(step: int) -> float:
        if s.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
        if s.schedule == "step":
            return float(0.1 ** sum(step >= total * m for m in (0.5, 0.75)))
        return 1.0

    return lambda step: decay(step) * min(1.0, (step + 1) / warmup)


class _Run:
    """The state of one training run: model, optimiser, data on the device."""

    def __init__(self, model: ChildNet, data: Dataset, s: TrainSettings, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.model = model.to(device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.data = data.to(device)
        self.settings = s
        self.optimizer = _make_optimizer(self.model, s)
        n = len(self.data.y_train)
        self.batches = [(i, min(i + s.batch_size, n)) for i in range(0, n, s.batch_size)]
        if len(self.batches) > 1 and self.batches[-1][1] - self.batches[-1][0] < 2:
            self.batches.pop()  # batch-norm needs two samples; drop a lone leftover
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_factor(s, len(self.batches))
        )
        self.generator = torch.Generator().manual_seed(s.seed)

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def epoch(
        self, should_stop: Callable[[], bool], should_finish: Callable[[], bool] = lambda: False
    ) -> tuple[float, float]:
        self.model.train()
        order = torch.randperm(len(self.data.y_train), generator=self.generator).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for start, end in self.batches:
            if should_stop():
                raise Cancelled()
            if should_finish():
                raise _Finish()
            idx = order[start:end]
            x, y = self._input(self.data.x_train[idx]), self.data.y_train[idx]
            with self.autocast():
                logits = self.model(x)
                loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if self.settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            loss_sum += loss.detach() * (end - start)
            correct += (logits.argmax(1) == y).sum()
            seen += end - start
        return loss_sum.item() / seen, correct.item() / seen

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, len(y), EVAL_BATCH):
            with self.autocast():
                logits = self.model(self._input(x[start : start + EVAL_BATCH]))
            correct += (logits.argmax(1) == y[start : start + EVAL_BATCH]).sum()
        return correct.item() / max(1, len(y))


def _build_seeded(arch: Architecture, data: Dataset, seed: int, limits: Limits) -> ChildNet:
    with _init_lock:
        torch.manual_seed(seed)
        return build(arch, data.shape, limits)


def train(
    arch: Architecture,
    data: Dataset,
    settings: TrainSettings,
    device: torch.device,
    limits: Limits | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_seconds: float | None = None,
    on_weights: Callable[[dict[str, torch.Tensor]], None] | None = None,
    should_finish: Callable[[], bool] = lambda: False,
) -> Iterator[EpochRecord | TrainOutcome]:
    """Train ``arch``; yields one EpochRecord per epoch, then the TrainOutcome. Raises
    ArchError before allocating anything if the network is invalid, Cancelled if stopped.
    ``on_weights`` receives the best-validation state dict (on the CPU, contiguous) before
    the outcome is yielded. When ``should_finish`` turns true (polled before every batch) the
    epoch in progress is dropped and the outcome covers the finished epochs, with
    ``stopped_early``."""
    began = time.perf_counter()
    s = settings.validate()
    limit = s.max_seconds or max_seconds
    model = _build_seeded(arch, data, s.seed, limits or Limits())
    params = count_params(model)
    flops = count_flops(model, data.x_val[:1])
    run = _Run(model, data, s, device)
    curve: list[EpochRecord] = []
    best_acc, best_state = -1.0, None
    stopped_early = False
    for epoch in range(1, s.epochs + 1):
        if curve and should_finish():
            stopped_early = True
            break
        try:  # a result needs one finished epoch: the first is never cut short
            loss, train_acc = run.epoch(should_stop, should_finish if curve else lambda: False)
        except _Finish:
            stopped_early = True
            log.info("child finished early after epoch %d (early stopping)", epoch - 1)
            break
        val_acc = run.accuracy(run.data.x_val, run.data.y_val)
        record = EpochRecord(epoch, s.epochs, loss, train_acc, val_acc, time.perf_counter() - began)
        curve.append(record)
        yield record
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(run.model.state_dict())
        if limit is not None and record.seconds > limit and epoch < s.epochs:
            stopped_early = True
            log.info("child stopped after epoch %d: wall-clock limit %.0fs", epoch, limit)
            break
    if best_state is not None:
        run.model.load_state_dict(best_state)
    test_acc = run.accuracy(run.data.x_test, run.data.y_test)
    if on_weights is not None:
        on_weights(
            {k: v.detach().to("cpu").contiguous() for k, v in run.model.state_dict().items()}
        )
    yield TrainOutcome(
        validation_accuracy=best_acc,
        validation_accuracy_last5=max(r.validation_accuracy for r in curve[-5:]),
        test_accuracy=test_acc,
        params=params,
        flops=flops,
        seconds=time.perf_counter() - began,
        device=str(device),
        architecture=format_arch(canonical(arch)),
        curve=tuple(curve),
        stopped_early=stopped_early,
        train_examples=len(data.y_train),
        validation_examples=len(data.y_val),
        test_examples=len(data.y_test),
    )
