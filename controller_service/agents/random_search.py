"""Random search: every decision uniform over the space. The baseline every claim of an RL
agent is measured against (NAS-Bench-101 shows it hard to beat)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from controller_service.agents.base import (
    Agent,
    AgentSettingsError,
    Decisions,
    Proposal,
    rng_state,
    set_rng_state,
)
from controller_service.agents.proposals import check_space, random_proposal
from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from nasrl.core.agent_settings import RandomSettings

__all__ = ["RandomAgent"]


class RandomAgent(Agent):
    name = "random"
    settings_class = RandomSettings
    default_reward = "accuracy"

    def __init__(
        self,
        space: Space,
        settings: RandomSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> None:
        check_space(self.name, space, (ZophSpace, MetaQNNSpace, Nb201Space))
        self.space = space
        self.settings = RandomSettings.of(settings)
        self.layers = self.settings.layers
        if isinstance(space, ZophSpace):
            self.layers = self.layers or space.max_layers
            if not 1 <= self.layers <= space.max_layers:
                raise AgentSettingsError(
                    f"layers must be between 1 and the space's max_layers ({space.max_layers}), "
                    f"got {self.layers}"
                )
        self.rng = random.Random(seed)
        self.samples = 0
        self.updates = 0

    def sample(self, n: int) -> list[Proposal]:
        self.samples += n
        return [random_proposal(self.space, self.rng, self.layers) for _ in range(n)]

    def update(self, decisions: Decisions, reward: float | None) -> None:
        self.updates += 1  # random search learns nothing

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng), "samples": self.samples, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        set_rng_state(self.rng, state["rng"])
        self.samples, self.updates = state["samples"], state["updates"]

    def progress(self) -> dict[str, float]:
        return {"samples": float(self.samples), "updates": float(self.updates)}
