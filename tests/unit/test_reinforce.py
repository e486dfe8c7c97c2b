"""The REINFORCE controller (Zoph & Le 2017): reproducible sampling, valid architectures, the
depth curriculum, skip connections, learning a synthetic reward (and not learning a random
one), late out-of-order results, batching, checkpoints through torch.save/torch.load, and
settings validation."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import torch

from controller_service.agents.base import AgentSettingsError, Proposal
from controller_service.agents.controller_lstm import ControllerLSTM, Trajectory
from controller_service.agents.reinforce import ReinforceAgent
from controller_service.spaces import ZOPH_DECISIONS, ZophSpace
from nasrl.core.arch import Conv
from nasrl.core.shapes import InputShape, analyze
from tests.helpers import through_bytes

DIGITS = InputShape(1, 8, 8, 10)
SMALL = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16), max_layers=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def texts(proposals: list[Proposal]) -> list[str]:
    return [str(p.arch) for p in proposals]


def weights(agent: ReinforceAgent) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.policy.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def three_by_three(p: Proposal) -> float:
    """Synthetic reward: the fraction of layers with a 3x3 filter."""
    convs = [layer.op for layer in p.arch.layers if isinstance(layer.op, Conv)]
    return sum(c.kernel_h == 3 and c.kernel_w == 3 for c in convs) / len(p.arch.layers)


# ---------------------------------------------------------------------------- sampling


def test_same_seed_same_samples_different_seed_different() -> None:
    a, b, c = (ReinforceAgent(ZophSpace(), seed=s) for s in (7, 7, 8))
    first = texts(a.sample(5))
    assert first == texts(b.sample(5))
    assert first != texts(c.sample(5))
    assert len(set(first)) == 5  # it samples, it does not repeat one architecture


def test_sampling_leaves_torchs_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    agent = ReinforceAgent(ZophSpace(), seed=3)
    proposals = agent.sample(3)
    agent.update(proposals[0].decisions, 0.5)
    assert torch.equal(before, torch.random.get_rng_state())


def test_samples_are_valid_convs_from_the_space() -> None:
    space = ZophSpace()
    agent = ReinforceAgent(space, seed=1)
    for p in agent.sample(40):
        analyze(p.arch, DIGITS)  # raises ArchError if it would not build
        assert len(p.arch.layers) == 6 == p.decisions["layers"]
        for layer in p.arch.layers:
            op = layer.op
            assert isinstance(op, Conv)
            assert op.kernel_h in space.filter_sizes and op.kernel_w in space.filter_sizes
            assert op.stride_h in space.strides and op.stride_w in space.strides
            assert op.filters in space.filters
        assert json.loads(json.dumps(p.decisions)) == p.decisions
        assert space.decode(p.decisions["tokens"], p.decisions["skips"]) == p.arch


def test_depth_follows_the_curriculum_and_the_space_cap() -> None:
    space = ZophSpace(max_layers=7)
    settings = {"start_layers": 2, "layers_step": 2, "step_every": 10}
    agent = ReinforceAgent(space, settings, seed=0)
    depths = [len(p.arch.layers) for p in agent.sample(40)]
    assert depths == [2] * 10 + [4] * 10 + [6] * 10 + [7] * 10
    assert agent.progress()["curriculum_layers"] == 7.0


def test_skip_connections_are_sampled() -> None:
    agent = ReinforceAgent(ZophSpace(), seed=2)
    later = [
        (i, layer)
        for p in agent.sample(30)
        for i, layer in enumerate(p.arch.layers, start=1)
        if i > 1
    ]
    skipping = [layer for i, layer in later if layer.inputs != (i - 1,)]
    assert len(skipping) / len(later) > 0.5  # untrained: each bit is about a coin flip


@pytest.mark.parametrize(
    ("space", "settings"),
    [(ZophSpace(skip_connections=False), {}), (ZophSpace(), {"skip_connections": False})],
)
def test_no_skip_connections_when_switched_off(space: ZophSpace, settings: dict[str, Any]) -> None:
    agent = ReinforceAgent(space, settings, seed=0)
    for p in agent.sample(10):
        assert all(layer.inputs == () for layer in p.arch.layers)
        assert p.decisions["skips"] is None
        agent.update(p.decisions, 0.1)


# ---------------------------------------------------------------------------- learning


def learning_run(random_rewards: bool, samples: int = 200) -> tuple[float, float]:
    """Mean 3x3 fraction of the first and last 50 samples. With ``random_rewards`` the
    agent is told a seeded uniform reward unrelated to the architecture instead."""
    agent = ReinforceAgent(SMALL, {"learning_rate": 0.005, "start_layers": 4}, seed=0)
    noise = random.Random(0)
    achieved = []
    for _ in range(samples):
        (p,) = agent.sample(1)
        achieved.append(three_by_three(p))
        agent.update(p.decisions, noise.random() if random_rewards else achieved[-1])
    return sum(achieved[:50]) / 50, sum(achieved[-50:]) / 50


def test_reinforce_learns_a_synthetic_reward() -> None:
    first, last = learning_run(random_rewards=False)
    assert last - first >= 0.2, (first, last)  # measured: 0.145 -> 0.745


def test_random_rewards_teach_nothing() -> None:
    first, last = learning_run(random_rewards=True)
    assert last - first < 0.2, (first, last)  # measured: 0.14 -> 0.1


def policy_entropy(entropy_weight: float) -> float:
    """Entropy of the policy over a fixed architecture after learning the 3x3 reward."""
    settings = {"learning_rate": 0.02, "start_layers": 4, "entropy_weight": entropy_weight}
    agent = ReinforceAgent(SMALL, settings, seed=0)
    for _ in range(80):
        (p,) = agent.sample(1)
        agent.update(p.decisions, three_by_three(p))
    probe = Trajectory([[0] * 5] * 4, [[0] * i for i in range(4)])
    assert isinstance(agent.policy, ControllerLSTM)
    return agent.policy.rollout([probe], 4, skips=True)[2].item()


def test_entropy_bonus_keeps_the_policy_exploring() -> None:
    assert policy_entropy(1.0) > policy_entropy(0.0) + 5.0  # measured: 21.3 vs 13.8


# ---------------------------------------------------------------------------- updates


def test_late_out_of_order_updates() -> None:
    agent = ReinforceAgent(ZophSpace(), seed=4)
    proposals = agent.sample(8)
    for p in proposals:  # the policy has not changed: replaying gives the sampling logp
        assert agent.log_prob(p.decisions).item() == pytest.approx(p.decisions["logp"], abs=1e-4)
    before = weights(agent)
    for i, p in enumerate(reversed(proposals)):
        agent.update(json.loads(json.dumps(p.decisions)), 0.1 * i)
    assert not same_weights(before, weights(agent))
    assert agent.progress()["updates"] == 8.0
    changed = agent.log_prob(proposals[0].decisions).item()
    assert changed != pytest.approx(proposals[0].decisions["logp"], abs=1e-4)


def test_batch_averages_before_one_step() -> None:
    agent = ReinforceAgent(SMALL, {"batch": 4}, seed=5)
    proposals = agent.sample(4)
    before = weights(agent)
    for p in proposals[:3]:
        agent.update(p.decisions, 0.3)
    assert same_weights(before, weights(agent))  # pending, not stepped
    agent.update(proposals[3].decisions, 0.9)
    assert not same_weights(before, weights(agent))
    assert agent.steps == 1 and agent.pending == []


def test_default_batch_is_the_papers_m_of_8() -> None:
    """Zoph & Le 2017, Sec. 3.4: each controller replica samples m = 8 architectures and the
    gradient is averaged over them before one update; nasrl's ``batch`` defaults to that m."""
    agent = ReinforceAgent(SMALL, seed=3)
    assert agent.settings.batch == 8
    proposals = agent.sample(8)
    before = weights(agent)
    for p in proposals[:7]:
        agent.update(p.decisions, 0.5)
    assert same_weights(before, weights(agent)) and len(agent.pending) == 7
    agent.update(proposals[7].decisions, 0.9)
    assert not same_weights(before, weights(agent))
    assert agent.steps == 1 and agent.pending == []


