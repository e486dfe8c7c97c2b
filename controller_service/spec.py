"""The settings of a search (``SearchSpec``) and the reward definitions. Plain data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from controller_service.agents import AgentSettingsError, agent_class
from controller_service.search_space import SpaceError, ZophSpace
from nasrl.datasets import DATASET_SHAPES
from nasrl.results import TrainSettings

__all__ = ["SearchSpec", "SpecError", "REWARDS", "reward_of"]

REWARDS = ("zoph", "accuracy")
MAX_BUDGET = 1_000_000
MAX_NAME = 200


class SpecError(ValueError):
    """A search setting that cannot be used; the message names it."""


def reward_of(kind: str, outcome: dict[str, Any]) -> float:
    """The reward of a training outcome: ``zoph`` = (max validation accuracy of the last 5
    epochs)^3 (Zoph & Le), ``accuracy`` = best validation accuracy."""
    if kind == "zoph":
        return float(outcome["validation_accuracy_last5"]) ** 3
    return float(outcome["validation_accuracy"])


@dataclass(frozen=True)
class SearchSpec:
    agent: str = "reinforce"
    agent_settings: dict[str, Any] = field(default_factory=dict)
    space: ZophSpace = field(default_factory=ZophSpace)
    dataset: str = "digits"
    training: TrainSettings = field(default_factory=TrainSettings)
    reward: str = ""  # "": the agent's default
    budget: int = 100
    seed: int = 0
    lease_seconds: float = 3600.0
    name: str = ""

    def validate(self) -> SearchSpec:
        """Check everything and fill the defaults in; raises SpecError naming the setting."""
        try:
            cls = agent_class(self.agent)
            self.space.validate()
            cls(self.space, self.agent_settings, self.seed)  # the agent checks its settings
            self.training.validate()
        except (AgentSettingsError, SpaceError, ValueError) as exc:
            raise SpecError(str(exc)) from exc
        if self.dataset not in DATASET_SHAPES:
            raise SpecError(f"unknown dataset {self.dataset!r}; choose one of "
                            f"{', '.join(sorted(DATASET_SHAPES))}")
        reward = self.reward or cls.default_reward
        if reward not in REWARDS:
            raise SpecError(f"reward must be one of {REWARDS}, got {reward!r}")
        if not 1 <= self.budget <= MAX_BUDGET:
            raise SpecError(f"budget must be between 1 and {MAX_BUDGET:,}, got {self.budget}")
        if not (math.isfinite(self.lease_seconds) and 1 <= self.lease_seconds <= 7 * 86400):
            raise SpecError(f"lease_seconds must be between 1 and 604800, got {self.lease_seconds}")
        if not 0 <= self.seed < 2**63:
            raise SpecError(f"seed must be between 0 and 2^63-1, got {self.seed}")
        if len(self.name) > MAX_NAME:
            raise SpecError(f"name must be at most {MAX_NAME} characters, got {len(self.name)}")
        return replace(self, reward=reward)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSpec:
        space = data["space"]
        return cls(
            agent=data["agent"],
            agent_settings=dict(data["agent_settings"]),
            space=ZophSpace(
                filter_sizes=tuple(space["filter_sizes"]),
                strides=tuple(space["strides"]),
                filters=tuple(space["filters"]),
                max_layers=int(space["max_layers"]),
                skip_connections=bool(space["skip_connections"]),
            ),
            dataset=data["dataset"],
            training=TrainSettings(**data["training"]),
            reward=data["reward"],
            budget=data["budget"],
            seed=data["seed"],
            lease_seconds=data["lease_seconds"],
            name=data["name"],
        )
