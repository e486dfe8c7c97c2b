"""The settings of a search (``SearchSpec``) and the reward definitions. Plain data."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from controller_service.agents import DEFAULT_SPACE, Agent, AgentSettingsError, agent_class
from controller_service.evaluation import SearchEvaluation
from controller_service.spaces import (
    MetaQNNSpace,
    Nb201Space,
    Space,
    SpaceError,
    ZophSpace,
    encode,
)
from controller_service.spec_parts import (
    COST_METRICS,
    SCREENING_SCORES,
    Constraints,
    Convergence,
    Screening,
    SpecError,
    WarmStart,
)
from controller_service.stopping import StoppingSettings
from nasrl.core.agent_settings import AgentSettings, settings_class
from nasrl.core.arch import ArchError, canonical, format_arch, parse
from nasrl.core.cell import Skeleton
from nasrl.core.datasets import DATASET_SHAPES
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape, analyze

__all__ = [
    "SearchSpec",
    "SpecError",
    "REWARDS",
    "Reward",
    "reward_of",
    "named_space",
    "WarmStart",
    "Constraints",
    "COST_METRICS",
    "Screening",
    "SCREENING_SCORES",
    "Convergence",
]


class Reward(StrEnum):
    """What a result is worth to the agent."""

    ZOPH = "zoph"  # (max validation accuracy of the last 5 epochs)^3, Zoph & Le
    ACCURACY = "accuracy"  # best validation accuracy


REWARDS = tuple(r.value for r in Reward)
MAX_BUDGET = 1_000_000
MAX_NAME = 200


SPACES: dict[str, type[ZophSpace] | type[MetaQNNSpace] | type[Nb201Space]] = {
    "zoph": ZophSpace,
    "metaqnn": MetaQNNSpace,
    "nb201": Nb201Space,
}


def named_space(name: str) -> Space:
    """A space with its paper defaults by name."""
    try:
        return SPACES[name]()
    except KeyError:
        raise SpecError(
            f"unknown search space {name!r}; choose {', '.join(sorted(SPACES))}"
        ) from None


def reward_of(kind: Reward, outcome: TrainOutcome, constraints: Constraints | None = None) -> float:
    """The reward of a training outcome: ``ZOPH`` = (max validation accuracy of the last 5
    epochs)^3 (Zoph & Le), ``ACCURACY`` = best validation accuracy; times the cost factor of
    ``constraints`` when it has a cost term."""
    if kind == Reward.ZOPH:
        base = float(outcome.validation_accuracy_last5) ** 3
    else:
        base = float(outcome.validation_accuracy)
    if constraints is None:
        return base
    return base * constraints.cost_factor(int(outcome.params), int(outcome.flops))


@dataclass(frozen=True)
class SearchSpec:
    agent: str = "reinforce"
    # settings by name (JSON); after ``validate`` every setting of the agent's settings class
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
    warm_start: WarmStart = field(default_factory=WarmStart)
    constraints: Constraints = field(default_factory=Constraints)
    screening: Screening = field(default_factory=Screening)
    convergence: Convergence = field(default_factory=Convergence)
    # the input and classes of a user's dataset (None: the built-in dataset's)
    input: InputShape | None = None
    evaluation: SearchEvaluation = field(default_factory=SearchEvaluation)

    def image(self) -> InputShape:
        """The input shape and classes every proposal is checked against."""
        return self.input or DATASET_SHAPES[self.dataset]

    def validate(self) -> SearchSpec:
        """Check everything and fill the defaults in; raises SpecError naming the setting."""
        self = replace(self, input=check_dataset(self.dataset, self.input))
        try:
            cls = agent_class(self.agent)
            # every setting, defaults filled in: the search keeps them even if defaults change
            self = replace(self, agent_settings=self.settings().to_dict())
            space = self.space or named_space(DEFAULT_SPACE[self.agent])
            space.validate()
            self = replace(self, space=space)
            self.make_agent()  # the agent checks its space (and settings against it)
            self.training.validate()
            self.early_stopping.validate()
        except (AgentSettingsError, SpaceError, ValueError) as exc:
            raise SpecError(str(exc)) from exc
        reward = self.reward or cls.default_reward
        if reward not in REWARDS:
            raise SpecError(f"reward must be ZOPH or ACCURACY, got {reward!r}")
        if not 1 <= self.budget <= MAX_BUDGET:
            raise SpecError(f"budget must be between 1 and {MAX_BUDGET:,}, got {self.budget}")
        if not (math.isfinite(self.lease_seconds) and 1 <= self.lease_seconds <= 7 * 86400):
            raise SpecError(f"lease_seconds must be between 1 and 604800, got {self.lease_seconds}")
        if not 0 <= self.seed < 2**63:
            raise SpecError(f"seed must be between 0 and 2^63-1, got {self.seed}")
        if len(self.name) > MAX_NAME:
            raise SpecError(f"name must be at most {MAX_NAME} characters, got {len(self.name)}")
        self.constraints.validate()
        self.screening.validate()
        if self.agent_settings.get("model_steps") and not self.screening.learnt:
            raise SpecError(
                "agent setting model_steps needs the search's learned predictor: set "
                "screening.score to 'predictor' (nasrl search --screen predictor), or "
                "model_steps to 0"
            )
        self.convergence.validate()
        self.evaluation.validate(self.bound_space(), self.budget)
        warm = replace(
            self.warm_start.validate(),
            architectures=tuple(
                self._prior_text(i, text) for i, text in enumerate(self.warm_start.architectures)
            ),
        )
        return replace(self, reward=reward, warm_start=warm)

    def _prior_text(self, index: int, text: str) -> str:
        """A warm-start network in canonical text, checked against the space, the dataset's
        input and the constraints."""
        where = f"warm_start.architectures[{index}]"
        try:
            arch = parse(text)
            encode(self.bound_space(), arch)
            size = analyze(arch, self.image())
        except (ArchError, ValueError) as exc:
            raise SpecError(f"{where} ({text[:100]!r}) cannot be used: {exc}") from exc
        why = self.constraints.violation(size.params, size.flops)
        if why:
            raise SpecError(f"{where} ({text[:100]!r}) breaks the constraints: {why}")
        return format_arch(canonical(arch))

    def bound_space(self) -> Space:
        """The space for this search's dataset (MetaQNN's sizes depend on the input)."""
        space = self.space or named_space(DEFAULT_SPACE[self.agent])
        return space.bind(self.image())

    def settings(self) -> AgentSettings:
        """The agent's settings: ``agent_settings`` (any subset, by name) over the defaults of
        the agent's settings class, checked (AgentSettingsError names a bad one)."""
        return settings_class(self.agent).from_dict(self.agent_settings)

    def reward_of(self, outcome: TrainOutcome) -> float:
        """What ``outcome`` is worth in this search (its reward and constraints)."""
        return reward_of(Reward(self.reward), outcome, self.constraints)

    def make_agent(self) -> Agent:
        """A fresh agent for this search (validated when it was created: a bound lowered
        since, ``stored_high``, does not stop a stored search)."""
        settings = settings_class(self.agent).from_stored(self.agent_settings)
        return agent_class(self.agent)(self.bound_space(), settings, self.seed, self.budget)

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
            early_stopping=StoppingSettings(**data["early_stopping"]),
            warm_start=_warm_from_json(data["warm_start"]),
            constraints=Constraints(**data["constraints"]),
            screening=Screening(**data["screening"]),
            # stored before a part existed: what it did then (uniform draws before "draws")
            convergence=Convergence(**{"draws": "uniform", **data.get("convergence", {})}),
            input=InputShape(**data["input"]) if data["input"] else None,
            evaluation=SearchEvaluation.from_json(data.get("evaluation")),
        )


