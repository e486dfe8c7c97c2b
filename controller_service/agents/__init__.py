"""Agents by name. Add an agent: declare its settings in ``nasrl.core.agent_settings`` (a frozen
dataclass, and a message of the same shape in protos/controller.proto), subclass ``Agent`` in its
own module with ``settings_class`` pointing at them, and list it here; the conformance tests
(tests/conformance/) then run against it automatically. This module refuses to import when
AGENTS and the settings registry (``nasrl.core.agent_settings.AGENT_SETTINGS``, which the CLI reads
without importing torch) disagree."""

from __future__ import annotations

from controller_service.agents.base import Agent, AgentSettingsError, Proposal
from controller_service.agents.evolution import EvolutionAgent
from controller_service.agents.qlearning import QLearningAgent
from controller_service.agents.random_search import RandomAgent
from controller_service.agents.reinforce import ReinforceAgent
from nasrl.core.agent_settings import AGENT_SETTINGS

__all__ = ["AGENTS", "DEFAULT_SPACE", "Agent", "AgentSettingsError", "Proposal", "agent_class"]

AGENTS: dict[str, type[Agent]] = {
    cls.name: cls for cls in (ReinforceAgent, QLearningAgent, RandomAgent, EvolutionAgent)
}
if {n: c.settings_class for n, c in AGENTS.items()} != AGENT_SETTINGS:
    raise ImportError(
        f"agents {sorted(AGENTS)} and their settings classes disagree with "
        f"nasrl.core.agent_settings.AGENT_SETTINGS {AGENT_SETTINGS}"
    )
#: the space an agent searches when the search names none
DEFAULT_SPACE = {"reinforce": "zoph", "qlearning": "metaqnn", "random": "zoph", "evolution": "zoph"}


def agent_class(name: str) -> type[Agent]:
    try:
        return AGENTS[name]
    except KeyError:
        raise AgentSettingsError(
            f"unknown agent {name!r}; choose one of {', '.join(sorted(AGENTS))}"
        ) from None
