"""Agent settings over real gRPC: every setting can be sent (0 and false included), GetSearch
returns what was sent with the rest filled in, an out-of-range value is INVALID_ARGUMENT naming
the setting and its range, and `nasrl search --agent-setting` reaches the controller."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.agent_settings import AGENT_SETTINGS, EvolutionSettings, ReinforceSettings
from nasrl.rpc.client import ControllerClient, NasrlError
from protos import controller_pb2 as cpb
from tests.helpers import nasrl_cli

SMALL = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=4, filters=[8, 16]))


def test_fixed_depth_failure_reward_and_skip_connections_are_accepted(controller: str) -> None:
    agent = cpb.AgentSpec(
        name="reinforce",
        reinforce=cpb.ReinforceSettings(
            start_layers=2, layers_step=0, step_every=1, failure_reward=-0.5, skip_connections=False
        ),
    )
    with ControllerClient(controller) as c:
        sid = c.create_search(agent=agent, space=SMALL, dataset="digits", budget=12).search_id
        got = c.get_search(sid).spec.request.agent
        assert got.name == "reinforce" and got.WhichOneof("settings") == "reinforce"
        r = got.reinforce
        for name in ("layers_step", "failure_reward", "skip_connections", "hidden", "batch"):
            assert r.HasField(name), f"{name} not returned"
        assert (r.start_layers, r.layers_step, r.step_every) == (2, 0, 1)
        assert r.failure_reward == -0.5 and r.skip_connections is False
        assert r.hidden == 35 and r.batch == 8  # the rest: defaults
        assert codec.agent_settings_from_proto(got) == ReinforceSettings(
            start_layers=2, layers_step=0, step_every=1, failure_reward=-0.5, skip_connections=False
        )
        # fixed depth: 2 layers however many samples, and no skip connections
        batch = c.sample(sid, 10)
        assert len(batch.candidates) == 10
        for cand in batch.candidates:
            assert len(cand.arch.layers) == 2, cand.text
            assert all(not layer.inputs for layer in cand.arch.layers), cand.text  # a chain
        # a failure is learnt with failure_reward
        ack = c.update(sid, batch.candidates[0].id, failure="out of memory")
        assert ack.accepted and c.get_search(sid).counts.failed == 1


def test_evolution_failure_reward_and_every_default_are_returned(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = c.create_search(
            agent=codec.agent_spec_to_proto("evolution", {"failure_reward": -1.0, "layers": 0}),
            space=SMALL,
            dataset="digits",
            budget=5,
        ).search_id
        got = c.get_search(sid).spec.request.agent
        assert codec.agent_settings_from_proto(got) == EvolutionSettings(failure_reward=-1.0)
        sid = c.create_search(agent=cpb.AgentSpec(name="random"), space=SMALL, budget=5).search_id
        random = c.get_search(sid).spec.request.agent.random
        assert random.HasField("layers") and random.layers == 0


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        (
            cpb.AgentSpec(name="reinforce", reinforce=cpb.ReinforceSettings(hidden=0)),
            "reinforce.hidden must be between 1 and 256, got 0",
        ),
        (
            cpb.AgentSpec(name="reinforce", reinforce=cpb.ReinforceSettings(layers_step=-1)),
            "reinforce.layers_step must be between 0 and 64, got -1",
        ),
        (
            cpb.AgentSpec(name="qlearning", qlearning=cpb.QLearningSettings(discount=-1)),
            "qlearning.discount must be between 0 and 1, got -1.0",
        ),
        (
            cpb.AgentSpec(
                name="evolution",
                evolution=cpb.EvolutionSettings(failure_reward=2e6),
            ),
            "evolution.failure_reward must be between -1,000,000 and 1,000,000",
        ),
        (
            cpb.AgentSpec(
                name="evolution", evolution=cpb.EvolutionSettings(population=4, sample_size=5)
            ),
            "evolution.sample_size must be at most population (4), got 5",
        ),
    ],
)
def test_out_of_range_is_invalid_argument_naming_the_setting(
    controller: str, agent: cpb.AgentSpec, words: str
) -> None:
    with ControllerClient(controller) as c, pytest.raises(NasrlError) as info:
        c.create_search(agent=agent, dataset="digits", budget=5)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in str(info.value)


def test_every_setting_of_every_agent_is_returned(controller: str) -> None:
    """A search created with no settings comes back with every field of its settings class."""
    with ControllerClient(controller) as c:
        for agent, cls in AGENT_SETTINGS.items():
            space = None if agent == "qlearning" else SMALL
            kw: dict[str, Any] = {"space": space} if space is not None else {}
            sid = c.create_search(agent=cpb.AgentSpec(name=agent), budget=5, **kw).search_id
            msg = getattr(c.get_search(sid).spec.request.agent, agent)
            assert [f.name for f, _ in msg.ListFields()] == [f.name for f in fields(cls)]


def test_cli_agent_settings_reach_the_controller(controller: str, simulated: str) -> None:
    run = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        simulated,
        "--agent",
        "evolution",
        "--agent-setting",
        "population=3",
        "--agent-setting",
        "sample_size=2",
        "--agent-setting",
        "failure_reward=-1",
        "--budget",
        "4",
        "--epochs",
        "1",
        "--json",
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    sid = json.loads(run.stdout)["search_id"]
    with ControllerClient(controller) as c:
        got = c.get_search(sid).spec.agent_settings
    assert got == EvolutionSettings(population=3, sample_size=2, failure_reward=-1.0)
