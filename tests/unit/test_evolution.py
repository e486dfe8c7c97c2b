"""Regularized evolution (Real et al. 2019) in the Zoph space and in the MetaQNN space: random
initial population, one-decision mutations of tournament winners, death by age, learning a
synthetic reward, checkpoints through torch.save/torch.load(weights_only=True) and settings
validation."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest

from controller_service.agents.base import AgentSettingsError
from controller_service.agents.evolution import EvolutionAgent
from controller_service.spaces import MetaQNNSpace, ZophSpace
from nasrl.core.shapes import InputShape, analyze
from tests.helpers import through_bytes

DIGITS = InputShape(1, 8, 8, 10)
ZOPH = ZophSpace(filters=(8, 16), max_layers=4)
METAQNN = MetaQNNSpace().bind(DIGITS)
SPACES = [pytest.param(ZOPH, id="zoph"), pytest.param(METAQNN, id="metaqnn")]
TERMINATIONS = {"GAP", "SM"}


def zoph_distance(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Number of differing decisions (tokens and skip bits) of two same-depth Zoph networks."""
    assert len(a["tokens"]) == len(b["tokens"])
    tokens = sum(x != y for ta, tb in zip(a["tokens"], b["tokens"]) for x, y in zip(ta, tb))
    bits = sum(x != y for sa, sb in zip(a["skips"], b["skips"]) for x, y in zip(sa, sb))
    return int(tokens + bits)


def is_path_mutation(new: list[str], old: list[str]) -> bool:
    """``new`` = ``old`` with one layer changed, then ``old``'s later layers as long as the rules
    allow, closed by one termination where it was cut short."""
    i = next((i for i, (x, y) in enumerate(zip(new, old)) if x != y), None)
    if i is None:
        return False
    rest = new[i + 1 :]
    if rest == old[i + 1 : i + 1 + len(rest)]:
        return True
    return bool(rest) and rest[-1] in TERMINATIONS and rest[:-1] == old[i + 1 : i + len(rest)]


def is_mutation(space: Any, new: dict[str, Any], old: dict[str, Any]) -> bool:
    if isinstance(space, MetaQNNSpace):
        return is_path_mutation(new["path"], old["path"])
    return zoph_distance(new, old) == 1


def members(agent: EvolutionAgent) -> list[tuple[dict[str, Any], float]]:
    return [(d, r) for d, r in agent.state_dict()["population"]]


