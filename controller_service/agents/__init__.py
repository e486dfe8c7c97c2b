"""Agents by name. Add an agent: subclass ``Agent`` in its own module and list it here; the
conformance tests (tests/conformance/) then run against it automatically."""

from __future__ import annotations

from controller_service.agents.base import Agent, AgentSettingsError, Proposal
from controller_service.agents.evolution import EvolutionAgent
from controller_service.agents.qlearning import QLearningAgent
from controller_service.agents.random_search import RandomAgent
from controller_service.agents.reinforce import ReinforceAgent

__all__ = ["AGENTS", "DEFAULT_SPACE", "Agent", "AgentSettingsError", "Proposal", "agent_class"]

AGENTS: dict[str, type[Agent]] = {
    cls.name: cls for cls in (ReinforceAgent, QLearningAgent, RandomAgent, EvolutionAgent)
}
#: the space an agent searches when the search names none
DEFAULT_SPACE = {"reinforce": "zoph", "qlearning": "metaqnn", "random": "zoph", "evolution": "zoph"}


def agent_class(name: str) -> type[Agent]:
    try:
        return AGENTS[name]
    except KeyError:
        raise AgentSettingsError(
            f"unknown agent {name!r}; choose one of {', '.join(sorted(AGENTS))}"
        ) from None
