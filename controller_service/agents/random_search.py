"""Random search: every decision uniform over the space. The baseline every claim of an RL
agent is measured against (NAS-Bench-101 shows it hard to beat)."""

from __future__ import annotations

import random
from typing import Any, ClassVar

from controller_service.agents.base import Agent, AgentSettingsError, Decisions, Proposal, resolve_settings
from controller_service.search_space import ZOPH_DECISIONS, ZophSpace

__all__ = ["RandomAgent"]


class RandomAgent(Agent):
    name = "random"
    defaults: ClassVar[dict[str, Any]] = {"layers": 0}  # 0: the space's max_layers
    default_reward = "accuracy"

    def __init__(self, space: ZophSpace, settings: dict[str, Any] | None = None,
                 seed: int = 0) -> None:
        if not isinstance(space, ZophSpace):
            raise AgentSettingsError(f"agent 'random' cannot search the {space.name!r} space")
        self.space = space
        self.settings = resolve_settings(type(self), settings or {})
        layers = int(self.settings["layers"]) or space.max_layers
        if not 1 <= layers <= space.max_layers:
            raise AgentSettingsError(
                f"layers must be between 1 and the space's max_layers ({space.max_layers}), "
                f"got {layers}"
            )
        self.layers = layers
        self.rng = random.Random(seed)
        self.samples = 0
        self.updates = 0

    def sample(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            tokens = [
                [self.rng.randrange(len(self.space.choices(d))) for d in ZOPH_DECISIONS]
                for _ in range(self.layers)
            ]
            skips = [[self.rng.randrange(2) for _ in range(i)] for i in range(self.layers)]
            decisions = {"tokens": tokens, "skips": skips}
            out.append(Proposal(self.space.decode(tokens, skips), decisions))
        self.samples += n
        return out

    def update(self, decisions: Decisions, reward: float | None) -> None:
        self.updates += 1  # random search learns nothing

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "samples": self.samples,
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.samples, self.updates = state["samples"], state["updates"]

    def progress(self) -> dict[str, float]:
        return {"samples": float(self.samples), "updates": float(self.updates)}
