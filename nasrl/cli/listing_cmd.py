"""``nasrl leaderboard``, ``nasrl searches`` and ``nasrl agents``: what a controller holds and
what the agents take, as tables or JSON."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from nasrl.cli.search_display import leaderboard_table, state_text
from nasrl.core import formats
from nasrl.core.agent_settings import AGENT_SETTINGS, setting_infos
from nasrl.core.presets import preset_names, preset_settings
from nasrl.rpc.client import ControllerClient
from nasrl.rpc.security import client_security

__all__ = ["cmd_leaderboard", "cmd_searches", "cmd_agents", "agent_setting_help"]

out = Console(highlight=False)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with ControllerClient(
        args.controller, timeout=args.timeout, security=client_security(args)
    ) as c:
        entries = c.leaderboard(args.search_id, top=args.top, pareto=args.pareto or "")
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "candidate_id": e.candidate_id,
                        "arch": e.architecture,
                        "accuracy": e.accuracy,
                        "test_accuracy": e.test_accuracy,
                        "params": e.params,
                        "flops": e.flops,
                        "seconds": e.seconds,
                        "evaluation": e.evaluation.value,
                    }
                    for e in entries
                ]
            )
        )
    else:
        out.print(leaderboard_table(entries, f"search {args.search_id}"))
    return 0


def cmd_searches(args: argparse.Namespace) -> int:
    with ControllerClient(
        args.controller, timeout=args.timeout, security=client_security(args)
    ) as c:
        searches = c.list_searches()
    table = Table(title=f"searches on {args.controller}")
    for col in ("id", "name", "agent", "dataset", "state", "evaluated", "budget", "best"):
        table.add_column(col)
    for s in searches:
        best = formats.best(None if s.best is None else s.best.accuracy)
        table.add_row(
            s.search_id,
            s.name,
            s.spec.agent,
            s.spec.dataset,
            state_text(s, short=True),
            str(s.counts.evaluated),
            str(s.spec.budget),
            best,
        )
    out.print(table)
    for s in searches:  # the reasons the table shows by their heads only, in full
        if ":" in s.ended_because:
            out.print(f"{s.search_id}: {s.ended_because}", markup=False, soft_wrap=True)
    return 0


def agent_setting_help() -> str:
    """--agent-setting's help: every agent's settings, from their settings classes."""
    names = "; ".join(
        f"{agent}: {', '.join(i.name for i in setting_infos(cls))}"
        for agent, cls in AGENT_SETTINGS.items()
    )
    return (
        "a setting of the agent, NAME=VALUE (repeatable; unset ones take their defaults), "
        f"e.g. --agent-setting layers_step=0. {names}. `nasrl agents` lists their defaults "
        "and ranges"
    )


def cmd_agents(args: argparse.Namespace) -> int:
    rows = [
        {
            "agent": agent,
            "setting": i.name,
            "type": i.kind.__name__,
            "default": i.default,
            "range": i.range,
            "help": i.help,
        }
        for agent, cls in AGENT_SETTINGS.items()
        for i in setting_infos(cls)
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title="agents and their settings (nasrl search --agent A --agent-setting N=V)")
    for col in ("agent", "setting", "default", "range", "what"):
        table.add_column(col)
    for agent, cls in AGENT_SETTINGS.items():
        for i in setting_infos(cls):
            table.add_row(agent, i.name, i.default_text, i.range, i.help)
    out.print(table)
    presets = Table(title="presets (nasrl search --agent A --preset NAME)")
    for col in ("agent", "preset", "settings"):
        presets.add_column(col)
    for agent in AGENT_SETTINGS:
        for name in preset_names(agent):
            values = preset_settings(agent, name)
            text = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults (papers)"
            presets.add_row(agent, name, text)
    out.print(presets)
    return 0
