"""The parts of a search's settings that stand on their own: warm start, constraints and
screening (plain data, each checked by its ``validate``), and the error that names a bad
setting. ``controller_service.spec`` assembles them into a ``SearchSpec``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nasrl.core.search_choices import (
    ACQUISITIONS,
    CONVERGENCE_ACTIONS,
    COST_METRICS,
    EXPLORATION_DRAWS,
    SCREENING_SCORES,
)

__all__ = [
    "SpecError",
    "WarmStart",
    "Constraints",
    "COST_METRICS",
    "Screening",
    "Convergence",
    "ACQUISITIONS",
    "CONVERGENCE_ACTIONS",
    "SCREENING_SCORES",
    "MAX_PRIORS",
    "MAX_PRETRAIN_STEPS",
]

MAX_PRIORS = 1000
MAX_PRETRAIN_STEPS = 1000


class SpecError(ValueError):
    """A search setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class WarmStart:
    """Known-good networks to start from: ``architectures`` (canonical text) are handed out
    first, in order; ``search_id`` names an earlier search on the same dataset and training
    settings whose results are all reused (never trained again) and whose best ``top`` are
    priors too. Every agent pre-trains on the priors (``Agent.pretrain``) and learns from
    their results like from any other."""

    architectures: tuple[str, ...] = ()
    search_id: str = ""
    top: int = 10
    pretrain_steps: int = 50
    pretrain_learning_rate: float = 0.01

    def validate(self) -> WarmStart:
        if len(self.architectures) > MAX_PRIORS:
            raise SpecError(
                f"warm_start.architectures lists {len(self.architectures)} "
                f"networks; at most {MAX_PRIORS}"
            )
        if not 0 <= self.top <= MAX_PRIORS:
            raise SpecError(f"warm_start.top must be between 0 and {MAX_PRIORS}, got {self.top}")
        if not 0 <= self.pretrain_steps <= MAX_PRETRAIN_STEPS:
            raise SpecError(
                f"warm_start.pretrain_steps must be between 0 and "
                f"{MAX_PRETRAIN_STEPS}, got {self.pretrain_steps}"
            )
        if not (
            math.isfinite(self.pretrain_learning_rate) and 0 < self.pretrain_learning_rate <= 1
        ):
            raise SpecError(
                "warm_start.pretrain_learning_rate must be in (0, 1], got "
                f"{self.pretrain_learning_rate}"
            )
        return self

    @property
    def active(self) -> bool:
        return bool(self.architectures or self.search_id)


@dataclass(frozen=True)
class Constraints:
    """Hard limits (0 = none): a proposal over them is rejected before training, costs no
    budget and is learnt as a failure. And a MnasNet-style cost-aware reward (Tan et al.
    2019): ``reward × (cost / cost_target)^cost_weight`` with ``cost`` the network's params or
    FLOPs (``cost_metric``; "" = plain reward) and ``cost_weight`` negative (MnasNet's soft
    constraint: -0.07): a network at the target keeps its reward, one twice as big loses
    about 5 %."""

    max_params: int = 0
    max_flops: int = 0
    cost_metric: str = ""
    cost_target: float = 0.0
    cost_weight: float = -0.07

    def validate(self) -> Constraints:
        for name, value in (("max_params", self.max_params), ("max_flops", self.max_flops)):
            if not 0 <= value < 2**63:
                raise SpecError(f"constraints.{name} must be 0 (no limit) or positive, got {value}")
        if self.cost_metric not in ("", *COST_METRICS):
            raise SpecError(
                f"constraints.cost_metric must be one of {', '.join(COST_METRICS)} (or empty "
                f"for no cost term), got {self.cost_metric!r}"
            )
        if self.cost_metric:
            if not (math.isfinite(self.cost_target) and self.cost_target > 0):
                raise SpecError(
                    "constraints.cost_target must be a positive number of "
                    f"{self.cost_metric} when cost_metric is set, "
                    f"got {self.cost_target}"
                )
            if not (math.isfinite(self.cost_weight) and -10 <= self.cost_weight <= 0):
                raise SpecError(
                    "constraints.cost_weight must be between -10 and 0 "
                    f"(MnasNet uses -0.07), got {self.cost_weight}"
                )
        return self

    def violation(self, params: int, flops: int) -> str | None:
        """Why a network of this size is rejected, or None."""
        if self.max_params and params > self.max_params:
            return f"{params:,} parameters exceed max_params {self.max_params:,}"
        if self.max_flops and flops > self.max_flops:
            return f"{flops:,} FLOPs exceed max_flops {self.max_flops:,}"
        return None

    def cost_factor(self, params: int, flops: int) -> float:
        """(cost / target)^weight, 1 without a cost term."""
        if not self.cost_metric:
            return 1.0
        cost = max(1, params if self.cost_metric == "params" else flops)
        return float((cost / self.cost_target) ** self.cost_weight)


