"""The mechanisms of the agents' "efficient" presets, each changing what it should (fixed seeds,
scripted rewards), and the presets themselves (codec, CLI listing)."""

from __future__ import annotations

import math

import pytest
import torch

from controller_service.agents.base import Proposal
from controller_service.agents.edge_policy import LayerLogits
from controller_service.agents.qlearning import QLearningAgent, explore_schedule
from controller_service.agents.reinforce import ReinforceAgent
from controller_service.spaces import MetaQNNSpace, Nb201Space, ZophSpace
from nasrl.core import codec
from nasrl.core.agent_settings import (
    AgentSettingsError,
    QLearningSettings,
    ReinforceSettings,
)
from nasrl.core.cell import Skeleton
from nasrl.core.datasets import input_shape
from nasrl.core.presets import PRESETS, preset_names, preset_settings
from protos import controller_pb2 as cpb
from tests.helpers import through_bytes

ZOPH = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16), max_layers=4)
NB201 = Nb201Space(skeleton=Skeleton(channels=8, cells_per_stage=1, stages=2))


# ---------------------------------------------------------------------------- standardize


def _advantages(agent: ReinforceAgent, rewards: list[float]) -> list[float]:
    (p,) = agent.sample(1)
    for r in rewards:
        agent.record(p.decisions, r)
    return [float(item["advantage"]) for item in agent.pending]


def test_standardized_advantages_do_not_depend_on_the_reward_scale() -> None:
    rewards = [0.5, 0.52, 0.49, 0.55, 0.51, 0.6]
    plain = _advantages(ReinforceAgent(NB201, {"batch": 64}, seed=0), rewards)
    small = _advantages(ReinforceAgent(NB201, {"batch": 64, "standardize": True}, seed=0), rewards)
    large = _advantages(
        ReinforceAgent(NB201, {"batch": 64, "standardize": True}, seed=0),
        [10 * r for r in rewards],
    )
    assert small == pytest.approx(large)  # scale-free
    assert plain[0] == small[0] == 0.0  # the first result sets the baseline
    assert [math.copysign(1, a) for a in plain[1:]] == [math.copysign(1, a) for a in small[1:]]
    assert max(abs(a) for a in small) > 10 * max(abs(a) for a in plain)  # ~1/std larger


# ---------------------------------------------------------------------------- elite


def test_the_elite_keeps_the_best_distinct_architectures() -> None:
    agent = ReinforceAgent(NB201, {"elite": 3, "batch": 1000}, seed=1)
    proposals = agent.sample(8)
    for i, p in enumerate(proposals):
        agent.record(p.decisions, 0.1 * i)
        agent.record(p.decisions, 0.99)  # a repeat keeps its first reward
    kept = agent.advantages
    assert [e["reward"] for e in kept.elite] == pytest.approx([0.7, 0.6, 0.5])
    replay = kept.replay()
    assert replay and all(item["advantage"] > 0 for item in replay)
    assert kept.baseline is not None
    assert len(replay) == sum(e["reward"] > kept.baseline for e in kept.elite)
    again = ReinforceAgent(NB201, {"elite": 3, "batch": 1000}, seed=9)
    again.load_state_dict(through_bytes(agent.state_dict()))
    assert again.advantages.elite == kept.elite and again.advantages.variance == kept.variance


def test_elite_replay_moves_the_policy_towards_the_elite() -> None:
    best = {"path": ["nor_conv_3x3"] * 6}

    def run(elite: int) -> float:
        agent = ReinforceAgent(
            NB201, {"independent": True, "batch": 1, "elite": elite, "learning_rate": 0.05}, 0
        )
        agent.update(best, 0.9)  # one great result early, then only mediocre ones
        for _ in range(20):
            (p,) = agent.sample(1)
            agent.update(p.decisions, 0.5)
        return float(agent.log_prob(best).item())

    assert run(elite=5) > run(elite=0) + 1.0


# ---------------------------------------------------------------------------- independent (zoph)


def test_recording_several_results_then_learning_equals_updating_each() -> None:
    """The controller records every result of a Sample round before it learns; with an elite
    each step still replays the elite as of its own batch (as ``update`` would), so the
    policy is the bench replay's (which updates one result at a time)."""
    settings = {**preset_settings("reinforce", "efficient"), "elite": 3}
    one, many = ReinforceAgent(NB201, settings, seed=2), ReinforceAgent(NB201, settings, seed=2)
    proposals = one.sample(6)
    many.sample(6)
    rewards = [0.3, 0.9, 0.5, 0.95, 0.2, 0.7]
    for p, r in zip(proposals, rewards):
        one.update(p.decisions, r)
    for p, r in zip(proposals, rewards):
        many.record(p.decisions, r)
    many.learn()
    for a, b in zip(one.policy.parameters(), many.policy.parameters()):
        assert torch.equal(a, b)


def test_the_independent_zoph_policy_is_one_softmax_per_decision() -> None:
    agent = ReinforceAgent(ZOPH, {"independent": True, "start_layers": 3}, seed=0)
    assert isinstance(agent.policy, LayerLogits)
    shapes = sorted(tuple(p.shape) for p in agent.policy.parameters())
    assert shapes == sorted([(4, 3), (4, 3), (4, 2), (4, 2), (4, 2), (4, 4)])
    for p in agent.sample(6):
        assert agent.log_prob(p.decisions).item() == pytest.approx(p.decisions["logp"], abs=1e-5)
        assert len(p.arch.layers) == 3


