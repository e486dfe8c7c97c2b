"""How a search evaluates its children (``SearchEvaluation``): trained fully, as in the
papers, or under shared weights (ENAS, Pham et al. 2018) on a ``--supernet`` trainer, with an
optional uniform warm-up of the supernet before the agent learns and an optional final stage
that trains the best ``top_k`` networks fully. Plain data and checks; which child is handed
out how is ``stages.py``'s."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from controller_service.spec_parts import SpecError
from nasrl.core.results import Evaluation, SharedTraining, TrainOutcome

__all__ = [
    "EvaluationMode",
    "SearchEvaluation",
    "MAX_SHARED_STEPS",
    "shared_training",
    "evaluation_conflict",
]

MAX_SHARED_STEPS = 100_000  # a --supernet trainer's limit per child


class EvaluationMode(StrEnum):
    FULL = "full"  # every child trained from scratch
    SHARED = "shared"  # every child scored under a supernet's shared weights


@dataclass(frozen=True)
class SearchEvaluation:
    """``mode`` FULL or SHARED; for SHARED: ``steps`` of the shared weights per child (0: the
    trainer's ``--supernet-steps``), ``warmup_children`` drawn uniformly from the space (the
    agent neither proposes nor learns from them) and ``top_k`` networks trained fully once the
    budget's shared children are all reported."""

    mode: str = EvaluationMode.FULL.value
    steps: int = 0
    warmup_children: int = 0
    top_k: int = 0

    def __post_init__(self) -> None:
        # a plain string: specs are plain data (stored as JSON, loaded with weights_only)
        object.__setattr__(self, "mode", str(self.mode))

    @property
    def shared(self) -> bool:
        return self.mode == EvaluationMode.SHARED

    def validate(self, space: Space, budget: int) -> SearchEvaluation:
        """Raises SpecError with what to change."""
        if self.mode not in tuple(EvaluationMode):
            raise SpecError(f"evaluation.mode must be FULL or SHARED, got {self.mode!r}")
        if not self.shared:
            for name in ("steps", "warmup_children", "top_k"):
                if getattr(self, name):
                    raise SpecError(
                        f"evaluation.{name} only applies to SHARED evaluation (weight "
                        "sharing); set evaluation.mode to SHARED or leave it at 0"
                    )
            return self
        if not 0 <= self.steps <= MAX_SHARED_STEPS:
            raise SpecError(
                f"evaluation.steps must be between 0 and {MAX_SHARED_STEPS:,}, got {self.steps}"
            )
        for name in ("warmup_children", "top_k"):
            value = getattr(self, name)
            if not 0 <= value <= budget:
                raise SpecError(
                    f"evaluation.{name} must be between 0 and the budget ({budget}), got {value}"
                )
        shared_training(self, space)  # the space must have a supernet
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "steps": self.steps,
            "warmup_children": self.warmup_children,
            "top_k": self.top_k,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SearchEvaluation:
        """A stored setting; None (a search stored before evaluation settings): FULL."""
        return cls(**data) if data else cls()


def shared_training(evaluation: SearchEvaluation, space: Space) -> SharedTraining:
    """What a ``--supernet`` trainer needs to train a child of ``space``: the steps and, for a
    layer space, the maxima that size its supernet. SpecError for a space without one."""
    steps = evaluation.steps
    if isinstance(space, Nb201Space):  # the child's skeleton names its supernet
        return SharedTraining(steps)
    if isinstance(space, ZophSpace):
        return SharedTraining(steps, max(space.filter_sizes), max(space.filters), space.max_layers)
    if isinstance(space, MetaQNNSpace) and space.max_fc == 0:
        # pooling and GAP need no weights; GAP may follow max_depth layers
        return SharedTraining(
            steps, max(space.conv_sizes), max(space.conv_filters), space.max_depth + 1
        )
    raise SpecError(
        f"SHARED evaluation needs a space with a supernet: zoph, nb201, or metaqnn without FC "
        f"layers (max_fc 0); the {space.name} space given has FC layers, which share no "
        "weights: set its max_fc to 0 or use FULL evaluation"
    )


def evaluation_conflict(cid: int, shared: bool, outcome: TrainOutcome) -> str | None:
    """Why a result of candidate ``cid``, handed out for shared (``shared``) or full
    evaluation, cannot be its result; None when it fits."""
    got = outcome.evaluation
    if shared and got is not Evaluation.SHARED:
        return (
            f"candidate {cid} was handed out for evaluation under shared weights "
            f"(Candidate.shared), but its result says {got.name}: train it on a --supernet "
            "trainer with TrainRequest.shared set from the candidate"
        )
    if not shared and got is Evaluation.SHARED:
        return (
            f"candidate {cid} was handed out for full training, but its result was evaluated "
            "under shared weights (SHARED): train it on a trainer without --supernet"
        )
    return None
