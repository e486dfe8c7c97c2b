"""Regularized evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search"), in the Zoph, MetaQNN or NB201 space (in NB201 a mutation changes one
edge's operation, as in NAS-Bench-201's REA).

The first ``population`` proposals are random. After that each proposal is a mutation (one
decision changed) of the best of ``sample_size`` members drawn at random from the population.
Every result joins the population; past ``population`` members the oldest dies — by age, not
by fitness, which is what "regularized" means. Results may arrive late or out of order: a
proposal made while the population is still filling is random, as in the paper's
asynchronous workers.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

from controller_service.agents.base import (
    Agent,
    Decisions,
    Proposal,
    rng_state,
    set_rng_state,
)
from controller_service.agents.proposals import check_space, mutate_proposal, random_proposal
from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from nasrl.core.agent_settings import EvolutionSettings

__all__ = ["EvolutionAgent"]


class EvolutionAgent(Agent):
    name = "evolution"
    default_reward = "accuracy"
    settings_class = EvolutionSettings

    def __init__(
        self,
        space: Space,
        settings: EvolutionSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> None:
        check_space(self.name, space, (ZophSpace, MetaQNNSpace, Nb201Space))
        self.space = space
        s = self.settings = EvolutionSettings.of(settings)
        self.population_size = s.population
        self.sample_size = s.sample_size
        self.failure_reward = s.failure_reward
        self.layers = s.layers or getattr(space, "max_layers", 0)
        self.rng = random.Random(seed)
        self.population: deque[tuple[Decisions, float]] = deque()
        self.samples = 0
        self.results = 0

    def _parent(self) -> Decisions:
        contenders = self.rng.sample(list(self.population), self.sample_size)
        return max(contenders, key=lambda member: member[1])[0]

    def sample(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            if self.samples < self.population_size or len(self.population) < self.sample_size:
                out.append(random_proposal(self.space, self.rng, self.layers))
            else:
                out.append(mutate_proposal(self.space, self._parent(), self.rng))
            self.samples += 1
        return out

    def pretrain(self, priors: list[Decisions], steps: int, learning_rate: float) -> None:
        """Warm start: the priors are members of the initial population (their results join
        it through ``update``), so only ``population - len(priors)`` random networks follow
        them before mutation begins."""
        self.samples += len(priors)

    def update(self, decisions: Decisions, reward: float | None) -> None:
        r = self.failure_reward if reward is None else float(reward)
        if not math.isfinite(r):
            raise ValueError(f"reward must be finite, got {reward!r}")
        member = {k: v for k, v in decisions.items() if k in ("tokens", "skips", "path")}
        self.population.append((member, r))
        if len(self.population) > self.population_size:
            self.population.popleft()  # the oldest dies
        self.results += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "population": [[d, r] for d, r in self.population],
            "rng": rng_state(self.rng),
            "samples": self.samples,
            "results": self.results,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = deque((dict(d), float(r)) for d, r in state["population"])
        set_rng_state(self.rng, state["rng"])
        self.samples, self.results = int(state["samples"]), int(state["results"])

    def progress(self) -> dict[str, float]:
        rewards = [r for _, r in self.population]
        return {
            "samples": float(self.samples),
            "updates": float(self.results),
            "population": float(len(self.population)),
            "population_best": max(rewards) if rewards else 0.0,
        }