def test_failure_uses_failure_reward_and_baseline_is_an_ema() -> None:
    agent = ReinforceAgent(SMALL, {"failure_reward": -0.5, "baseline_decay": 0.9}, seed=0)
    p, q = agent.sample(2)
    assert "baseline" not in agent.progress()
    agent.update(p.decisions, None)
    assert agent.progress()["baseline"] == pytest.approx(-0.5)
    agent.update(q.decisions, 1.5)
    assert agent.progress()["baseline"] == pytest.approx(0.9 * -0.5 + 0.1 * 1.5)


@pytest.mark.parametrize(
    "decisions",
    [
        {},
        {"tokens": []},
        {"tokens": [[0, 0, 0, 0, 9]], "skips": [[]]},
        {"tokens": [[0, 0, 0, 0]], "skips": [[]]},
        {"tokens": [[0] * 5, [0] * 5], "skips": [[]]},
        {"tokens": [[0] * 5, [0] * 5], "skips": [[], [2]]},
    ],
)
def test_malformed_decisions_are_rejected(decisions: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="decisions"):
        ReinforceAgent(SMALL).update(decisions, 0.5)


# ---------------------------------------------------------------------------- checkpoints


def test_state_round_trip_through_bytes_with_a_pending_batch() -> None:
    a = ReinforceAgent(SMALL, {"batch": 3, "step_every": 4, "start_layers": 2}, seed=11)
    for p in a.sample(6):  # two steps' worth: weights and Adam moments move
        a.update(p.decisions, three_by_three(p))
    late = a.sample(5)
    a.update(late[0].decisions, 0.7)  # one result pending in the current batch
    state = a.state_dict()
    b = ReinforceAgent(SMALL, {"batch": 3, "step_every": 4, "start_layers": 2}, seed=99)
    b.load_state_dict(through_bytes(state))
    assert same_weights(weights(a), weights(b))
    assert b.progress() == a.progress() and len(b.pending) == 1
    assert texts(a.sample(4)) == texts(b.sample(4))  # generator and curriculum position
    for agent in (a, b):  # completes the pending batch: same step from both
        agent.update(late[1].decisions, 0.2)
        agent.update(late[2].decisions, 0.9)
    assert a.steps == b.steps == 3
    assert same_weights(weights(a), weights(b))
    assert not same_weights(state["policy"], weights(a))  # the state was a copy, not a view
    assert texts(a.sample(3)) == texts(b.sample(3))


