"""Plain data types shared by the trainer, the client and the CLI: training settings, epoch
progress and the result of one child. No torch, no grpc."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "TrainSettings",
    "EpochRecord",
    "Evaluation",
    "TrainOutcome",
    "SharedTraining",
    "SettingsError",
    "weights_id",
]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "constant")
DEFAULT_LR = {"sgd": 0.3, "adam": 0.003}


class SettingsError(ValueError):
    """A training hyper-parameter outside its allowed range; the message names it."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 3
    batch_size: int = 32
    optimizer: str = "sgd"  # SGD with Nesterov momentum, or "adam"
    learning_rate: float | None = None  # None: 0.3 for SGD, 0.003 for Adam
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    # Gradients are rescaled to at most this global L2 norm before each step (0: never).
    # Without it the high default SGD rate drives some wide children into a dead-ReLU
    # collapse (every prediction one class); see the README's "Deviations" table.
    grad_clip: float = 1.0
    max_seconds: float | None = None  # None: the trainer's own limit

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.optimizer]

    def validate(self) -> TrainSettings:
        _within("epochs", self.epochs, 1, 1000)
        _within("batch_size", self.batch_size, 2, 4096)
        if self.optimizer not in OPTIMIZERS:
            raise SettingsError(
                f"optimizer must be {' or '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise SettingsError(f"schedule must be {', '.join(SCHEDULES)}, got {self.schedule!r}")
        _within("learning_rate", self.lr, 1e-8, 10.0)
        _within("momentum", self.momentum, 0.0, 0.999)
        _within("weight_decay", self.weight_decay, 0.0, 1.0)
        _within("seed", self.seed, 0, 2**63 - 1)
        _within("grad_clip", self.grad_clip, 0.0, 1e6)
        if self.max_seconds is not None:
            _within("max_seconds", self.max_seconds, 0.001, 7 * 86400.0)
        return self


@dataclass(frozen=True)
class SharedTraining:
    """How to train a child under shared weights (a ``--supernet`` trainer; the proto's
    ``SharedTraining``): ``steps`` mini-batches (0: the trainer's default) and, for a layer
    network, the space's largest kernel side, filter count and layer count, which size the
    supernet (0 for a cell network, whose skeleton names its supernet)."""

    steps: int = 0
    max_kernel: int = 0
    max_filters: int = 0
    max_layers: int = 0


def _within(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    validation_accuracy: float
    seconds: float


class Evaluation(enum.Enum):
    """How a result's accuracies were obtained; only FULL and TABLE are ground truth."""

    FULL = "full"  # trained from scratch with the request's settings
    TABLE = "table"  # replayed from a tabular benchmark
    SIMULATED = "simulated"  # a surrogate, nothing trained
    SHARED = "shared"  # a few steps on shared weights (ENAS), evaluated under them

    @classmethod
    def of_device(cls, device: str) -> Evaluation:
        """What a result from a trainer that does not say meant: its device told."""
        return {"table": cls.TABLE, "simulated": cls.SIMULATED}.get(device, cls.FULL)


@dataclass(frozen=True)
class TrainOutcome:
    validation_accuracy: float  # best over all epochs
    validation_accuracy_last5: float  # max over the last five epochs (Zoph & Le)
    test_accuracy: float  # of the best-validation weights; never a reward
    params: int
    flops: int
    seconds: float
    device: str
    architecture: str
    curve: tuple[EpochRecord, ...] = field(default_factory=tuple)
    stopped_early: bool = False
    train_examples: int = 0
    validation_examples: int = 0
    test_examples: int = 0
    weights_id: str = ""  # the trainer's name for the best-validation weights; "" if none kept
    evaluation: Evaluation = Evaluation.FULL
    supernet_step: int = 0  # SHARED: the supernet's step counter after this child's steps
    shared_steps: int = 0  # SHARED: the steps this call trained on the shared weights

    def to_json(self) -> dict[str, Any]:
        """All fields as plain data, plus ``accuracy`` (= best validation accuracy)."""
        data = asdict(self)
        data["accuracy"] = self.validation_accuracy
        data["evaluation"] = self.evaluation.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainOutcome:
        known = {f for f in cls.__dataclass_fields__ if f not in ("curve", "evaluation")}
        curve = tuple(EpochRecord(**e) for e in data.get("curve", ()))
        evaluation = (
            Evaluation(data["evaluation"])
            if "evaluation" in data  # stored before the field: the device tells
            else Evaluation.of_device(str(data.get("device", "")))
        )
        fields = {k: v for k, v in data.items() if k in known}
        return cls(curve=curve, evaluation=evaluation, **fields)


def weights_id(architecture: str, dataset: str, settings: TrainSettings) -> str:
    """The name under which a trainer keeps the trained weights of ``architecture`` (canonical
    text) trained on ``dataset`` with ``settings``: 32 hex digits, the same for the same run
    on any machine, so a client can ask for the weights of a leaderboard entry."""
    s = asdict(settings.validate())
    s["learning_rate"] = settings.lr
    text = json.dumps([architecture, dataset, s], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