@dataclass(frozen=True)
class Screening:
    """Screening (see ``nasrl.core.scoring`` and ``controller_service.predictor``): ``factor``
    proposals per child trained, the best by ``score`` handed out; "" = none. With
    ``score = "predictor"``: a model of the search's own results ranks the proposals by
    ``acquisition`` (``kappa``: UCB's weight on the ensemble's spread), refitted after every
    ``refit_every`` results; before ``cold_start_results`` results ``cold_start_score`` ranks
    them ("" = no screening until then)."""

    score: str = ""
    factor: int = 4
    acquisition: str = "ucb"
    kappa: float = 0.5
    cold_start_results: int = 10
    cold_start_score: str = ""
    refit_every: int = 10

    def validate(self) -> Screening:
        if self.score not in ("", *SCREENING_SCORES):
            raise SpecError(
                f"screening.score must be one of {', '.join(SCREENING_SCORES)} (or empty for "
                f"no screening), got {self.score!r}"
            )
        if not 2 <= self.factor <= 64:
            raise SpecError(f"screening.factor must be between 2 and 64, got {self.factor}")
        if self.acquisition not in ACQUISITIONS:
            raise SpecError(
                f"screening.acquisition must be one of {', '.join(ACQUISITIONS)}, "
                f"got {self.acquisition!r}"
            )
        if not (math.isfinite(self.kappa) and 0 <= self.kappa <= 10):
            raise SpecError(f"screening.kappa must be between 0 and 10, got {self.kappa}")
        if not 2 <= self.cold_start_results <= 1000:
            raise SpecError(
                "screening.cold_start_results must be between 2 and 1000, "
                f"got {self.cold_start_results}"
            )
        cold = tuple(s for s in SCREENING_SCORES if s != "predictor")
        if self.cold_start_score not in ("", *cold):
            raise SpecError(
                f"screening.cold_start_score must be one of {', '.join(cold)} (or empty for no "
                f"screening before the predictor is fitted), got {self.cold_start_score!r}"
            )
        if not 1 <= self.refit_every <= 1000:
            raise SpecError(
                f"screening.refit_every must be between 1 and 1000, got {self.refit_every}"
            )
        return self

    @property
    def learnt(self) -> bool:
        """Whether proposals are ranked by the predictor (once it is fitted)."""
        return self.score == "predictor"


@dataclass(frozen=True)
class Convergence:
    """A converged agent (``patience`` known proposals in a row): ``explore`` adds a proposal
    per child while it lasts — ``draws`` "mutations" (the default): one decision changed in one
    of the ``top`` best results so far, a uniform draw when none of those is new; "uniform":
    drawn uniformly from the space (when the search screens, the best-scoring new one of
    ``factor`` draws) —, ``end`` ends the search. Mutations became the default on 2026-12-07
    (never worse than uniform draws on the three tables at 200 and 500 evaluations, better on
    the Zoph table); a search stored before then keeps the uniform draws it was created with."""

    patience: int = 100
    action: str = "explore"
    draws: str = "mutations"
    top: int = 5

    def validate(self) -> Convergence:
        if not 1 <= self.patience <= 1_000_000:
            raise SpecError(
                f"convergence.patience must be between 1 and 1,000,000, got {self.patience}"
            )
        if self.action not in CONVERGENCE_ACTIONS:
            raise SpecError(
                f"convergence.action must be one of {', '.join(CONVERGENCE_ACTIONS)}, "
                f"got {self.action!r}"
            )
        if self.draws not in EXPLORATION_DRAWS:
            raise SpecError(
                f"convergence.draws must be one of {', '.join(EXPLORATION_DRAWS)}, "
                f"got {self.draws!r}"
            )
        if not 1 <= self.top <= 1000:
            raise SpecError(f"convergence.top must be between 1 and 1,000, got {self.top}")
        if self.top != Convergence.top and self.draws != "mutations":
            raise SpecError(
                "convergence.top sets how many best results are mutated; it needs "
                'convergence.draws "mutations"'
            )
        return self
