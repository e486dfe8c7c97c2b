"""What a result teaches the reinforce agent: its advantage over a moving-average baseline
(with ``standardize``, divided by the rewards' moving standard deviation), and the elite — the
best distinct architectures seen, replayed in every policy step with their advantage now."""

from __future__ import annotations

import copy
import math
from typing import Any

from controller_service.agents.controller_lstm import Trajectory

__all__ = ["Advantages"]


class Advantages:
    """The baseline, the rewards' moving variance and the elite of one agent."""

    def __init__(self, decay: float, standardize: bool, elite: int) -> None:
        self.decay, self.standardize, self.size = decay, standardize, elite
        self.baseline: float | None = None
        self.variance: float | None = None  # moving variance of the rewards (standardize)
        self.elite: list[dict[str, Any]] = []  # {"tokens", "skips", "reward"}, best first

    def of(self, r: float) -> float:
        """The advantage of reward ``r``, then the baseline (and variance) updated with it.
        The baseline a result is compared with is the one before its own reward (the first
        result's advantage is 0: the baseline starts at the first reward); with
        ``standardize`` the advantage is divided by the moving standard deviation of the
        rewards (updated with this reward first)."""
        baseline = r if self.baseline is None else self.baseline
        decay = self.decay
        self.baseline = decay * baseline + (1 - decay) * r
        advantage = r - baseline
        if self.standardize:
            previous = advantage**2 if self.variance is None else self.variance
            self.variance = decay * previous + (1 - decay) * advantage**2
            advantage = advantage / self.scale()
        return advantage

    def scale(self) -> float:
        """What advantages are divided by: the rewards' moving standard deviation with
        ``standardize`` (1 while it is 0), else 1."""
        if not self.standardize or not self.variance:
            return 1.0
        return math.sqrt(self.variance)

    def join(self, trajectory: Trajectory, reward: float) -> None:
        """Keep the ``elite`` best distinct architectures seen (the first reward of each)."""
        if not self.size or any(
            e["tokens"] == trajectory.tokens and e["skips"] == trajectory.skips for e in self.elite
        ):
            return
        member = {"tokens": trajectory.tokens, "skips": trajectory.skips, "reward": reward}
        self.elite.append(member)
        self.elite.sort(key=lambda e: -float(e["reward"]))
        del self.elite[self.size :]

    def replay(self) -> list[dict[str, Any]]:
        """The elite members better than the baseline, with their advantage now."""
        if self.baseline is None:
            return []
        out = []
        for e in self.elite:
            advantage = (float(e["reward"]) - self.baseline) / self.scale()
            if advantage > 0:
                out.append({"tokens": e["tokens"], "skips": e["skips"], "advantage": advantage})
        return out

    def state(self) -> dict[str, Any]:
        """Live, not copied: serialise it at once."""
        return {"baseline": self.baseline, "variance": self.variance, "elite": self.elite}

    def load(self, state: dict[str, Any]) -> None:
        baseline, variance = state["baseline"], state["variance"]
        self.baseline = None if baseline is None else float(baseline)
        self.variance = None if variance is None else float(variance)
        self.elite = copy.deepcopy(list(state["elite"]))
