"""The agent interface. An agent proposes architectures and learns from their rewards; it
never touches grpc, protobuf or the database.

Call sequence (the controller holds a lock per search around every call):

1. ``agent = Agent(space, settings, seed)``, or then ``agent.load_state_dict(saved)``.
2. ``proposals = agent.sample(n)``: each ``Proposal`` carries the architecture and the agent's
   own record of the decisions that produced it (JSON-able), which the controller stores with
   the candidate and hands back at update time.
3. ``agent.update(decisions, reward)`` once per result, in any order and possibly long after
   the sample (asynchronous workers); ``reward`` is ``None`` for a child that failed. The
   controller calls it as ``record`` (inside its write transaction) and ``learn`` (before its
   next call, outside the transaction), which together are ``update``.
4. Optionally, once before the first sample: ``agent.pretrain(priors, steps, learning_rate)``
   with the decisions of known-good networks (a warm start); their results then arrive
   through ``update`` like any other.
5. Optionally, before a sample: ``agent.dream(predict, fitted_on)`` when the search screens
   by a learned predictor (fitted on its first ``fitted_on`` results): ``predict`` gives the
   predicted reward of proposals never trained, for model-based learning between results.
6. ``agent.state_dict()`` after each call: everything needed to continue exactly (weights,
   optimiser, RNG, counters), made of tensors, numbers, strings, lists and dicts only so that
   it loads with ``torch.load(weights_only=True)``. An agent whose state is large also
   implements ``persistence.StoredInParts``, so that the controller writes only what changed
   (``persistence.py`` says how); any other agent's state is written whole each call.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from controller_service.spaces.base import Decisions as Decisions  # in the agent interface
from nasrl.core.agent_settings import AgentSettings, AgentSettingsError
from nasrl.core.arch import Architecture

__all__ = ["Agent", "Proposal", "Predict", "AgentSettingsError", "AgentSettings"]


@dataclass(frozen=True)
class Proposal:
    arch: Architecture
    decisions: Decisions


#: the predicted reward of each proposal (None: it would fail or be rejected before training)
Predict = Callable[[list[Proposal]], list[float | None]]


class Agent(ABC):
    name: ClassVar[str]
    #: the agent's settings: a frozen dataclass in ``nasrl.core.agent_settings`` whose fields are
    #: every setting with its default and range (also the shape of its proto message)
    settings_class: ClassVar[type[AgentSettings]]
    #: ``settings_class``'s defaults as a dict, e.g. {"learning_rate": 6e-4} (derived from it)
    defaults: ClassVar[dict[str, Any]] = {}
    #: the reward an agent learns from by default: "zoph" = (max val acc of last 5 epochs)^3,
    #: "accuracy" = best validation accuracy
    default_reward: ClassVar[str] = "accuracy"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "settings_class" in cls.__dict__:
            cls.defaults = cls.settings_class().to_dict()

    @abstractmethod
    def __init__(
        self,
        space: Any,
        settings: AgentSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> None:
        """``space`` is a search space (ZophSpace or MetaQNNSpace, bound to the dataset);
        ``settings`` an instance of ``settings_class``, or a dict of settings by name (the
        rest take their defaults; a stored search's JSON), which ``settings_class.of`` turns
        into the checked dataclass; ``budget`` is the search's number of children, for agents whose
        schedule depends on it. Raises AgentSettingsError naming a bad setting or an
        unsupported space."""

    @abstractmethod
    def sample(self, n: int) -> list[Proposal]:
        """Propose ``n`` architectures."""

    @abstractmethod
    def update(self, decisions: Decisions, reward: float | None) -> None:
        """Learn from the reward of the proposal whose decisions these are."""

    def record(self, decisions: Decisions, reward: float | None) -> None:
        """``update`` split in two for the controller: note the result now (cheap, inside
        its write transaction) and do the expensive learning in ``learn()``, which the
        controller calls outside the transaction before its next ``sample`` or ``update``.
        ``record`` then ``learn`` leaves the agent exactly as ``update`` would; the noted
        results are part of the state until learnt. By default ``record`` is
        ``update``."""
        self.update(decisions, reward)

    def learn(self) -> None:
        """Learn from the results ``record`` noted (see there); idempotent."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this agent is."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a ``state_dict``."""

    def pretrain(self, priors: list[Decisions], steps: int, learning_rate: float) -> None:
        """Start from known-good networks (``priors``: their decisions, as
        ``spaces.encode`` gives them) before any result is known. By default an agent
        does nothing here and learns from the priors when their results arrive through
        ``update``; REINFORCE takes likelihood steps, evolution counts them as members of
        its initial population."""

    def dream(self, predict: Predict, fitted_on: int) -> None:
        """Model-based learning between real results: the controller calls it before each
        sample while the search has a predictor, fitted on its first ``fitted_on`` results;
        ``predict(proposals)`` gives each proposal's predicted reward (None: it would fail or
        be rejected before training). A function of the state and ``fitted_on`` alone (the
        controller calls it again after a restart). By default nothing; REINFORCE with
        ``model_steps`` takes policy steps on the predicted rewards once per fit."""

    def progress(self) -> dict[str, float]:
        """Numbers a user watches, e.g. {"curriculum_layers": 6, "baseline": 0.41}."""
        return {}


def rng_state(rng: random.Random) -> list[Any]:
    """A ``random.Random`` state as plain lists (loads with weights_only=True)."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list[Any]) -> None:
    version, internal, gauss = state
    rng.setstate((version, tuple(internal), gauss))
