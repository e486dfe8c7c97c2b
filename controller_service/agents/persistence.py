"""How an agent's state is stored, apart from the algorithm (``base.Agent``): optional.

An agent with a large state implements ``StoredInParts`` (the mixin gives the defaults) and
the controller then writes, per call, the light part every time, the weights only when
``weights_version()`` changed, only the new entries of an append-only log and only the
changed keyed entries; ``load_state_dict`` receives the parts merged, the log as
``state["log"]`` and the entries as ``state["entries"]``. Any other agent is stored whole
(``parts_of`` wraps it in ``WholeState``): its ``state_dict()`` each call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

from controller_service.agents.base import Agent

__all__ = [
    "Parts",
    "StoredInParts",
    "WholeState",
    "optimizer_state",
    "parts_of",
    "plain_optimizer_state",
]


@runtime_checkable
class Parts(Protocol):
    """An agent's state as the store writes it."""

    def light_state(self) -> dict[str, Any]:
        """The part that changes on every call (RNG states, counters, queued results):
        plain data only (dicts with string keys, lists, numbers, strings, None, tensors),
        written as JSON every call."""
        ...

    def heavy_state(self) -> dict[str, Any]:
        """The large part (network weights, optimiser moments), which changes only when
        ``weights_version()`` does; ``light_state() | heavy_state()`` is a whole
        ``state_dict()`` but for the log and the entries. Tensors may be live views:
        serialise them at once."""
        ...

    def weights_version(self) -> object:
        """A value that changes whenever ``heavy_state()`` changes."""
        ...

    def changed_entries(self) -> dict[str, Any]:
        """Keyed entries (e.g. Q-values) changed since the last call, then forgotten: the
        controller upserts just these. Plain values."""
        ...

    def log_since(self, start: int) -> list[Any]:
        """An append-only list (e.g. a replay memory) from index ``start`` on: the controller
        stores only the entries it has not stored yet. Plain data."""
        ...


class StoredInParts(ABC):
    """``Parts`` with defaults, for an agent to inherit and override what it keeps; every
    agent stored in parts says what its light part is."""

    @abstractmethod
    def light_state(self) -> dict[str, Any]:
        """The part written every call (see ``Parts``)."""

    def heavy_state(self) -> dict[str, Any]:
        return {}

    def weights_version(self) -> object:
        return 0

    def changed_entries(self) -> dict[str, Any]:
        return {}

    def log_since(self, start: int) -> list[Any]:
        return []


class WholeState(StoredInParts):
    """An agent that stores its whole ``state_dict()`` as its light part every call."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def light_state(self) -> dict[str, Any]:
        return self.agent.state_dict()


def parts_of(agent: Agent) -> Parts:
    """How ``agent``'s state is stored: by its own parts, or whole."""
    return agent if isinstance(agent, Parts) else WholeState(agent)


def plain_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """A torch optimiser's ``state_dict()`` as plain data (string keys, lists for tuples), so
    the store writes it as JSON, several times cheaper than ``torch.save`` (the optimiser
    moments change on every policy-gradient step). Tensors stay live: serialise at once."""
    return {
        "state": {str(k): v for k, v in state["state"].items()},
        "param_groups": [
            {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
            for group in state["param_groups"]
        ],
    }


def optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``plain_optimizer_state`` (a ``state_dict()`` that
    ``Optimizer.load_state_dict`` takes); a state stored by ``torch.save`` passes unchanged."""
    return {
        "state": {int(k): v for k, v in state["state"].items()},
        "param_groups": [
            {k: tuple(v) if k == "betas" else v for k, v in group.items()}
            for group in state["param_groups"]
        ],
    }
