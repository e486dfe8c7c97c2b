"""Every registered agent passes the same checks (new agents plug in through AGENTS)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from controller_service.agents import AGENTS, Agent, AgentSettingsError, Proposal
from controller_service.agents.persistence import parts_of
from controller_service.searches import ReportConflict, Searches
from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from controller_service.spec import SearchSpec
from controller_service.store import Store, is_plain
from nasrl.core.arch import Conv
from nasrl.core.builder import build
from nasrl.core.cell import Skeleton
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.core.shapes import analyze
from tests.helpers import same_state, through_bytes

ZOPH = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16), max_layers=5)
METAQNN = MetaQNNSpace(conv_filters=(8, 16), fc_units=(64, 32), max_depth=6).bind(
    input_shape("digits")
)
NB201 = Nb201Space(skeleton=Skeleton(channels=10, cells_per_stage=1, stages=2))


def _supports(name: str, space: Space) -> bool:
    try:
        AGENTS[name](space, {}, 0, 100)
    except AgentSettingsError:
        return False
    return True


#: every agent with every space it can search
SPACES: tuple[Space, ...] = (ZOPH, METAQNN, NB201)
PAIRS = [(name, space) for name in sorted(AGENTS) for space in SPACES if _supports(name, space)]
COMBOS = [pytest.param(name, space, id=f"{name}-{space.name}") for name, space in PAIRS]


def make(name: str, seed: int = 3, space: Space = ZOPH) -> Agent:
    return AGENTS[name](space, {}, seed, 100)


def test_every_agent_searches_some_space() -> None:
    assert {name for name, _ in PAIRS} == set(AGENTS)
    assert {space.name for _, space in PAIRS} == {"zoph", "metaqnn", "nb201"}
    assert {name for name, space in PAIRS if space is NB201} == set(AGENTS)


def check_in_space(p: Proposal, space: Space) -> None:
    """The proposal is a network of ``space``: its decisions decode to its architecture and
    every layer is one of the space's choices."""
    if isinstance(space, MetaQNNSpace | Nb201Space):
        space.follow(p.decisions["path"])  # raises if a transition rule is broken
        assert space.decode(p.decisions["path"]) == p.arch
        if isinstance(space, Nb201Space):
            assert p.arch.cell is not None and p.arch.cell.skeleton == space.skeleton
            assert {op.value for op in p.arch.cell.ops} <= set(space.ops)
        return
    assert isinstance(space, ZophSpace)
    assert 1 <= len(p.arch.layers) <= space.max_layers
    for i, layer in enumerate(p.arch.layers, start=1):
        assert isinstance(layer.op, Conv)
        assert layer.op.kernel_h in space.filter_sizes and layer.op.kernel_w in space.filter_sizes
        assert layer.op.stride_h in space.strides and layer.op.stride_w in space.strides
        assert layer.op.filters in space.filters
        assert all(0 <= j < i for j in layer.inputs)