_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SHAPE_LIMITS = (
    ("channels", 1, 64),
    ("height", 1, 4096),
    ("width", 1, 4096),
    ("classes", 2, 100_000),
)


def check_dataset(dataset: str, shape: InputShape | None) -> InputShape | None:
    """``shape`` checked for ``dataset``: None for a built-in dataset (whose shape is known;
    a given one must match), required and within limits for a user's dataset."""
    if dataset in DATASET_SHAPES:
        if shape is not None and shape != DATASET_SHAPES[dataset]:
            known = DATASET_SHAPES[dataset]
            raise SpecError(
                f"dataset_shape {_shape_text(shape)} does not match the built-in dataset "
                f"{dataset!r} ({_shape_text(known)}); leave it empty for built-in datasets"
            )
        return None
    if not _DATASET_NAME.match(dataset):
        raise SpecError(
            f"dataset {dataset[:100]!r} is not a dataset name (letters, digits, "
            f"'_', '.', '-'; at most 100); built in: {', '.join(DATASET_SHAPES)}"
        )
    if shape is None:
        raise SpecError(
            f"unknown dataset {dataset!r}: it is not built in ({', '.join(DATASET_SHAPES)}); "
            "for a user's dataset give its dataset_shape {channels, height, width, classes}, "
            "which the trainer's ListDatasets reports (nasrl search reads it from there)"
        )
    for name, low, high in _SHAPE_LIMITS:
        value = getattr(shape, name)
        if not low <= value <= high:
            raise SpecError(
                f"dataset_shape.{name} must be between {low:,} and {high:,}, got {value}"
            )
    return shape


def _shape_text(s: InputShape) -> str:
    return f"{s.channels}x{s.height}x{s.width}, {s.classes} classes"


def _warm_from_json(data: dict[str, Any]) -> WarmStart:
    return WarmStart(**{**data, "architectures": tuple(data["architectures"])})


def _space_from_json(data: dict[str, Any] | None) -> Space | None:
    if data is None:
        return None
    fields = {k: v for k, v in data.items() if k != "name"}
    if data["name"] == "nb201":
        return Nb201Space(ops=tuple(fields["ops"]), skeleton=Skeleton(**fields["skeleton"]))
    if data["name"] == "metaqnn":
        return MetaQNNSpace(
            conv_sizes=tuple(fields["conv_sizes"]),
            conv_filters=tuple(fields["conv_filters"]),
            pools=tuple((int(k), int(s)) for k, s in fields["pools"]),
            fc_units=tuple(fields["fc_units"]),
            max_depth=int(fields["max_depth"]),
            max_fc=int(fields["max_fc"]),
            fc_max_size=int(fields["fc_max_size"]),
            pool_first=bool(fields["pool_first"]),
        )
    return ZophSpace(
        filter_sizes=tuple(fields["filter_sizes"]),
        strides=tuple(fields["strides"]),
        filters=tuple(fields["filters"]),
        max_layers=int(fields["max_layers"]),
        skip_connections=bool(fields["skip_connections"]),
    )
