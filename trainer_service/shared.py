"""The supernet trainer mode (``python -m trainer_service --supernet``): children are trained
and evaluated on weights shared by every child of their space (ENAS, Pham et al. 2018).

The trainer keeps one supernet per key — the dataset and the space: for a layer network the
Zoph space's maxima (``SharedSpec``), for a cell network its skeleton — with its optimiser
state (``SharedSGD``'s momentum), its batch generator and a step counter. A ``Train`` call
takes the supernet's lock, trains ``steps`` mini-batches of the shared weights on the child
(each a random batch of the training split), evaluates the child under the shared weights on
the validation and test splits, and hands back the child's slice (a standalone network's
state dict) for GetWeights. The result says ``Evaluation.SHARED``, the supernet's step
counter and the steps it trained.

Checkpoints: with a folder, every supernet is saved there every ``checkpoint_every`` steps
(torch.save to a temporary name, then renamed) and when the trainer stops; a new trainer on
the same folder loads it (``torch.load(weights_only=True)``) the first time a child of that
key arrives. A kill -9 thus loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nasrl.core.arch import Architecture, canonical, format_arch
from nasrl.core.results import EpochRecord, Evaluation, SettingsError, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape, Limits, analyze
from nasrl.core.supernet import ZophBounds, ZophSupernet
from nasrl.core.supernet_cell import CellSupernet
from nasrl.core.supernet_train import SharedSGD, evaluate, train_child
from trainer_service.data import Dataset

__all__ = ["SharedSpec", "SharedWeights", "SupernetsFull", "supernet_key"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
MAX_STEPS = 100_000  # per call
MAX_SUPERNETS = 16  # kept by one trainer (each search space and dataset is one)


class SupernetsFull(RuntimeError):
    """The trainer keeps as many supernets as it may; the message says so."""


@dataclass(frozen=True)
class SharedSpec:
    """TrainRequest.shared: steps on this child (0 = the trainer's default) and, for a layer
    network, the space's maxima."""

    steps: int = 0
    max_kernel: int = 0
    max_filters: int = 0
    max_layers: int = 0


def supernet_key(arch: Architecture, dataset: str, spec: SharedSpec) -> str:
    """The name of the supernet a child trains: dataset and space. Raises SettingsError when
    a layer network's request does not name its space's maxima."""
    if arch.cell is not None:
        s = arch.cell.skeleton
        return f"nb201:{dataset}:C={s.channels},N={s.cells_per_stage},S={s.stages}"
    if min(spec.max_kernel, spec.max_filters, spec.max_layers) < 1:
        raise SettingsError(
            "a supernet trainer needs the Zoph space's maxima for a layer network: set "
            "TrainRequest.shared.max_kernel, max_filters and max_layers (all at least 1)"
        )
    return f"zoph:{dataset}:K={spec.max_kernel},F={spec.max_filters},L={spec.max_layers}"


def _shared_weights_id(architecture: str, key: str, step: int) -> str:
    text = json.dumps([architecture, key, step, "shared"])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class _Supernet:
    key: str
    net: Any  # ZophSupernet | CellSupernet
    optimizer: SharedSGD
    generator: torch.Generator
    step: int = 0
    saved_step: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "key": self.key,
            "step": self.step,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load(self, saved: dict[str, Any]) -> None:
        if saved.get("format") != CHECKPOINT_FORMAT or saved.get("key") != self.key:
            raise ValueError(f"not a checkpoint of the supernet {self.key}")
        self.net.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        self.step = self.saved_step = int(saved["step"])


class SharedWeights:
    """Every supernet of this trainer, by key."""

    def __init__(
        self,
        folder: Path | None,
        checkpoint_every: int,
        default_steps: int,
    ) -> None:
        self.folder = folder
        self.checkpoint_every = checkpoint_every
        self.default_steps = default_steps
        self._nets: dict[str, _Supernet] = {}
        self._lock = threading.Lock()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for stray in folder.glob("*.tmp"):
                stray.unlink(missing_ok=True)

    def path(self, key: str) -> Path | None:
        name = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.folder / f"supernet-{name}.pt" if self.folder is not None else None

    def _get(
        self,
        key: str,
        arch: Architecture,
        spec: SharedSpec,
        image: InputShape,
        seed: int,
        device: torch.device,
    ) -> _Supernet:
        """The supernet of ``key``: kept, loaded from its checkpoint, or new (its initial
        weights seeded by ``seed``, the first request's). It lives on ``device``, the device
        of the slot that first needed it."""
        with self._lock:
            entry = self._nets.get(key)
            if entry is None:
                if len(self._nets) >= MAX_SUPERNETS:
                    raise SupernetsFull(
                        f"this trainer already keeps {MAX_SUPERNETS} supernets (one per "
                        "dataset and space); use another trainer for this space"
                    )
                entry = self._create(key, arch, spec, image, seed, device)
                self._nets[key] = entry
            return entry

    def _create(
        self,
        key: str,
        arch: Architecture,
        spec: SharedSpec,
        image: InputShape,
        seed: int,
        device: torch.device,
    ) -> _Supernet:
        from trainer_service.train import _init_lock

        with _init_lock:  # torch's global RNG seeds the initial weights, as for a child
            torch.manual_seed(seed)
            net: Any
            if arch.cell is not None:
                net = CellSupernet(image, arch.cell.skeleton)
            else:
                bounds = ZophBounds(spec.max_kernel, spec.max_filters, spec.max_layers)
                net = ZophSupernet(image, bounds)
        net.to(device)
        entry = _Supernet(
            key, net, SharedSGD(dict(net.named_parameters()), lr=0.0), torch.Generator()
        )
        entry.generator.manual_seed(seed)
        path = self.path(key)
        if path is not None and path.exists():
            entry.load(torch.load(path, weights_only=True, map_location=device))
            log.info("supernet %s: resumed at step %d from %s", key, entry.step, path)
        else:
            log.info("supernet %s: new (seed %d)", key, seed)
        return entry

    def check(
        self,
        arch: Architecture,
        dataset: str,
        image: InputShape,
        spec: SharedSpec,
        seed: int,
        device: torch.device,
        limits: Limits,
    ) -> None:
        """Raise ArchError / SettingsError when ``arch`` cannot train on its supernet (a
        layer space's supernet may have at most ``limits.max_params`` parameters; a cell
        skeleton was checked against ``limits`` with the architecture), SupernetsFull when
        it would need one more supernet than this trainer keeps."""
        key = supernet_key(arch, dataset, spec)
        if arch.cell is None:
            bounds = ZophBounds(spec.max_kernel, spec.max_filters, spec.max_layers)
            size = ZophSupernet.size(image, bounds)
            if size > limits.max_params:
                raise SettingsError(
                    f"a supernet for the maxima {bounds} on {dataset} would have {size:,} "
                    f"parameters, over the limit of {limits.max_params:,}"
                )
        if not 0 <= spec.steps <= MAX_STEPS:
            raise SettingsError(f"shared.steps must be between 0 and {MAX_STEPS}, got {spec.steps}")
        self._get(key, arch, spec, image, seed, device).net.plan(arch)

    def save(self, entry: _Supernet) -> None:
        path = self.path(entry.key)
        if path is None:
            return
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        torch.save(entry.state(), tmp)
        os.replace(tmp, path)
        entry.saved_step = entry.step

    def save_all(self) -> None:
        """Checkpoint every supernet with unsaved steps (the trainer is stopping)."""
        with self._lock:
            entries = list(self._nets.values())
        for entry in entries:
            if not entry.lock.acquire(timeout=10):  # a child is training: its periodic
                continue  # checkpoints cover it
            try:
                if entry.step != entry.saved_step:
                    self.save(entry)
            finally:
                entry.lock.release()

    def train(
        self,
        arch: Architecture,
        data: Dataset,
        settings: TrainSettings,
        spec: SharedSpec,
        device: torch.device,
        should_stop: Callable[[], bool] = lambda: False,
        on_weights: Callable[[str, dict[str, torch.Tensor]], None] | None = None,
    ) -> Iterator[EpochRecord | TrainOutcome]:
        """Train the shared weights on ``arch`` for its steps, then evaluate it under them:
        one EpochRecord, then the TrainOutcome. Raises train.Cancelled if stopped."""
        from trainer_service.train import Cancelled

        began = time.perf_counter()
        s = settings.validate()
        key = supernet_key(arch, data.name, spec)
        entry = self._get(key, arch, spec, data.shape, s.seed, device)
        steps = spec.steps or self.default_steps
        text = format_arch(canonical(arch))
        with entry.lock:
            net = entry.net
            device = next(net.parameters()).device  # where the supernet was created
            plan = net.plan(arch)
            opt = entry.optimizer
            opt.lr, opt.momentum, opt.weight_decay = s.lr, s.momentum, s.weight_decay
            opt.nesterov = s.momentum > 0
            losses = []
            n = len(data.y_train)
            for _ in range(steps):
                if should_stop():
                    raise Cancelled()
                idx = torch.randperm(n, generator=entry.generator)[: min(s.batch_size, n)]
                x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
                losses.append(train_child(net, plan, x, y, opt, s.grad_clip))
                entry.step += 1
                if self.checkpoint_every and entry.step % self.checkpoint_every == 0:
                    self.save(entry)
            val = evaluate(net, plan, data.x_val.to(device), data.y_val.to(device))
            test = evaluate(net, plan, data.x_test.to(device), data.y_test.to(device))
            step = entry.step
            state = net.child_state_dict(plan)
        seconds = time.perf_counter() - began
        if on_weights is not None:
            on_weights(_shared_weights_id(text, key, step), state)
        mean_loss = sum(losses) / len(losses) if losses else 0.0
        analysis = analyze(arch, data.shape)
        yield EpochRecord(1, 1, mean_loss, 0.0, val, seconds)
        yield TrainOutcome(
            validation_accuracy=val,
            validation_accuracy_last5=val,
            test_accuracy=test,
            params=analysis.params,
            flops=analysis.flops,
            seconds=seconds,
            device=str(device),
            architecture=text,
            curve=(EpochRecord(1, 1, mean_loss, 0.0, val, seconds),),
            train_examples=steps * min(s.batch_size, n),
            validation_examples=len(data.y_val),
            test_examples=len(data.y_test),
            evaluation=Evaluation.SHARED,
            supernet_step=step,
            shared_steps=steps,
        )
