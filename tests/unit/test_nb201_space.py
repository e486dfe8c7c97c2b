"""The NB201 cell space and the agents in it: paths, decode/encode, mutation, the spec's JSON
and proto forms, and each agent's NB201-specific behaviour with a fixed seed."""

from __future__ import annotations

import random
from itertools import product

import pytest
import torch

from controller_service import codec as controller_codec
from controller_service.agents.edge_policy import EdgePolicy
from controller_service.agents.evolution import EvolutionAgent
from controller_service.agents.qlearning import QLearningAgent
from controller_service.agents.reinforce import ReinforceAgent
from controller_service.spaces import (
    Nb201Space,
    SpaceError,
    ZophSpace,
    encode,
    mutate_decisions,
    random_decisions,
)
from controller_service.spec import SearchSpec, SpecError, named_space
from nasrl.core.arch import arch_hash, format_arch, parse
from nasrl.core.cell import CELL_OPS, EDGES, Skeleton
from nasrl.core.cell_text import parse_skeleton
from nasrl.core.errors import ArchSyntaxError
from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from tests.helpers import through_bytes

SMALL = Nb201Space(skeleton=Skeleton(channels=8, cells_per_stage=1, stages=2))
BEST = ["nor_conv_3x3"] * 6


def toy_reward(path: list[str]) -> float:
    """Each 3x3 conv is worth 0.1: the all-conv cell (0.8) is the unique best."""
    return 0.2 + 0.1 * path.count("nor_conv_3x3")


# ---------------------------------------------------------------------------- the space


def test_paths_decode_to_cells_and_encode_back() -> None:
    rng = random.Random(0)
    for _ in range(50):
        path = SMALL.random_path(rng)
        arch = SMALL.decode(path)
        assert arch.cell is not None and arch.cell.skeleton == SMALL.skeleton
        assert [op.value for op in arch.cell.ops] == path
        assert SMALL.encode(parse(format_arch(arch))) == path
        assert encode(SMALL, arch) == {"path": path}


def test_walk_states_are_the_edges_decided_so_far() -> None:
    states = SMALL.follow(BEST)
    assert [len(s.ops) for s in states] == list(range(len(EDGES) + 1))
    assert states[0].key == "start" and not states[0].terminal
    assert states[2].key == "nor_conv_3x3|nor_conv_3x3"
    assert states[-1].terminal and SMALL.actions(states[-1]) == []
    assert [a.action for a in SMALL.actions(states[0])] == list(SMALL.ops)
    assert all("->" not in s.key for s in states)  # "s->a" is the Q-table's key


def test_a_mutation_changes_exactly_one_edge() -> None:
    rng = random.Random(1)
    for _ in range(100):
        path = SMALL.random_path(rng)
        new = mutate_decisions(SMALL, {"path": path}, rng)["path"]
        assert sum(a != b for a, b in zip(path, new)) == 1


def test_an_op_subset_is_respected_and_one_op_has_nothing_to_mutate() -> None:
    space = Nb201Space(ops=("skip_connect", "nor_conv_1x1")).validate()
    rng = random.Random(2)
    seen = {op for _ in range(50) for op in random_decisions(space, rng, 0)["path"]}
    assert seen == {"skip_connect", "nor_conv_1x1"}
    with pytest.raises(ValueError, match="'none' is not one of this space's ops"):
        space.decode(["none"] * 6)
    single = Nb201Space(ops=("none",))
    assert single.mutate(["none"] * 6, rng) == ["none"] * 6


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (Nb201Space(ops=()), "at least one operation"),
        (Nb201Space(ops=("conv_5x5",)), "'conv_5x5', which is not a cell operation"),
        (Nb201Space(ops=("none", "none")), "ops lists an operation twice"),
        (Nb201Space(skeleton=Skeleton(stages=7)), "skeleton.stages must be between 1 and 6"),
        (Nb201Space(skeleton=Skeleton(channels=0)), "skeleton.channels must be between"),
    ],
)
def test_bad_settings_name_the_setting(space: Nb201Space, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        space.validate()


def test_encode_refuses_what_is_not_in_the_space() -> None:
    with pytest.raises(ValueError, match="a layer network is not a cell"):
        encode(SMALL, parse("C(8,3,1)"))
    with pytest.raises(ValueError, match=r"skeleton \(C=16, N=5, S=3\) is not this space's"):
        encode(SMALL, parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    with pytest.raises(ValueError, match="this search space holds layer networks"):
        encode(ZophSpace(), SMALL.decode(BEST))


def test_isomorphic_cells_hash_the_same_so_dedup_pays_once() -> None:
    # node 1 is unused when neither 1->2 nor 1->3 carries anything: its op does not matter
    a = SMALL.decode(["nor_conv_1x1", "nor_conv_3x3", "none", "skip_connect", "none", "none"])
    b = SMALL.decode(["avg_pool_3x3", "nor_conv_3x3", "none", "skip_connect", "none", "none"])
    assert arch_hash(a) == arch_hash(b) and a != b


def test_the_space_of_all_five_ops_has_15625_cells() -> None:
    assert Nb201Space().size == 15_625
    paths = {tuple(p) for p in product(Nb201Space().ops, repeat=len(EDGES))}
    assert len(paths) == 15_625


def test_parse_skeleton_with_or_without_brackets() -> None:
    assert parse_skeleton("N=1") == Skeleton(cells_per_stage=1)
    assert parse_skeleton("[C=8,N=2,S=2]") == Skeleton(8, 2, 2)
    with pytest.raises(ArchSyntaxError, match="unknown skeleton setting 'X'"):
        parse_skeleton("X=1")
    with pytest.raises(ArchSyntaxError, match="unexpected text after the skeleton"):
        parse_skeleton("[N=1]junk")


# ---------------------------------------------------------------------------- spec and codec


def test_spec_json_round_trip_keeps_the_space() -> None:
    spec = SearchSpec(agent="evolution", space=SMALL).validate()
    again = SearchSpec.from_json(through_bytes(spec.to_json()))
    assert again.space == SMALL and again == spec
    assert named_space("nb201") == Nb201Space()
    with pytest.raises(SpecError, match="choose metaqnn, nb201, zoph"):
        named_space("nb202")


def test_the_proto_space_round_trips_with_defaults_for_zeros() -> None:
    msg = cpb.SearchSpace(
        nb201=cpb.Nb201Space(
            ops=[apb.CELL_OP_NONE, apb.CELL_OP_NOR_CONV_3X3],
            skeleton=apb.Skeleton(cells_per_stage=1),
        )
    )
    space = controller_codec.space_from_proto(msg)
    assert space == Nb201Space(ops=("none", "nor_conv_3x3"), skeleton=Skeleton(cells_per_stage=1))
    assert controller_codec.space_from_proto(cpb.SearchSpace(nb201=cpb.Nb201Space())) == (
        Nb201Space()
    )
    request = cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="random"), space=msg)
    spec = controller_codec.spec_from_proto(request).validate()
    back = controller_codec.spec_to_proto(spec)
    assert back.space == cpb.SearchSpace(
        nb201=cpb.Nb201Space(
            ops=[apb.CELL_OP_NONE, apb.CELL_OP_NOR_CONV_3X3],
            skeleton=apb.Skeleton(channels=16, cells_per_stage=1, stages=3),
        )
    )