def reward_of(decisions: dict[str, Any]) -> float:
    """A fixed pseudo-random value in [0, 1), different for (almost) every network."""
    digest = hashlib.sha256(repr(sorted(decisions.items())).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def valid(space: Any, decisions: dict[str, Any]) -> None:
    if isinstance(space, MetaQNNSpace):
        space.follow(decisions["path"])
        analyze(space.decode(decisions["path"]), DIGITS)
    else:
        assert len(decisions["tokens"]) == 4
        assert [len(b) for b in decisions["skips"]] == [0, 1, 2, 3]
        analyze(space.decode(decisions["tokens"], decisions["skips"]), DIGITS)


# ---------------------------------------------------------------------------- proposals


def test_first_population_is_random_zoph() -> None:
    agent = EvolutionAgent(ZOPH, {"population": 10, "sample_size": 3}, seed=4)
    first: list[dict[str, Any]] = []
    for _ in range(10):
        (p,) = agent.sample(1)
        valid(ZOPH, p.decisions)
        # not a one-decision mutation of anything before it (26 random decisions each)
        assert all(zoph_distance(p.decisions, q) >= 3 for q in first)
        first.append(p.decisions)
        agent.update(p.decisions, reward_of(p.decisions))


def test_first_population_is_random_metaqnn() -> None:
    """The first proposals are the uniform random walks of the agent's seeded RNG."""
    agent = EvolutionAgent(METAQNN, {"population": 10, "sample_size": 3}, seed=4)
    rng = random.Random(4)
    for _ in range(10):
        (p,) = agent.sample(1)
        assert p.decisions["path"] == METAQNN.random_path(rng)
        assert p.arch == METAQNN.decode(p.decisions["path"])
        agent.update(p.decisions, reward_of(p.decisions))


@pytest.mark.parametrize("space", SPACES)
def test_after_population_results_proposals_are_mutations_of_members(space: Any) -> None:
    agent = EvolutionAgent(space, {"population": 8, "sample_size": 3}, seed=1)
    for _ in range(8):
        (p,) = agent.sample(1)
        agent.update(p.decisions, reward_of(p.decisions))
    for _ in range(60):
        population = [d for d, _ in members(agent)]
        (p,) = agent.sample(1)
        valid(space, p.decisions)
        assert any(is_mutation(space, p.decisions, m) for m in population), p.decisions
        assert p.arch == (
            space.decode(p.decisions["path"])
            if isinstance(space, MetaQNNSpace)
            else space.decode(p.decisions["tokens"], p.decisions["skips"])
        )
        agent.update(p.decisions, reward_of(p.decisions))


@pytest.mark.parametrize("space", SPACES)
def test_proposals_before_results_arrive_are_random(space: Any) -> None:
    """Asynchronous workers: past ``population`` samples but with fewer results than a
    tournament needs, proposals stay random (none is a mutation of a reported one)."""
    agent = EvolutionAgent(space, {"population": 4, "sample_size": 3}, seed=2)
    early = agent.sample(6)
    agent.update(early[0].decisions, 0.5)
    agent.update(early[1].decisions, 0.6)
    later = agent.sample(3)  # 2 results < sample_size 3
    assert len(members(agent)) == 2
    if isinstance(space, ZophSpace):
        for p in later:
            assert min(zoph_distance(p.decisions, e.decisions) for e in early) >= 3
    agent.update(early[2].decisions, 0.7)
    for p in agent.sample(10):  # now 3 results: mutations of them
        assert any(is_mutation(space, p.decisions, e.decisions) for e in early[:3])


# ---------------------------------------------------------------------------- aging


@pytest.mark.parametrize("space", SPACES)
def test_population_holds_the_last_results_and_the_oldest_dies_even_if_best(space: Any) -> None:
    agent = EvolutionAgent(space, {"population": 5, "sample_size": 2}, seed=3)
    reported: list[tuple[dict[str, Any], float]] = []
    for k in range(12):
        (p,) = agent.sample(1)
        r = 1.0 if k == 0 else 0.1 + 0.01 * k  # the first is by far the best
        agent.update(p.decisions, r)
        reported.append((p.decisions, r))
        assert members(agent) == reported[-5:]
        assert agent.progress()["population"] == min(k + 1, 5)
        assert agent.progress()["population_best"] == pytest.approx(
            max(r for _, r in reported[-5:])
        )
    assert agent.progress()["population_best"] < 1.0
    assert agent.progress()["updates"] == 12 and agent.progress()["samples"] == 12


def test_failed_child_joins_with_the_failure_reward() -> None:
    agent = EvolutionAgent(ZOPH, {"population": 3, "sample_size": 1, "failure_reward": -1.0})
    (p,) = agent.sample(1)
    agent.update(p.decisions, None)
    assert members(agent) == [(p.decisions, -1.0)]
    with pytest.raises(ValueError):
        agent.update(p.decisions, float("inf"))


def test_only_the_decisions_are_kept() -> None:
    agent = EvolutionAgent(METAQNN, {"population": 3, "sample_size": 1})
    (p,) = agent.sample(1)
    agent.update({**p.decisions, "epsilon": 1.0, "extra": [1, 2]}, 0.5)
    assert members(agent) == [({"path": p.decisions["path"]}, 0.5)]


# ---------------------------------------------------------------------------- tournament


def fill(agent: EvolutionAgent, rewards: list[float]) -> list[dict[str, Any]]:
    out = []
    for r in rewards:
        (p,) = agent.sample(1)
        agent.update(p.decisions, r)
        out.append(p.decisions)
    return out


def parent_index(space: Any, new: dict[str, Any], population: list[dict[str, Any]]) -> int:
    found = [i for i, m in enumerate(population) if is_mutation(space, new, m)]
    assert len(found) == 1, (new, found)
    return found[0]


def test_tournament_of_the_whole_population_always_picks_the_best() -> None:
    agent = EvolutionAgent(ZOPH, {"population": 6, "sample_size": 6}, seed=5)
    population = fill(agent, [0.3, 0.1, 0.9, 0.5, 0.2, 0.4])
    for p in agent.sample(40):
        assert zoph_distance(p.decisions, population[2]) == 1


def test_tournament_picks_the_best_of_its_sample() -> None:
    """Best of 3 drawn from 6: never one of the 2 worst; every other member wins sometimes."""
    agent = EvolutionAgent(ZOPH, {"population": 6, "sample_size": 3}, seed=6)
    rewards = [0.3, 0.1, 0.9, 0.5, 0.2, 0.4]
    population = fill(agent, rewards)
    wins = [0] * 6
    for p in agent.sample(300):
        wins[parent_index(ZOPH, p.decisions, population)] += 1
    assert wins[1] == 0 and wins[4] == 0  # the two worst
    # P(the k-th best wins) = C(6 - k, 2) / C(6, 3): 0.5, 0.3, 0.15, 0.05 -> 150, 90, 45, 15
    assert 115 < wins[2] < 185
    assert 60 < wins[3] < 120
    assert 25 < wins[5] < 70
    assert 3 <= wins[0] < 35


def test_tournament_of_one_is_a_uniform_parent() -> None:
    agent = EvolutionAgent(METAQNN, {"population": 5, "sample_size": 1}, seed=7)
    population = fill(agent, [0.9, 0.1, 0.2, 0.3, 0.4])
    parents = set()
    for p in agent.sample(100):
        parents |= {i for i, m in enumerate(population) if is_mutation(METAQNN, p.decisions, m)}
    assert len(parents) >= 4  # not always the best


# ---------------------------------------------------------------------------- learning


def threes(decisions: dict[str, Any]) -> float:
    """Fraction of the filter heights and widths that are 3 (index 1 of (1, 3, 5, 7))."""
    tokens = decisions["tokens"]
    return float(sum((t[0] == 1) + (t[1] == 1) for t in tokens) / (2 * len(tokens)))


def test_evolution_improves_a_synthetic_reward() -> None:
    agent = EvolutionAgent(ZOPH, {"population": 10, "sample_size": 3}, seed=0)
    rewards = []
    for _ in range(200):
        (p,) = agent.sample(1)
        r = threes(p.decisions)
        rewards.append(r)
        agent.update(p.decisions, r)
    first, last = sum(rewards[:50]) / 50, sum(rewards[-50:]) / 50
    print(f"evolution synthetic reward: first 50 {first:.3f}, last 50 {last:.3f}")
    assert last > first + 0.1, (first, last)
    assert max(rewards[-50:]) > max(rewards[:10])


# ---------------------------------------------------------------------------- state


@pytest.mark.parametrize("space", SPACES)
def test_state_dict_round_trip(space: Any) -> None:
    settings = {"population": 6, "sample_size": 2}
    agent = EvolutionAgent(space, settings, seed=8)
    for _ in range(15):
        (p,) = agent.sample(1)
        agent.update(p.decisions, reward_of(p.decisions))
    copy = EvolutionAgent(space, settings, seed=123)
    copy.load_state_dict(through_bytes(agent.state_dict()))
    assert copy.progress() == agent.progress()
    assert members(copy) == members(agent)
    for _ in range(15):
        (p,), (q,) = agent.sample(1), copy.sample(1)
        assert p.decisions == q.decisions
        assert p.arch == q.arch
        agent.update(p.decisions, reward_of(p.decisions))
        copy.update(q.decisions, reward_of(q.decisions))
    assert copy.state_dict() == agent.state_dict()


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"population": 10, "sample_size": 11}, "sample_size"),
        ({"population": 10.5}, "population"),
        ({"population": "10"}, "population"),
        ({"population": True}, "population"),
        ({"population": 1, "sample_size": 1}, "population"),
        ({"sample_size": 0}, "sample_size"),
        ({"layers": -1}, "layers"),
        ({"generations": 3}, "generations"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, Any], name: str) -> None:
    with pytest.raises(AgentSettingsError, match=name):
        EvolutionAgent(ZOPH, settings)


@pytest.mark.parametrize("space", ["zoph", None, 3])
def test_wrong_space_type(space: Any) -> None:
    with pytest.raises(AgentSettingsError, match="evolution"):
        EvolutionAgent(space)
