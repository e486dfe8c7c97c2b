"""The settings of a search (``SearchSpec``) and the reward definitions. Plain data."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from controller_service.agents import DEFAULT_SPACE, Agent, AgentSettingsError, agent_class
from controller_service.agents.space_ops import Space
from controller_service.metaqnn_space import MetaQNNSpace
from controller_service.search_space import SpaceError, ZophSpace
from controller_service.stopping import StoppingSettings
from nasrl.datasets import DATASET_SHAPES, input_shape
from nasrl.results import TrainSettings

__all__ = ["SearchSpec", "SpecError", "REWARDS", "reward_of", "named_space"]

REWARDS = ("zoph", "accuracy")
MAX_BUDGET = 1_000_000
MAX_NAME = 200


class SpecError(ValueError):
    """A search setting that cannot be used; the message names it."""


SPACES: dict[str, type[ZophSpace] | type[MetaQNNSpace]] = {
    "zoph": ZophSpace, "metaqnn": MetaQNNSpace,
}


def named_space(name: str) -> Space:
    """A space with its paper defaults by name."""
    try:
        return SPACES[name]()
    except KeyError:
        raise SpecError(f"unknown search space {name!r}; choose one of {sorted(SPACES)}") from None


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
    space: Space | None = None  # None: the agent's default space
    dataset: str = "digits"
    training: TrainSettings = field(default_factory=TrainSettings)
    reward: str = ""  # "": the agent's default
    budget: int = 100
    seed: int = 0
    lease_seconds: float = 3600.0
    name: str = ""
    early_stopping: StoppingSettings = field(default_factory=StoppingSettings)

    def validate(self) -> SearchSpec:
        """Check everything and fill the defaults in; raises SpecError naming the setting."""
        if self.dataset not in DATASET_SHAPES:
            raise SpecError(f"unknown dataset {self.dataset!r}; choose one of "
                            f"{', '.join(sorted(DATASET_SHAPES))}")
        try:
            cls = agent_class(self.agent)
            space = self.space or named_space(DEFAULT_SPACE[self.agent])
            space.validate()
            self = replace(self, space=space)
            self.make_agent()  # the agent checks its settings and its space
            self.training.validate()
            self.early_stopping.validate()
        except (AgentSettingsError, SpaceError, ValueError) as exc:
            raise SpecError(str(exc)) from exc
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

    def bound_space(self) -> Space:
        """The space for this search's dataset (MetaQNN's sizes depend on the input)."""
        space = self.space or named_space(DEFAULT_SPACE[self.agent])
        return space.bind(input_shape(self.dataset))

    def make_agent(self) -> Agent:
        """A fresh agent for this search."""
        return agent_class(self.agent)(self.bound_space(), self.agent_settings, self.seed,
                                       self.budget)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.space is not None:
            data["space"] = {"name": self.space.name, **asdict(self.space)}
            data["space"].pop("image", None)  # bound per dataset when the agent is made
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSpec:
        return cls(
            agent=data["agent"],
            agent_settings=dict(data["agent_settings"]),
            space=_space_from_json(data["space"]),
            dataset=data["dataset"],
            training=TrainSettings(**data["training"]),
            reward=data["reward"],
            budget=data["budget"],
            seed=data["seed"],
            lease_seconds=data["lease_seconds"],
            name=data["name"],
            # searches stored before early stopping existed never stop a child
            early_stopping=StoppingSettings(**data.get("early_stopping", {})),
        )


def _space_from_json(data: dict[str, Any] | None) -> Space | None:
    if data is None:
        return None
    fields = {k: v for k, v in data.items() if k != "name"}
    if data["name"] == "metaqnn":
        return MetaQNNSpace(
            conv_sizes=tuple(fields["conv_sizes"]),
            conv_filters=tuple(fields["conv_filters"]),
            pools=tuple((int(k), int(s)) for k, s in fields["pools"]),
            fc_units=tuple(fields["fc_units"]),
            max_depth=int(fields["max_depth"]),
            max_fc=int(fields["max_fc"]),
            fc_max_size=int(fields["fc_max_size"]),
            # searches stored before this setting existed allowed pooling first
            pool_first=bool(fields.get("pool_first", True)),
        )
    return ZophSpace(
        filter_sizes=tuple(fields["filter_sizes"]),
        strides=tuple(fields["strides"]),
        filters=tuple(fields["filters"]),
        max_layers=int(fields["max_layers"]),
        skip_connections=bool(fields["skip_connections"]),
    )
