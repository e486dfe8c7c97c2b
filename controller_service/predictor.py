"""A learned performance predictor: fitted on a search's own results (each network's
decisions, read through ``controller_service.spaces.features``, plus its log parameters and log
FLOPs, which the controller knows of every proposal before training), it scores proposals that
were never trained, so that screening can hand out only the most promising (BANANAS, White et
al. 2021, uses an ensemble of networks; the idea is the same).

The model is an ensemble of scikit-learn gradient-boosted trees (``GradientBoostingRegressor``),
each fitted on a bootstrap resample of the results with its own seed: the ensemble's mean is the
prediction, its spread the uncertainty. scikit-learn is already a dependency (the embedded
``digits`` dataset comes from it), trees need no feature scaling, handle the mix of one-hot and
numeric features of ``controller_service.spaces.features`` and fit a few hundred points in
milliseconds. Plain NumPy in, plain floats out; no torch, no I/O.

Acquisition (which proposal to train): ``ucb`` — mean + ``kappa`` · std (default κ = 0.5);
``ei`` — expected improvement over the best result so far, (μ − best) Φ(z) + σ φ(z) with
z = (μ − best) / σ; ``mean`` — the prediction alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from sklearn.ensemble import GradientBoostingRegressor

from controller_service.spaces import Decisions, Space
from controller_service.spaces.features import features
from controller_service.spec_parts import ACQUISITIONS

__all__ = ["Predictor", "PredictorSettings", "ACQUISITIONS", "acquire"]


@dataclass(frozen=True)
class PredictorSettings:
    members: int = 5  # trees fitted on bootstrap resamples
    trees: int = 100  # boosting rounds of each member
    depth: int = 3
    learning_rate: float = 0.1


class Predictor:
    """Fit on (decisions, accuracy) pairs of one space; predict mean and std of unseen ones."""

    def __init__(self, space: Space, seed: int = 0, settings: PredictorSettings | None = None):
        self.space = space
        self.seed = seed
        self.settings = settings or PredictorSettings()
        self.members: list[GradientBoostingRegressor] = []
        self.fitted_on = 0  # results in the last fit
        self._stages: _Stages | None = None

    def matrix(
        self, decisions: Sequence[Decisions], sizes: Sequence[tuple[int, int]]
    ) -> np.ndarray:
        """The space's features of each network, then log params and log FLOPs (sizes)."""
        if len(sizes) != len(decisions):
            raise ValueError(f"{len(decisions)} networks but {len(sizes)} (params, flops) pairs")
        logs = np.log1p(np.asarray(sizes, dtype=np.float64).reshape(len(sizes), 2))
        return np.hstack([np.stack([features(self.space, d) for d in decisions]), logs])

    def fit(
        self,
        decisions: Sequence[Decisions],
        sizes: Sequence[tuple[int, int]],
        accuracy: Sequence[float],
    ) -> None:
        """Fit every member on a bootstrap resample (seeded: the same results give the same
        predictor). Needs at least two results."""
        if len(decisions) != len(accuracy) or len(decisions) < 2:
            raise ValueError(
                f"a predictor needs at least 2 results and one accuracy each, got "
                f"{len(decisions)} and {len(accuracy)}"
            )
        x, y = self.matrix(decisions, sizes), np.asarray(accuracy, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        s = self.settings
        members = []
        for m in range(s.members):
            rows = rng.integers(0, len(y), len(y)) if s.members > 1 else np.arange(len(y))
            model = GradientBoostingRegressor(
                n_estimators=s.trees,
                max_depth=s.depth,
                learning_rate=s.learning_rate,
                random_state=(self.seed * 1000 + m) % 2**32,
            )
            model.fit(x[rows], y[rows])
            members.append(model)
        self.members = members
        self.fitted_on = len(y)
        self._stages = _Stages.of(members, x[:8])

    @property
    def ready(self) -> bool:
        return bool(self.members)

    def predict(
        self, decisions: Sequence[Decisions], sizes: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) over the ensemble for each network ((params, flops) in ``sizes``)."""
        if not self.members:
            raise RuntimeError("the predictor has not been fitted")
        x = self.matrix(decisions, sizes)
        if self._stages is not None:
            preds = self._stages.predict(x)
        else:
            preds = np.stack([m.predict(x) for m in self.members])
        return preds.mean(axis=0), preds.std(axis=0)


class _Stages:
    """The members' predictions without scikit-learn's per-call input checks, which cost
    ~0.5 ms per member per call, most of a screened Sample: the init constant plus the trees'
    sum, by scikit-learn's own ``predict_stages`` (as ``GradientBoostingRegressor.predict``
    computes it). ``of`` returns None — and ``predict`` falls back to the public call — when
    that function is missing or disagrees with ``predict`` on the fit's first rows."""

    def __init__(self, members: list[GradientBoostingRegressor], run: Any) -> None:
        self.members, self.run = members, run
        self.init = [float(m.init_.constant_.reshape(-1)[0]) for m in members]

    @classmethod
    def of(cls, members: list[GradientBoostingRegressor], x: np.ndarray) -> _Stages | None:
        try:
            from sklearn.ensemble._gradient_boosting import predict_stages

            stages = cls(members, predict_stages)
            same = np.allclose(stages.predict(x), np.stack([m.predict(x) for m in members]))
        except (ImportError, AttributeError, TypeError, ValueError):
            return None
        return stages if same else None

    def predict(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty((len(self.members), len(x32)))
        for i, m in enumerate(self.members):
            raw = np.full((len(x32), 1), self.init[i])
            self.run(m.estimators_, x32, m.learning_rate, raw)
            out[i] = raw[:, 0]
        return out


def acquire(
    mean: np.ndarray, std: np.ndarray, best: float, rule: str, kappa: float = 0.5
) -> np.ndarray:
    """The acquisition value of each prediction (higher: train it first)."""
    if rule == "mean":
        return mean
    if rule == "ucb":
        return mean + kappa * std
    if rule == "ei":
        sigma = np.maximum(std, 1e-12)
        z = (mean - best) / sigma
        cdf = 0.5 * (1.0 + special.erf(z / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        out: np.ndarray = (mean - best) * cdf + sigma * pdf
        return out
    raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, got {rule!r}")
