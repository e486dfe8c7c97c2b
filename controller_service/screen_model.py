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

from controller_service.predictor import Predictor, acquire
from controller_service.spaces import Space, encode
from controller_service.spec_parts import Screening
from controller_service.store import Trained
from nasrl.core.arch import Architecture, parse

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
        space = self.predictor.space
        mean, std = self.predictor.predict([encode(space, a) for a in archs], sizes)
        s = self.screening
        return [float(v) for v in acquire(mean, std, self.best, s.acquisition, s.kappa)]


def fit(screening: Screening, space: Space, seed: int, results: Sequence[Trained]) -> Fitted:
    """The model of the first ``len(results)`` results (``space``: the search's bound space)."""
    predictor = Predictor(space, seed % _SEEDS)
    decisions = [encode(space, parse(r.arch)) for r in results]
    rewards = [r.reward for r in results]
    predictor.fit(decisions, [(r.params, r.flops) for r in results], rewards)
    return Fitted(len(results), predictor, max(rewards), screening)