def test_fresh_state_has_no_baseline() -> None:
    state = through_bytes(ReinforceAgent(SMALL).state_dict())
    assert state["baseline"] is None and state["pending"] == []
    agent = ReinforceAgent(SMALL, seed=1)
    agent.load_state_dict(state)
    assert texts(agent.sample(2)) == texts(ReinforceAgent(SMALL, seed=0).sample(2))


# ---------------------------------------------------------------------------- settings


def test_defaults_are_the_papers() -> None:
    d = ReinforceAgent.defaults
    assert (d["lstm_layers"], d["hidden"], d["learning_rate"]) == (2, 35, 6e-4)
    assert (d["start_layers"], d["layers_step"], d["step_every"]) == (6, 2, 1600)
    assert ReinforceAgent.default_reward == "zoph"
    policy = ReinforceAgent(ZophSpace()).policy
    assert isinstance(policy, ControllerLSTM)
    assert len(policy.cells) == 2 and all(c.hidden_size == 35 for c in policy.cells)
    assert len(policy.decoders) == len(ZOPH_DECISIONS)
    largest = max(p.detach().abs().max().item() for p in policy.parameters())
    assert 0.07 < largest <= 0.08  # every weight uniform in +-init_range


def test_unknown_setting_is_named() -> None:
    with pytest.raises(AgentSettingsError, match="hiden"):
        ReinforceAgent(ZophSpace(), {"hiden": 35})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hidden", 0),
        ("hidden", 2000),
        ("lstm_layers", 5),
        ("learning_rate", 0.0),
        ("learning_rate", 2.0),
        ("baseline_decay", 1.0),
        ("batch", 0),
        ("start_layers", 0),
        ("layers_step", -1),
        ("step_every", 0),
        ("entropy_weight", -0.1),
        ("init_range", 0.0),
        ("hidden", 3.5),
        ("batch", True),
        ("skip_connections", "yes"),
        ("failure_reward", float("nan")),
    ],
)
def test_out_of_range_setting_is_named(name: str, value: Any) -> None:
    with pytest.raises(AgentSettingsError, match=name):
        ReinforceAgent(ZophSpace(), {name: value})


def test_other_spaces_are_refused() -> None:
    class OtherSpace:
        name = "metaqnn"

    with pytest.raises(AgentSettingsError, match="metaqnn"):
        ReinforceAgent(OtherSpace())  # type: ignore[arg-type]


def test_numpy_sampler_draws_from_the_policy() -> None:
    """The NumPy sampler (used by Sample) and the torch rollout (used for learning) are the
    same distribution: token frequencies of 4,000 samples from a peaked policy agree."""
    from collections import Counter

    policy = ControllerLSTM(ZophSpace(), 35, 2, 2.0, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fast, _ = policy.sample(torch.Generator().manual_seed(1), 3, True, 4000)
        slow, _, _ = policy.rollout(torch.Generator().manual_seed(2), 3, True, 4000)
    for layer, k in ((0, 0), (0, 4), (2, 1)):
        a = Counter(t.tokens[layer][k] for t in fast)
        b = Counter(t.tokens[layer][k] for t in slow)
        for token in set(a) | set(b):
            assert abs(a[token] - b[token]) < 150, (layer, k, a, b)  # ~4 standard deviations
    on = Counter(tuple(t.skips[2]) for t in fast if t.skips)
    off = Counter(tuple(t.skips[2]) for t in slow if t.skips)
    for bits in set(on) | set(off):
        assert abs(on[bits] - off[bits]) < 150, (on, off)
