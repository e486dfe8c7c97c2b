"""Early-stopping rules: after each epoch of a child, CONTINUE or STOP, from the validation
accuracies that this search's children reported so far. Pure domain code: the caller keeps
the reports (the controller in its database, the tabular benchmark in memory) and replays
them into a rule, so a restarted controller decides exactly as before.

* ``none`` — never stop (the papers' behaviour).
* ``median`` — Vizier's median stopping rule (Golovin et al. 2017): at epoch ``e`` (from
  ``grace`` on) stop a child whose best accuracy so far is strictly below the median, over the
  other children that reached epoch ``e``, of their running mean accuracy up to ``e``; decided
  only once at least ``min_children`` others have reached ``e``.
* ``asha`` — asynchronous successive halving (Li et al. 2020), as Ray Tune states it: rungs at
  ``r``, ``r·η``, ``r·η²``, … epochs below the planned epochs; a child that reaches a rung
  continues only if its accuracy there is at least the (1 − 1/η) quantile of the accuracies
  recorded at that rung before it (the first child at a rung always continues), i.e. while it
  is in the top 1/η of what reached that rung.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Decision", "StoppingRule", "StoppingSettings", "RULES", "make_rule"]

RULES = ("none", "median", "asha")


class Decision(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"


@dataclass(frozen=True)
class StoppingSettings:
    rule: str = "none"
    eta: int = 3  # asha: reduction factor
    min_epochs: int = 1  # asha: the first rung (r)
    grace: int = 1  # median: no decision before this epoch
    min_children: int = 3  # median: others needed at an epoch before it may stop anyone

    def validate(self) -> StoppingSettings:
        if self.rule not in RULES:
            raise ValueError(f"early_stopping must be one of {', '.join(RULES)}, got {self.rule!r}")
        for name, value, low in (
            ("eta", self.eta, 2),
            ("min_epochs", self.min_epochs, 1),
            ("grace", self.grace, 1),
            ("min_children", self.min_children, 1),
        ):
            if not low <= value <= 1000:
                raise ValueError(
                    f"early stopping {name} must be between {low} and 1000, got {value}"
                )
        return self


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), q in [0, 1]."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class StoppingRule:
    """One search's rule with what it has seen. ``decide`` is called once per (child, epoch)
    in report order; replaying the same reports gives the same decisions."""

    settings: StoppingSettings
    epochs: int  # planned epochs per child
    curves: dict[int, list[float]] = field(default_factory=dict)  # child -> accuracies so far
    rungs: dict[int, list[float]] = field(default_factory=dict)  # asha: epoch -> recorded

    def rung_epochs(self) -> list[int]:
        s = self.settings
        out, e = [], s.min_epochs
        while e < self.epochs:
            out.append(e)
            e *= s.eta
        return out

    def decide(self, child: int, epoch: int, accuracy: float) -> Decision:
        """Record ``accuracy`` after ``epoch`` (1-based) of ``child`` and decide."""
        curve = self.curves.setdefault(child, [])
        if epoch != len(curve) + 1:
            raise ValueError(f"child {child}: epoch {epoch} reported after {len(curve)} epochs")
        curve.append(accuracy)
        if epoch >= self.epochs or self.settings.rule == "none":
            return Decision.CONTINUE
        if self.settings.rule == "median":
            return self._median(child, epoch)
        return self._asha(epoch, accuracy)

    def _median(self, child: int, epoch: int) -> Decision:
        s = self.settings
        if epoch < s.grace:
            return Decision.CONTINUE
        means = [
            statistics.fmean(c[:epoch])
            for k, c in self.curves.items()
            if k != child and len(c) >= epoch
        ]
        if len(means) < s.min_children:
            return Decision.CONTINUE
        best = max(self.curves[child])
        return Decision.STOP if best < statistics.median(means) else Decision.CONTINUE

    def _asha(self, epoch: int, accuracy: float) -> Decision:
        if epoch not in self.rung_epochs():
            return Decision.CONTINUE
        recorded = self.rungs.setdefault(epoch, [])
        cutoff = _quantile(recorded, 1 - 1 / self.settings.eta) if recorded else None
        recorded.append(accuracy)
        if cutoff is not None and accuracy < cutoff:
            return Decision.STOP
        return Decision.CONTINUE

    def replay(self, reports: Iterable[tuple[int, int, float]]) -> None:
        """Feed stored (child, epoch, accuracy) reports, in their order, to rebuild the state."""
        for child, epoch, accuracy in reports:
            self.decide(child, epoch, accuracy)


def make_rule(settings: StoppingSettings, epochs: int) -> StoppingRule:
    return StoppingRule(settings.validate(), epochs)