def test_the_independent_zoph_policy_learns_a_rewarded_choice() -> None:
    settings = {"independent": True, "start_layers": 2, "layers_step": 0, "learning_rate": 0.05}
    agent = ReinforceAgent(ZOPH, settings, seed=0)
    for _ in range(60):
        for p in agent.sample(8):
            agent.update(p.decisions, 0.2 + 0.3 * str(p.arch).count("C(16,"))
    wide = sum(str(p.arch).count("C(16,") for p in agent.sample(50)) / 100
    assert wide > 0.9  # uniform: 0.5


# ---------------------------------------------------------------------------- model-based steps


def _conv_first(proposals: list[Proposal]) -> list[float | None]:
    """A scripted predictor: edge 0 a 3x3 convolution is good; a skip there fails."""
    table = {"nor_conv_3x3": 0.9, "skip_connect": None}
    return [table.get(p.decisions["path"][0], 0.5) for p in proposals]


def test_model_steps_move_the_policy_towards_the_predicted_best() -> None:
    settings = {"independent": True, "learning_rate": 0.1, "model_steps": 30, "model_batch": 16}
    agent = ReinforceAgent(NB201, settings, seed=3)
    before = agent.sample(200)
    agent.dream(_conv_first, fitted_on=10)
    after = agent.sample(200)
    share = [
        sum(p.decisions["path"][0] == "nor_conv_3x3" for p in s) / 200 for s in (before, after)
    ]
    assert share[0] < 0.35 and share[1] > 0.8  # uniform over five ops: 0.2
    # a step whose 16 networks all got the same prediction has no advantage and is skipped
    assert 20 <= agent.progress()["model_steps"] == agent.steps <= 30
    assert agent.samples == 400  # the model's networks are not samples (nor handed out)


def test_model_steps_run_once_per_fit_and_survive_a_reload() -> None:
    settings = {"independent": True, "model_steps": 3, "model_batch": 8}
    agent = ReinforceAgent(NB201, settings, seed=1)
    agent.dream(_conv_first, fitted_on=10)
    agent.dream(_conv_first, fitted_on=10)  # the same fit again (a retried Sample): nothing
    assert agent.dreams == 3
    twin = ReinforceAgent(NB201, settings, seed=99)
    twin.load_state_dict(agent.state_dict())
    for a in (agent, twin):
        a.dream(_conv_first, fitted_on=10)
        a.dream(_conv_first, fitted_on=20)
    assert agent.dreams == twin.dreams == 6
    assert [p.decisions for p in agent.sample(5)] == [p.decisions for p in twin.sample(5)]


def test_without_model_steps_dream_changes_nothing() -> None:
    agent = ReinforceAgent(ZOPH, {"start_layers": 2}, seed=0)
    twin = ReinforceAgent(ZOPH, {"start_layers": 2}, seed=0)
    agent.dream(lambda ps: [1.0] * len(ps), fitted_on=50)
    assert "model_steps" not in agent.progress() and agent.steps == 0
    assert [p.decisions for p in agent.sample(3)] == [p.decisions for p in twin.sample(3)]


def test_model_steps_in_the_zoph_space_use_the_curriculum_depth() -> None:
    settings = {"start_layers": 2, "layers_step": 0, "model_steps": 2, "model_batch": 4}
    agent = ReinforceAgent(ZOPH, settings, seed=0)
    depths: list[int] = []

    def predict(proposals: list[Proposal]) -> list[float | None]:
        depths.extend(len(p.arch.layers) for p in proposals)
        return [float(i) for i in range(len(proposals))]

    agent.dream(predict, fitted_on=10)
    assert depths == [2] * 8 and agent.steps == 2


# ---------------------------------------------------------------------------- qlearning


def test_explore_fraction_sets_the_random_share_of_the_budget() -> None:
    schedule = explore_schedule(200, 0.2)
    assert schedule[0] == (1.0, 40)
    assert [e for e, _ in schedule] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert sum(n for _, n in schedule) == pytest.approx(200, abs=5)
    space = MetaQNNSpace(conv_filters=(8,), fc_units=(32,), max_depth=4).bind(input_shape("digits"))
    agent = QLearningAgent(space, {"explore_fraction": 0.2}, seed=0, budget=200)
    assert agent.schedule == schedule
    paper = QLearningAgent(space, {}, seed=0, budget=200)
    assert paper.schedule[0][1] == round(1500 * 200 / 2700)  # the paper's proportions


# ---------------------------------------------------------------------------- presets


def test_presets_resolve_under_explicit_settings() -> None:
    msg = codec.agent_spec_to_proto("reinforce", {"elite": 3}, preset="efficient")
    name, values = codec.agent_spec_from_proto(msg)
    assert name == "reinforce"
    assert values == {**PRESETS["reinforce"]["efficient"], "elite": 3}
    settings = codec.agent_settings_from_proto(msg)
    assert isinstance(settings, ReinforceSettings) and settings.independent and settings.elite == 3
    q = codec.agent_settings_from_proto(cpb.AgentSpec(name="qlearning", preset="efficient"))
    assert isinstance(q, QLearningSettings) and q.explore_fraction == 0.2
    paper = codec.agent_settings_from_proto(cpb.AgentSpec(name="qlearning", preset="paper"))
    assert paper == QLearningSettings()


def test_an_unknown_preset_names_the_agents_presets() -> None:
    assert preset_names("evolution") == ["paper"]
    assert preset_names("reinforce") == ["paper", "efficient"]
    with pytest.raises(AgentSettingsError, match="unknown preset 'fast' for agent 'reinforce'"):
        preset_settings("reinforce", "fast")
    with pytest.raises(AgentSettingsError, match="choose paper$"):
        codec.agent_spec_from_proto(cpb.AgentSpec(name="random", preset="efficient"))