def reward_of(decisions_text: str) -> float:
    return 0.2 + 0.1 * decisions_text.count("3")


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_samples_are_valid_architectures_of_the_space(name: str, space: Space) -> None:
    agent = make(name, space=space)
    proposals = agent.sample(20)
    for p in proposals:  # learn a little, then sample again (mutations, greedy steps, ...)
        agent.update(p.decisions, reward_of(str(p.arch)))
    for p in proposals + agent.sample(20):
        check_in_space(p, space)
        analyze(p.arch, input_shape("digits"))


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_fixed_seed_reproduces_samples(name: str, space: Space) -> None:
    a, b, c = make(name, 11, space), make(name, 11, space), make(name, 12, space)
    first = [str(p.arch) for p in a.sample(10)]
    assert first == [str(p.arch) for p in b.sample(10)]
    assert first != [str(p.arch) for p in c.sample(10)]


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_state_round_trips_through_state_dict(name: str, space: Space) -> None:
    agent = make(name, space=space)
    for p in agent.sample(6):
        agent.update(p.decisions, reward_of(str(p.arch)))
    agent.sample(3)  # advance the RNG past the updates
    clone = make(name, seed=999, space=space)  # everything must come from the state
    clone.load_state_dict(through_bytes(agent.state_dict()))
    assert [str(p.arch) for p in clone.sample(8)] == [str(p.arch) for p in agent.sample(8)]
    assert clone.progress() == agent.progress()


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_light_state_is_plain_and_record_then_learn_is_update(name: str, space: Space) -> None:
    """The light state is written as JSON every call, so it is plain data; ``record`` (in the
    controller's transaction) then ``learn`` (before its next call) is ``update``, with the
    recorded results kept in the light state in between (a restart there loses nothing)."""
    direct, split = make(name, space=space), make(name, space=space)
    for p, q in zip(direct.sample(6), split.sample(6)):
        direct.update(p.decisions, reward_of(str(p.arch)))
        split.record(q.decisions, reward_of(str(q.arch)))
        assert is_plain(parts_of(split).light_state())
        restarted = make(name, seed=999, space=space)
        restarted.load_state_dict(through_bytes(split.state_dict()))
        split = restarted
        split.learn()
    assert is_plain(parts_of(direct).light_state())
    assert [str(p.arch) for p in split.sample(5)] == [str(p.arch) for p in direct.sample(5)]
    assert split.progress() == direct.progress()


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_updates_in_any_order_and_failures_are_accepted(name: str, space: Space) -> None:
    agent = make(name, space=space)
    proposals = agent.sample(6)
    for p in reversed(proposals):
        agent.update(p.decisions, reward_of(str(p.arch)))
    agent.update(proposals[0].decisions, None)  # a failed child
    assert agent.progress()["updates"] == 7  # every agent reports the results it learnt from


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_update_is_idempotent_through_the_controller(name: str, space: Space, tmp_path) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    view = searches.create(
        SearchSpec(agent=name, space=space, budget=5, training=TrainSettings(epochs=1))
    )
    handouts, _ = searches.sample(view.id, 2)
    h = handouts[0]
    result = TrainOutcome(0.7, 0.7, 0.6, 100, 100, 1.0, "cpu", h.text)
    assert searches.update(view.id, h.id, result, None).accepted
    state_before = searches.store.load_agent(view.id)
    again = searches.update(view.id, h.id, result, None)
    assert not again.accepted
    state_after = searches.store.load_agent(view.id)
    assert same_state(state_before, state_after), "a repeated report changed the agent"
    with pytest.raises(ReportConflict):
        searches.update(view.id, h.id, replace(result, validation_accuracy=0.1), None)
    assert searches.view(view.id).counts["done"] == 1
    searches.store.close()


@pytest.mark.parametrize("name", [name for name, space in PAIRS if space.name == "zoph"])
def test_skip_connections_are_sampled_and_every_sample_builds(name: str) -> None:
    agent = make(name, space=ZophSpace(filters=(8, 16), max_layers=6))
    proposals = agent.sample(30)
    with_skips = [
        p
        for p in proposals
        if any(layer.inputs and layer.inputs != (i,) for i, layer in enumerate(p.arch.layers))
    ]
    assert len(with_skips) >= 5, "skip connections are (almost) never sampled"
    for dataset in ("digits", "mnist5k"):
        shape = input_shape(dataset)
        for p in proposals:
            model = build(p.arch, shape).eval()
            with torch.no_grad():
                out = model(torch.randn(2, shape.channels, shape.height, shape.width))
            assert out.shape == (2, shape.classes) and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "space"), COMBOS)
def test_logs_and_entries_are_plain_data(name: str, space: Space) -> None:
    """What the controller stores as JSON besides the light state."""
    agent = make(name, space=space)
    for p in agent.sample(4):
        agent.update(p.decisions, reward_of(str(p.arch)))
    parts = parts_of(agent)
    assert is_plain(parts.log_since(0)) and is_plain(parts.changed_entries())
    assert parts.changed_entries() == {}  # given once
