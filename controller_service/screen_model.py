"""Screening by a predictor learnt from a search's own results (``score = "predictor"``).

Which model ranks a Sample's proposals is a function of the stored results alone, so that a
restarted controller (or the bench's replay) ranks exactly as an uninterrupted one: with n
results recorded, the model is fitted on the first ``fit_size(n)`` of them in the order they
were recorded — ``cold_start_results``, then every ``refit_every`` more — with the search's
seed. Below ``cold_start_results`` there is no model (``cold_start_score`` ranks, or nothing).

The fit itself (``fit``) is plain NumPy/scikit-learn: the caller decides where it runs (the
controller fits before taking the search's lock, see ``Searches.sample``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller_service.agents.base import Proposal
from controller_service.predictor import Predictor, acquire
from controller_service.spaces import Space, encode
from controller_service.spec_parts import Constraints, Screening
from controller_service.store import Trained
from nasrl.core.arch import ArchError, Architecture, parse
from nasrl.core.shapes import InputShape, analyze

__all__ = ["Trained", "Fitted", "fit_size", "fit"]

#: the predictor's seeds (scikit-learn takes 32-bit ones)
_SEEDS = 2**31 - 1


def fit_size(screening: Screening, results: int) -> int:
    """How many of the first results the model for ``results`` recorded ones is fitted on
    (0: no model yet)."""
    if not screening.learnt or results < screening.cold_start_results:
        return 0
    past = results - screening.cold_start_results
    return screening.cold_start_results + past - past % screening.refit_every


@dataclass(frozen=True)
class Fitted:
    """A predictor fitted on the first ``size`` results, and the best reward among them (the
    incumbent expected improvement is measured against)."""

    size: int
    predictor: Predictor
    best: float
    screening: Screening

    def values(
        self, archs: Sequence[Architecture], sizes: Sequence[tuple[int, int]]
    ) -> list[float]:
        """The acquisition value of each network (higher: train it first)."""
        if not archs:
            return []
        mean, std = self._predict(archs, sizes)
        s = self.screening
        return [float(v) for v in acquire(mean, std, self.best, s.acquisition, s.kappa)]

    def rewards(
        self, archs: Sequence[Architecture], sizes: Sequence[tuple[int, int]]
    ) -> list[float]:
        """The predicted reward of each network (the ensemble's mean: model-based steps)."""
        return [float(v) for v in self._predict(archs, sizes)[0]] if archs else []

    def predicted(
        self, proposals: Sequence[Proposal], image: InputShape, constraints: Constraints
    ) -> list[float | None]:
        """``rewards`` of proposals not yet analysed; None for one that the input or the
        constraints reject before training (``Agent.dream``'s ``predict``)."""
        fits: list[int] = []
        sizes: list[tuple[int, int]] = []
        for i, p in enumerate(proposals):
            try:
                size = analyze(p.arch, image)
            except ArchError:
                continue
            if constraints.violation(size.params, size.flops) is None:
                fits.append(i)
                sizes.append((size.params, size.flops))
        out: list[float | None] = [None] * len(proposals)
        for i, value in zip(fits, self.rewards([proposals[i].arch for i in fits], sizes)):
            out[i] = value
        return out

    def _predict(
        self, archs: Sequence[Architecture], sizes: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        space = self.predictor.space
        # proposals of the search's own space: no need to decode them back
        return self.predictor.predict([encode(space, a, verify=False) for a in archs], sizes)


def fit(screening: Screening, space: Space, seed: int, results: Sequence[Trained]) -> Fitted:
    """The model of the first ``len(results)`` results (``space``: the search's bound space)."""
    predictor = Predictor(space, seed % _SEEDS)
    decisions = [encode(space, parse(r.arch)) for r in results]
    rewards = [r.reward for r in results]
    predictor.fit(decisions, [(r.params, r.flops) for r in results], rewards)
    return Fitted(len(results), predictor, max(rewards), screening)