def test_an_unspecified_op_in_the_proto_space_is_a_spec_error() -> None:
    msg = cpb.SearchSpace(nb201=cpb.Nb201Space(ops=[apb.CELL_OP_UNSPECIFIED]))
    with pytest.raises(SpecError, match="space.nb201.ops: .* has no operation"):
        controller_codec.space_from_proto(msg)


# ---------------------------------------------------------------------------- agents


@pytest.mark.parametrize("independent", [False, True], ids=["lstm", "independent"])
def test_reinforce_learns_the_best_cell(independent: bool) -> None:
    # the LSTM collapses onto a near-best cell at 0.05 (premature convergence), so 0.01
    settings = {"independent": independent, "learning_rate": 0.05 if independent else 0.01}
    settings["batch"] = 4
    agent = ReinforceAgent(SMALL, settings, seed=0)
    before = agent.log_prob({"path": BEST}).item()
    for _ in range(100):
        for p in agent.sample(4):
            agent.update(p.decisions, toy_reward(p.decisions["path"]))
    after = agent.log_prob({"path": BEST}).item()
    assert after > before + 2.0  # e^2 times likelier than before
    assert "curriculum_layers" not in agent.progress()


@pytest.mark.parametrize("independent", [False, True], ids=["lstm", "independent"])
def test_reinforce_sampled_log_prob_is_the_replayed_one(independent: bool) -> None:
    agent = ReinforceAgent(SMALL, {"independent": independent}, seed=4)
    for p in agent.sample(5):
        assert agent.log_prob(p.decisions).item() == pytest.approx(p.decisions["logp"], abs=1e-5)


def test_reinforce_independent_policy_is_one_softmax_per_edge() -> None:
    agent = ReinforceAgent(SMALL, {"independent": True}, seed=0)
    assert isinstance(agent.policy, EdgePolicy)
    shapes = {k: tuple(v.shape) for k, v in agent.policy.state_dict().items()}
    assert shapes == {"logits": (len(EDGES), len(CELL_OPS))}


def test_reinforce_refuses_paths_outside_its_space() -> None:
    agent = ReinforceAgent(Nb201Space(ops=("none", "skip_connect")), {}, seed=0)
    with pytest.raises(ValueError, match="'nor_conv_3x3' is not one of this space's ops"):
        agent.update({"path": BEST}, 0.5)
    with pytest.raises(ValueError, match="a cell path has 6 operations"):
        agent.update({"path": ["none"]}, 0.5)


def test_reinforce_state_survives_bytes_and_continues_identically() -> None:
    a = ReinforceAgent(SMALL, {"batch": 2}, seed=7)
    for p in a.sample(5):
        a.update(p.decisions, toy_reward(p.decisions["path"]))
    b = ReinforceAgent(SMALL, {"batch": 2}, seed=99)
    b.load_state_dict(through_bytes(a.state_dict()))
    assert [p.decisions["path"] for p in a.sample(6)] == [p.decisions["path"] for p in b.sample(6)]
    for x, y in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(x, y)


def test_qlearning_finds_the_best_cell_greedily() -> None:
    space = Nb201Space(ops=("skip_connect", "nor_conv_3x3"), skeleton=SMALL.skeleton)
    agent = QLearningAgent(space, {"learning_rate": 0.1, "replay": 20}, seed=0, budget=300)
    for _ in range(300):
        (p,) = agent.sample(1)
        agent.update(p.decisions, toy_reward(p.decisions["path"]))
    assert agent.greedy_path() == BEST
    top = agent.export_q()[0]
    assert top[1].count("|") == 5 and top[2] > 0.5  # a state names the edges decided so far


def test_evolution_children_are_one_edge_from_a_population_member() -> None:
    agent = EvolutionAgent(SMALL, {"population": 5, "sample_size": 2}, seed=0)
    members = []
    for p in agent.sample(5):
        agent.update(p.decisions, toy_reward(p.decisions["path"]))
        members.append(p.decisions["path"])
    for p in agent.sample(10):
        child = p.decisions["path"]
        assert min(sum(a != b for a, b in zip(child, m)) for m in members) == 1
