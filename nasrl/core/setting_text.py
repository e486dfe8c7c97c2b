"""Agent settings written as text, ``NAME=VALUE`` (``nasrl search --agent-setting``), read
into typed values of the agent's settings schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from nasrl.core.agent_settings import AgentSettingsError, kind, settings_class

__all__ = ["parse_assignments"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_assignments(agent: str, assignments: Sequence[str]) -> dict[str, Any]:
    """``["layers_step=0", "skip_connections=false"]`` as typed settings of ``agent``, checked
    (the whole settings class is built) but only the given names returned."""
    cls = settings_class(agent)
    kinds = {f.name: kind(f) for f in fields(cls)}
    out: dict[str, Any] = {}
    for text in assignments:
        name, sep, raw = text.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name:
            raise AgentSettingsError(f"agent setting {text!r} is not NAME=VALUE")
        if name not in kinds:
            raise AgentSettingsError(
                f"unknown setting {name!r} for agent {agent!r}; known: {list(kinds)}"
            )
        t = kinds[name]
        try:
            if t is bool:
                if raw.lower() not in _TRUE + _FALSE:
                    raise ValueError(raw)
                out[name] = raw.lower() in _TRUE
            else:
                out[name] = t(raw)
        except ValueError:
            what = "true or false" if t is bool else "an integer" if t is int else "a number"
            raise AgentSettingsError(f"{agent}.{name} must be {what}, got {raw!r}") from None
    cls.from_dict(out)
    return out
