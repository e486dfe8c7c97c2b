"""One settings schema per agent: a frozen dataclass whose fields are every setting of the agent
with its default, its range and a line of help. The controller's agents, the gRPC messages
(``protos/controller.proto``: one message of the same name and field names per agent), the
codec (``nasrl.core.codec``, by field name), the CLI and the docs all read it from here.

Plain data, no torch: the CLI imports it to list the agents and their settings. An instance is
always valid: construction runs ``check_settings``, the one validator, which raises
``AgentSettingsError`` naming the setting and its range.

Add an agent's settings: subclass ``AgentSettings`` here as a frozen dataclass with
``agent = "NAME"``, declare each field with ``setting(default, help, low=, high=)``, add a
message with the same name and fields (each ``optional``) to ``AgentSpec`` in the proto, and
point the agent class's ``settings_class`` at it; ``controller_service.agents`` refuses to
import when the two registries disagree.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar

__all__ = [
    "AGENT_SETTINGS",
    "AgentSettings",
    "AgentSettingsError",
    "EvolutionSettings",
    "QLearningSettings",
    "RandomSettings",
    "Range",
    "ReinforceSettings",
    "SettingInfo",
    "check_settings",
    "setting",
    "setting_infos",
    "settings_class",
]

T = TypeVar("T")

#: every agent's settings class by agent name, in the order they are defined below
AGENT_SETTINGS: dict[str, type[AgentSettings]] = {}


class AgentSettingsError(ValueError):
    """An agent setting outside its range; the message names the setting."""


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The values a number setting may take: ``low`` .. ``high`` (None: unbounded), either
    end open; ``at_most`` names another setting of the same agent that caps this one."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    at_most: str = ""
    stored_high: float | None = None  # the bound before it was lowered (stored searches)

    def contains(self, value: float, stored: bool = False) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        high = self.stored_high if stored and self.stored_high is not None else self.high
        return high is None or (value < high if self.open_high else value <= high)

    def describe(self, kind: type) -> str:
        """E.g. "between 1 and 4" (integers), "in (0, 1]" (reals), "at least 0"."""
        low, high = self.low, self.high
        if low is None and high is None:
            text = "any number"
        elif high is None:
            assert low is not None
            text = f"{'greater than' if self.open_low else 'at least'} {_number(low)}"
        elif low is None:
            text = f"{'less than' if self.open_high else 'at most'} {_number(high)}"
        elif kind is int or not (self.open_low or self.open_high):
            text = f"between {_number(low)} and {_number(high)}"
        else:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            text = f"in {left}{_number(low)}, {_number(high)}{right}"
        if self.at_most:
            text += f", and at most {self.at_most}"
        return text


def setting(
    default: T,
    help: str,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    at_most: str = "",
    stored_high: float | None = None,
) -> T:
    """A settings field: its default (whose type, int, float or bool, is the setting's type),
    one line of help and, for numbers, its range. ``stored_high``: a higher bound that
    searches stored before ``high`` was lowered may still have (they keep working)."""
    rng = Range(low, high, open_low, open_high, at_most, stored_high)
    return field(default=default, metadata={"range": rng, "help": help})


@dataclass(frozen=True)
class SettingInfo:
    """One setting, described for people (CLI help, docs)."""

    name: str
    kind: type
    default: Any
    range: str
    help: str

    @property
    def default_text(self) -> str:
        if self.kind is bool:
            return "true" if self.default else "false"
        return _number(self.default) if self.kind is int else f"{self.default:g}"


@dataclass(frozen=True)
class AgentSettings:
    """The base of every agent's settings. Subclasses are frozen dataclasses made of
    ``setting`` fields with ``agent`` set to the agent's name."""

    agent: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "agent" in cls.__dict__:
            AGENT_SETTINGS[cls.agent] = cls

    def __post_init__(self) -> None:
        for f in fields(self):  # whole numbers are fine where a real is expected
            value = getattr(self, f.name)
            if kind(f) is float and isinstance(value, int) and not isinstance(value, bool):
                try:
                    object.__setattr__(self, f.name, float(value))
                except OverflowError:
                    object.__setattr__(self, f.name, math.inf if value > 0 else -math.inf)
        check_settings(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None) -> Self:
        """The defaults overlaid with ``data`` (e.g. a stored search's JSON), checked; unknown
        names are an error naming the known ones."""
        data = dict(data or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise AgentSettingsError(
                f"unknown setting(s) {unknown} for agent {cls.agent!r}; known: {known}"
            )
        return cls(**data)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None = None) -> Self:
        """``from_dict`` for a search already stored: a bound lowered since it was created
        (``stored_high``) does not stop it."""
        token = _STORED.set(True)
        try:
            return cls.from_dict(data)
        finally:
            _STORED.reset(token)

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name: plain JSON data."""
        return asdict(self)

    @classmethod
    def of(cls, given: AgentSettings | Mapping[str, Any] | None) -> Self:
        """``given`` as this class: an instance as is, a mapping through ``from_dict``, None
        as the defaults. What agents' constructors call."""
        if isinstance(given, cls):
            return given
        if isinstance(given, AgentSettings):
            raise AgentSettingsError(
                f"agent {cls.agent!r} takes {cls.__name__}, not {type(given).__name__}"
            )
        return cls.from_dict(given)


#: set while a stored search's settings are read (``AgentSettings.from_stored``)
_STORED: contextvars.ContextVar[bool] = contextvars.ContextVar("stored", default=False)


def kind(f: Field[Any]) -> type:
    """A setting's type: the type of its default (int, float or bool)."""
    if f.default is MISSING:
        raise TypeError(f"setting {f.name} has no default; declare it with setting()")
    return type(f.default)


def check_settings(s: AgentSettings) -> None:
    """The one validator of agent settings: every field has its type and lies in its range.
    Raises AgentSettingsError naming the first bad setting, e.g. "reinforce.hidden must be
    between 1 and 256, got -4"."""
    for f in fields(s):
        name, value, rng = f"{s.agent}.{f.name}", getattr(s, f.name), f.metadata["range"]
        t = kind(f)
        if t is bool:
            if not isinstance(value, bool):
                raise AgentSettingsError(f"{name} must be true or false, got {value!r}")
            continue
        if t is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise AgentSettingsError(
                    f"{name} must be an integer {rng.describe(int)}, got {value!r}"
                )
        elif (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise AgentSettingsError(
                f"{name} must be a finite number {rng.describe(float)}, got {value!r}"
            )
        if not rng.contains(value, stored=_STORED.get()):
            raise AgentSettingsError(f"{name} must be {rng.describe(t)}, got {value!r}")
        if rng.at_most and value > getattr(s, rng.at_most):
            raise AgentSettingsError(
                f"{name} must be at most {rng.at_most} ({getattr(s, rng.at_most)}), got {value!r}"
            )


def settings_class(agent: str) -> type[AgentSettings]:
    """The settings class of an agent by name."""
    try:
        return AGENT_SETTINGS[agent]
    except KeyError:
        raise AgentSettingsError(
            f"unknown agent {agent!r}; choose one of {', '.join(sorted(AGENT_SETTINGS))}"
        ) from None


def setting_infos(cls: type[AgentSettings]) -> list[SettingInfo]:
    """Every setting of ``cls``, in declaration order, for people."""
    return [
        SettingInfo(
            f.name,
            kind(f),
            f.default,
            "true or false" if kind(f) is bool else f.metadata["range"].describe(kind(f)),
            f.metadata["help"],
        )
        for f in fields(cls)
    ]


# ---------------------------------------------------------------------------- the agents


@dataclass(frozen=True)
class ReinforceSettings(AgentSettings):
    """Zoph & Le (2017): the controller LSTM, its REINFORCE updates and the depth curriculum."""

    agent: ClassVar[str] = "reinforce"

    lstm_layers: int = setting(2, "stacked LSTM layers of the controller", 1, 4)
    # at most 256: the largest controller (4 x 256) writes ~25 MB of weights and Adam moments
    # per policy-gradient step; 1,024 units wrote ~400 MB (README "Agent sizes")
    hidden: int = setting(35, "LSTM units per layer", 1, 256, stored_high=1024)
    init_range: float = setting(
        0.08, "initial weights uniform in +-init_range", 0.0, 1.0, open_low=True
    )
    learning_rate: float = setting(6e-4, "Adam learning rate", 0.0, 1.0, open_low=True)
    baseline_decay: float = setting(
        0.95,
        "decay of the exponential-moving-average reward baseline",
        0.0,
        1.0,
        open_high=True,
    )
    entropy_weight: float = setting(0.0, "weight of the entropy bonus (0: none)", 0.0, 1000.0)
    batch: int = setting(
        8,
        "results whose gradients are averaged per Adam step (the paper's m, the children one "
        "controller replica samples per step)",
        1,
        1024,
    )
    start_layers: int = setting(6, "depth curriculum: layers at the start", 1, 64)
    layers_step: int = setting(
        2, "depth curriculum: layers added every step_every samples (0: fixed depth)", 0, 64
    )
    step_every: int = setting(1600, "depth curriculum: samples per step", 1, 1_000_000_000)
    failure_reward: float = setting(
        0.0,
        "reward learnt from a child that failed to train or a proposal the dataset cannot "
        "take (0: the worst reward)",
        -1e6,
        1e6,
    )
    skip_connections: bool = setting(
        True,
        "learn skip connections (anchor points); the space must allow them too",
    )
    independent: bool = setting(
        False,
        "one learnt softmax per decision (per layer position; per edge in nb201, as "
        "NAS-Bench-201's REINFORCE) instead of the LSTM",
    )
    standardize: bool = setting(
        False,
        "divide each advantage by the moving standard deviation of the rewards (same decay as "
        "the baseline), so the step size does not depend on the reward's scale",
    )
    elite: int = setting(
        0,
        "the best architectures seen, replayed in every policy step with their advantage "
        "over the baseline when positive (0: none)",
        0,
        1000,
    )
    model_steps: int = setting(
        0,
        "model-based policy steps each time the search's predictor is refitted: networks "
        "sampled from the policy, scored by the predictor instead of training (needs screening "
        "score 'predictor'; 0: none)",
        0,
        1000,
    )
    model_batch: int = setting(
        32,
        "networks sampled per model-based step (their predicted rewards, standardised within "
        "the step, are the advantages)",
        2,
        4096,
    )


@dataclass(frozen=True)
class QLearningSettings(AgentSettings):
    """MetaQNN (Baker et al. 2017): tabular Q-learning with replay and an epsilon schedule."""

    agent: ClassVar[str] = "qlearning"

    learning_rate: float = setting(0.01, "Q-learning rate alpha", 1e-6, 1.0)
    discount: float = setting(1.0, "discount gamma", 0.0, 1.0)
    q_init: float = setting(0.5, "initial Q value", -1e6, 1e6)
    replay: int = setting(100, "trajectories replayed from memory after each result", 0, 100_000)
    schedule_scale: float = setting(
        0.0,
        "factor on the epsilon schedule's stage lengths (0: fit the paper's 2,700 models to "
        "the budget when it is smaller; 1: the paper's absolute counts)",
        0.0,
        1e6,
    )
    failure_reward: float = setting(
        0.0,
        "reward learnt from a child that failed to train or a proposal the dataset cannot "
        "take (0: the worst accuracy)",
        -1e6,
        1e6,
    )
    explore_fraction: float = setting(
        0.0,
        "with a budget: the fraction of it spent at epsilon 1, the paper's later stages "
        "sharing the rest in the paper's proportions (0: the paper's own proportions; "
        "overrides schedule_scale)",
        0.0,
        1.0,
    )


@dataclass(frozen=True)
class RandomSettings(AgentSettings):
    """Random search: every decision uniform."""

    agent: ClassVar[str] = "random"

    layers: int = setting(
        0,
        "Zoph space: layers of every sample, at most the space's max_layers (0: max_layers)",
        0,
        64,
    )


@dataclass(frozen=True)
class EvolutionSettings(AgentSettings):
    """Regularized evolution (Real et al. 2019)."""

    agent: ClassVar[str] = "evolution"

    population: int = setting(
        20,
        "population size; the oldest member dies beyond it (Real et al. used 100 with 20,000 "
        "models; 20 suits small budgets)",
        2,
        100_000,
    )
    sample_size: int = setting(5, "tournament size", 1, 100_000, at_most="population")
    layers: int = setting(
        0, "Zoph space: layers of the random initial networks (0: the space's max_layers)", 0, 64
    )
    failure_reward: float = setting(
        0.0,
        "fitness of a child that failed to train or a proposal the dataset cannot take",
        -1e6,
        1e6,
    )
