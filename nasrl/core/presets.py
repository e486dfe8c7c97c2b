"""Named sets of agent settings ("presets"): ``paper`` for every agent (its defaults, the
papers' values) and ``efficient`` for reinforce and qlearning. ``AgentSpec.preset`` over
gRPC and ``nasrl search --preset`` name one; settings given explicitly override it. Plain data,
no torch (the CLI lists them)."""

from __future__ import annotations

from typing import Any

from nasrl.core.agent_settings import AGENT_SETTINGS, AgentSettingsError

__all__ = ["PRESETS", "preset_names", "preset_settings"]

#: named sets of settings per agent, beside "paper" (every agent's defaults, the papers'
#: values). "efficient": what nasrl measured best for budgets of a few hundred children (see
#: the README's "RL with priors" benchmark for what was tuned on which table).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "reinforce": {
        "efficient": {
            "independent": True,
            "learning_rate": 0.05,
            "baseline_decay": 0.9,
            "batch": 1,
            "standardize": True,
            "elite": 10,
        },
    },
    "qlearning": {
        "efficient": {"learning_rate": 0.1, "explore_fraction": 0.2},
    },
}


def preset_names(agent: str) -> list[str]:
    """The presets of ``agent``, "paper" first."""
    return ["paper", *PRESETS.get(agent, {})]


def preset_settings(agent: str, preset: str) -> dict[str, Any]:
    """The settings a preset sets ("" and "paper": none, the defaults); AgentSettingsError
    names the presets of the agent for an unknown one."""
    if preset in ("", "paper"):
        return {}
    try:
        return dict(PRESETS[agent][preset])
    except KeyError:
        raise AgentSettingsError(
            f"unknown preset {preset!r} for agent {agent!r}; choose {', '.join(preset_names(agent))}"
        ) from None


for _agent, _presets in PRESETS.items():  # a preset names only real settings, in range
    for _values in _presets.values():
        AGENT_SETTINGS[_agent].from_dict(_values)
