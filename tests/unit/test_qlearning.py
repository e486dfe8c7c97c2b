"""The MetaQNN Q-learning agent (Baker et al. 2017): the paper's epsilon schedule counted in unique
models (and scaled to small budgets), experience replay, the reverse-order Q update, learning a
synthetic reward, checkpoints through torch.save/torch.load(weights_only=True), export_q and
settings validation."""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

import pytest

from controller_service.agents.base import AgentSettingsError
from controller_service.agents.qlearning import PAPER_SCHEDULE, QLearningAgent, epsilon_schedule
from controller_service.spaces import MetaQNNSpace, ZophSpace
from nasrl.core.shapes import InputShape
from tests.helpers import through_bytes

DIGITS = InputShape(1, 8, 8, 10)
SPACE8 = MetaQNNSpace().bind(DIGITS)
SPACE28 = MetaQNNSpace().bind(InputShape(1, 28, 28, 10))

# The paper's Table 2, written out: (unique models before which epsilon changes, epsilon).
PAPER_TABLE = [
    (1500, 1.0),
    (1600, 0.9),
    (1700, 0.8),
    (1800, 0.7),
    (1950, 0.6),
    (2100, 0.5),
    (2250, 0.4),
    (2400, 0.3),
    (2550, 0.2),
    (2700, 0.1),
]
TENTH_TABLE = [
    (150, 1.0),
    (160, 0.9),
    (170, 0.8),
    (180, 0.7),
    (195, 0.6),
    (210, 0.5),
    (225, 0.4),
    (240, 0.3),
    (255, 0.2),
    (270, 0.1),
]


def expected_epsilon(table: list[tuple[int, float]], unique: int) -> tuple[int, float]:
    for index, (end, eps) in enumerate(table):
        if unique < end:
            return index, eps
    return len(table) - 1, table[-1][1]


def unique_paths(space: MetaQNNSpace, n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[list[str]] = []
    while len(out) < n:
        p = space.random_path(rng)
        if " ".join(p) not in seen:
            seen.add(" ".join(p))
            out.append(p)
    return out


# ---------------------------------------------------------------------------- epsilon


def test_epsilon_schedule_function() -> None:
    assert [n for _, n in PAPER_SCHEDULE] == [1500, 100, 100, 100, 150, 150, 150, 150, 150, 150]
    assert [e for e, _ in PAPER_SCHEDULE] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert epsilon_schedule(1.0) == list(PAPER_SCHEDULE)
    assert [n for _, n in epsilon_schedule(0.1)] == [150, 10, 10, 10, 15, 15, 15, 15, 15, 15]
    assert all(n == 1 for _, n in epsilon_schedule(1e-6))  # every stage at least one model


def check_schedule(
    agent: QLearningAgent, table: list[tuple[int, float]], paths: list[list[str]]
) -> None:
    repeat = {"path": paths[0]}
    for k, path in enumerate(paths):
        assert agent.stage() == expected_epsilon(table, k), k
        assert agent.progress()["epsilon"] == expected_epsilon(table, k)[1]
        agent.update({"path": path}, 0.3)
        if k % 97 == 0:  # a model seen before does not advance the schedule
            before = agent.stage(), agent.progress()["unique_models"]
            agent.update(repeat, 0.3)
            agent.update({"path": path}, 0.4)
            assert (agent.stage(), agent.progress()["unique_models"]) == before
    assert agent.stage() == (9, 0.1)  # past the end, the last epsilon stays
    assert agent.progress()["unique_models"] == len(paths)


def test_paper_schedule_counts_unique_models() -> None:
    agent = QLearningAgent(SPACE28, {"replay": 0, "schedule_scale": 1.0}, seed=0)
    check_schedule(agent, PAPER_TABLE, unique_paths(SPACE28, 2710))
    # the epsilon of the stage is the one samples are drawn with
    assert {p.decisions["epsilon"] for p in agent.sample(3)} == {0.1}


def test_large_or_no_budget_uses_the_paper_schedule() -> None:
    for budget in (None, 2700, 10_000):
        assert QLearningAgent(SPACE8, seed=0, budget=budget).schedule == list(PAPER_SCHEDULE)


def test_schedule_scaled_by_a_tenth() -> None:
    paths = unique_paths(SPACE28, 280, seed=1)
    check_schedule(
        QLearningAgent(SPACE28, {"replay": 0, "schedule_scale": 0.1}, seed=0), TENTH_TABLE, paths
    )
    # the default scale fits the paper's 2,700-model schedule into the budget: 270 -> a tenth
    check_schedule(QLearningAgent(SPACE28, {"replay": 0}, seed=0, budget=270), TENTH_TABLE, paths)


@pytest.mark.parametrize("budget", [100, 320, 1000])
def test_default_schedule_fits_the_budget(budget: int) -> None:
    agent = QLearningAgent(SPACE8, seed=0, budget=budget)
    lengths = [n for _, n in agent.schedule]
    assert abs(sum(lengths) - budget) <= 5  # rounding of ten stages
    assert lengths[0] == round(1500 * budget / 2700)
    assert [e for e, _ in agent.schedule] == [e for e, _ in PAPER_SCHEDULE]


def test_samples_use_the_current_epsilon() -> None:
    agent = QLearningAgent(SPACE8, {"replay": 0, "schedule_scale": 0.01}, seed=0)  # 15, 1, 1, ...
    paths = unique_paths(SPACE8, 16)
    assert {p.decisions["epsilon"] for p in agent.sample(4)} == {1.0}
    for p in paths[:15]:
        agent.update({"path": p}, 0.5)
    assert {p.decisions["epsilon"] for p in agent.sample(4)} == {0.9}
    agent.update({"path": paths[15]}, 0.5)
    assert {p.decisions["epsilon"] for p in agent.sample(4)} == {0.8}


# ---------------------------------------------------------------------------- replay


def test_replay_count_per_result() -> None:
    agent = QLearningAgent(SPACE8, seed=0)  # replay 100 by default
    paths = unique_paths(SPACE8, 150, seed=2)
    for k, path in enumerate(paths, start=1):
        before = agent.trajectory_updates
        agent.update({"path": path}, 0.4)
        # the result itself, then 100 replays drawn with replacement, however small the memory
        assert agent.trajectory_updates - before == 1 + 100, k
        assert len(agent.memory) == k
    # a repeated model does not grow the memory: still 1 + 100
    before = agent.trajectory_updates
    agent.update({"path": paths[3]}, 0.9)
    assert agent.trajectory_updates - before == 101
    assert agent.progress()["trajectory_updates"] == agent.trajectory_updates
    assert agent.progress()["updates"] == 151


def test_replay_setting() -> None:
    none = QLearningAgent(SPACE8, {"replay": 0}, seed=0)
    few = QLearningAgent(SPACE8, {"replay": 5}, seed=0)
    for k, path in enumerate(unique_paths(SPACE8, 20, seed=3), start=1):
        b0, b5 = none.trajectory_updates, few.trajectory_updates
        none.update({"path": path}, 0.4)
        few.update({"path": path}, 0.4)
        assert none.trajectory_updates - b0 == 1
        assert few.trajectory_updates - b5 == 1 + 5, k
    assert (none.trajectory_updates, few.trajectory_updates) == (20, 120)


def test_replay_is_exactly_replay_trajectories_with_replacement_from_the_first_result() -> None:
    """Baker et al. 2017 (experience replay): after each trained model the agent samples 100
    models from its replay dictionary and applies the Q update to each. The authors' code
    (github.com/bowenbaker/metaqnn, libs/grammar/q_learner.py, sample_replay_for_update) draws
    ``replay_number`` nets with np.random.choice, i.e. with replacement and whatever the size
    of the dictionary, so even the first result is followed by the full count of replays."""
    agent = QLearningAgent(SPACE8, seed=0)  # the paper's alpha 0.01, Q0 0.5, replay 100
    learnt: list[str] = []
    learn = agent._learn

    def record(path: list[str], reward: float) -> None:
        learnt.append(" ".join(path))
        learn(path, reward)

    agent._learn = record  # type: ignore[method-assign]
    path = ["C(3,64)", "GAP"]
    s = SPACE8.follow(path)
    agent.update({"path": path}, 1.0)
    # one stored model: the result's own update and 100 replays of that model
    assert agent.trajectory_updates == 101
    assert learnt == ["C(3,64) GAP"] * 101
    # ... and each replay really updates Q: 101 steps of alpha 0.01 from 0.5 toward 1.0
    assert agent.value(s[1], s[2]) == pytest.approx(1 - 0.5 * 0.99**101)
    # two stored models: the new result, then 100 draws from the two (more draws than models)
    learnt.clear()
    agent.update({"path": ["C(1,64)", "SM"]}, 0.3)
    assert agent.trajectory_updates == 202
    assert learnt[0] == "C(1,64) SM" and len(learnt) == 101
    assert set(learnt[1:]) == {"C(3,64) GAP", "C(1,64) SM"}

    # replay 0: only the result's own update
    none = QLearningAgent(SPACE8, {"replay": 0}, seed=0)
    none.update({"path": path}, 1.0)
    assert none.trajectory_updates == 1
    assert none.value(s[1], s[2]) == pytest.approx(1 - 0.5 * 0.99)
    none.update({"path": ["C(1,64)", "SM"]}, 0.3)
    assert none.trajectory_updates == 2
    # replay 3 with one stored model: 1 + 3
    three = QLearningAgent(SPACE8, {"replay": 3}, seed=0)
    three.update({"path": path}, 1.0)
    assert three.trajectory_updates == 4


def test_replay_uses_the_stored_reward_of_a_model() -> None:
    """Replaying only the memory, with the one stored model, pulls its Q toward its first reward
    even after the same model is reported again with another reward."""
    agent = QLearningAgent(SPACE8, {"replay": 1, "learning_rate": 0.5, "q_init": 0.0}, seed=0)
    path = ["C(3,64)", "GAP"]
    s = SPACE8.follow(path)
    agent.update({"path": path}, 1.0)  # learn 1.0, replay 1.0: 0 -> 0.5 -> 0.75
    assert agent.value(s[1], s[2]) == pytest.approx(0.75)
    agent.update({"path": path}, 0.0)  # learn 0.0: 0.375; replay stored 1.0: 0.6875
    assert agent.value(s[1], s[2]) == pytest.approx(0.6875)


# ---------------------------------------------------------------------------- the update


def test_reverse_order_update_math() -> None:
    agent = QLearningAgent(
        SPACE8, {"learning_rate": 0.5, "discount": 1.0, "q_init": 0.5, "replay": 0}, seed=0
    )
    path = ["C(3,64)", "GAP"]
    s0, s1, s2 = SPACE8.follow(path)
    agent.update({"path": path}, 1.0)
    # terminal pair: 0.5 * 0.5 + 0.5 * 1.0
    assert agent.value(s1, s2) == pytest.approx(0.75)
    # first pair, updated after it, sees the new max of s1 (0.75, not 0.5): 0.5*0.5 + 0.5*0.75
    assert agent.value(s0, s1) == pytest.approx(0.625)
    assert agent.q == pytest.approx({f"{s0.key}->{s1.key}": 0.625, f"{s1.key}->{s2.key}": 0.75})

    agent.update({"path": path}, 1.0)
    assert agent.value(s1, s2) == pytest.approx(0.875)
    assert agent.value(s0, s1) == pytest.approx(0.75)

    # a worse sibling: the first pair still follows the best action of s1 (GAP, 0.875)
    other = ["C(3,64)", "SM"]
    sm = SPACE8.follow(other)[2]
    agent.update({"path": other}, 0.0)
    assert agent.value(s1, sm) == pytest.approx(0.25)
    assert agent.value(s0, s1) == pytest.approx(0.5 * 0.75 + 0.5 * 0.875)
    # untouched pairs keep q_init
    assert agent.value(s0, SPACE8.follow(["C(5,64)", "GAP"])[1]) == 0.5


class PlainQLearning(QLearningAgent):
    """The paper's update written out, the next state's max taken afresh every time: what
    the agent's kept maxima must equal exactly."""

    def _learn(self, path: list[str], reward: float) -> None:
        states = self.space.follow(path)
        for i in range(len(states) - 2, -1, -1):
            s, nxt = states[i], states[i + 1]
            if nxt.terminal:
                target = reward
            else:
                target = self.gamma * max(self.value(nxt, a) for a in self.space.actions(nxt))
            key = f"{s.key}->{nxt.key}"
            self.q[key] = (1 - self.alpha) * self.q.get(key, self.q_init) + self.alpha * target
            self._changed.add(key)
        self.trajectory_updates += 1


@pytest.mark.parametrize("space", [SPACE8, SPACE28], ids=["8x8", "28x28"])
def test_kept_maxima_learn_exactly_what_the_plain_update_learns(space: MetaQNNSpace) -> None:
    """The agent keeps each state's largest Q-value between updates; states that share a key
    (the key bins the representation size) can differ in their ways out. With rewards that go
    up and down, a restart in the middle and failures, the Q-table must be the plain update's
    to the last bit."""
    settings = {"schedule_scale": 0.02, "replay": 30, "learning_rate": 0.3, "discount": 0.9}
    fast = QLearningAgent(space, settings, seed=5, budget=200)
    plain = PlainQLearning(space, settings, seed=5, budget=200)
    for i in range(150):
        (p,), (q,) = fast.sample(1), plain.sample(1)
        assert p.decisions == q.decisions
        r = None if i % 11 == 3 else synthetic_reward(p.decisions["path"]) * (1 + (i % 3))
        fast.update(p.decisions, r)
        plain.update(q.decisions, r)
        if i == 70:  # a reloaded agent starts without kept maxima
            fast = QLearningAgent(space, settings, seed=0, budget=200)
            fast.load_state_dict(through_bytes(plain.state_dict()))
    assert fast.q == plain.q
    assert fast.state_dict() == plain.state_dict()


def test_discount_and_initial_values_in_the_target() -> None:
    agent = QLearningAgent(
        SPACE8, {"learning_rate": 0.5, "discount": 0.5, "q_init": 0.5, "replay": 0}, seed=0
    )
    path = ["C(3,64)", "C(1,64)", "GAP"]
    s0, s1, s2, s3 = SPACE8.follow(path)
    agent.update({"path": path}, 1.0)
    assert agent.value(s2, s3) == pytest.approx(0.75)
    # target 0.5 * max_a Q(s2, a) = 0.5 * 0.75
    assert agent.value(s1, s2) == pytest.approx(0.5 * 0.5 + 0.5 * 0.375)
    # max_a Q(s1, a) = 0.5: the untried actions' q_init beats the updated 0.4375
    assert agent.value(s0, s1) == pytest.approx(0.5 * 0.5 + 0.5 * 0.25)


def test_failed_child_uses_failure_reward_and_bad_input_is_rejected() -> None:
    agent = QLearningAgent(SPACE8, {"learning_rate": 1.0, "failure_reward": -0.25, "replay": 0})
    path = ["C(1,64)", "P(2,2)", "FC(128)", "SM"]
    s = SPACE8.follow(path)
    agent.update({"path": path}, None)
    assert agent.value(s[3], s[4]) == -0.25
    with pytest.raises(ValueError):
        agent.update({"path": ["C(1,64)", "P(2,2)", "P(2,2)", "SM"]}, 0.5)  # pool after pool
    with pytest.raises(ValueError):
        agent.update({"path": ["P(2,2)", "FC(128)", "SM"]}, 0.5)  # pooling as the first layer
    with pytest.raises(ValueError):
        agent.update({"path": path}, math.nan)
    assert agent.progress()["updates"] == 1


# ---------------------------------------------------------------------------- learning

TARGET = ["C(3,128)", "GAP"]


def synthetic_reward(path: list[str]) -> float:
    if path == TARGET:
        return 0.9
    digest = hashlib.sha256(" ".join(path).encode()).digest()
    return 0.2 + 0.3 * int.from_bytes(digest[:8], "big") / 2**64


def test_qlearning_learns_a_synthetic_reward() -> None:
    """On digits (8x8) with the paper's space and settings (alpha 0.01, gamma 1, Q0 0.5, replay
    100) and a 300-model budget, one architecture is worth 0.9 and every other one a fixed
    pseudo-random 0.2..0.5.

    Tabular Q over MetaQNN's (layer, depth, size bin) states sees a history only through its
    (state, next state) pairs: two paths that share a pair share its value. The target
    C(3,128) -> GAP is chosen so that its terminal pair (C(3,128)@1 -> GAP@2) belongs to it
    alone; its value can rise toward 0.9 and lift start -> C(3,128)@1 above the other start
    pairs, so the greedy walk is exactly the target."""
    agent = QLearningAgent(SPACE8, seed=0, budget=300)
    rewards, hits = [], 0
    for _ in range(300):
        (proposal,) = agent.sample(1)
        path = proposal.decisions["path"]
        assert proposal.arch == SPACE8.decode(path)
        r = synthetic_reward(path)
        rewards.append(r)
        hits += path == TARGET
        agent.update(proposal.decisions, r)
    first, last = sum(rewards[:50]) / 50, sum(rewards[-50:]) / 50
    print(
        f"qlearning synthetic reward: target sampled {hits}x, first 50 {first:.3f}, "
        f"last 50 {last:.3f}, greedy {agent.greedy_path()}"
    )
    assert hits >= 1
    assert agent.greedy_path() == TARGET
    assert last >= first + 0.1, (first, last)
    s0, s1, s2 = SPACE8.follow(TARGET)
    assert agent.value(s1, s2) > 0.6
    assert agent.value(s0, s1) == max(agent.value(s0, a) for a in SPACE8.actions(s0))


def test_greedy_path_does_not_advance_the_rng() -> None:
    a, b = QLearningAgent(SPACE8, seed=5), QLearningAgent(SPACE8, seed=5)
    a.greedy_path()
    a.greedy_path()
    assert [p.decisions for p in a.sample(5)] == [p.decisions for p in b.sample(5)]


# ---------------------------------------------------------------------------- state


def test_state_dict_round_trip() -> None:
    settings = {"schedule_scale": 0.01, "replay": 10}
    agent = QLearningAgent(SPACE8, settings, seed=11, budget=100)
    for _ in range(40):
        (p,) = agent.sample(1)
        agent.update(p.decisions, synthetic_reward(p.decisions["path"]))
    copy = QLearningAgent(SPACE8, settings, seed=999, budget=100)
    copy.load_state_dict(through_bytes(agent.state_dict()))
    assert copy.q == agent.q
    assert copy.progress() == agent.progress()
    assert copy.greedy_path() == agent.greedy_path()
    for _ in range(20):
        (p,), (q,) = agent.sample(1), copy.sample(1)
        assert p.decisions == q.decisions
        r = synthetic_reward(p.decisions["path"])
        agent.update(p.decisions, r)
        copy.update(q.decisions, r)
    assert copy.q == agent.q
    assert copy.progress() == agent.progress()
    assert copy.state_dict() == agent.state_dict()


def test_export_q_sorted_and_complete() -> None:
    agent = QLearningAgent(SPACE8, {"learning_rate": 0.5, "replay": 0}, seed=0)
    for path, r in (
        (["C(3,64)", "GAP"], 1.0),
        (["C(3,64)", "SM"], 0.0),
        (["C(1,64)", "P(2,2)", "FC(256)", "SM"], 0.7),
    ):
        agent.update({"path": path}, r)
    rows = agent.export_q()
    values = [v for _, _, v in rows]
    assert values == sorted(values, reverse=True)
    assert len(rows) == len(agent.q) == 7
    assert {f"{a}->{b}": v for a, b, v in rows} == agent.q
    # worked by hand (alpha 0.5, gamma 1, Q0 0.5), each trajectory last pair first
    expected = [
        ("C(3,64)@1/(inf,8]", "GAP@2/(4,1]", 0.75),
        ("start@0/(inf,8]", "C(3,64)@1/(inf,8]", 0.6875),  # 0.625, then toward max 0.75
        ("FC(256)#1@3/(4,1]", "SM@4/(4,1]", 0.6),
        ("P(2,2)@2/(8,4]", "FC(256)#1@3/(4,1]", 0.55),  # toward max_a Q(FC(256)#1, a) = 0.6
        ("C(1,64)@1/(inf,8]", "P(2,2)@2/(8,4]", 0.525),
        ("start@0/(inf,8]", "C(1,64)@1/(inf,8]", 0.5125),
        ("C(3,64)@1/(inf,8]", "SM@2/(inf,8]", 0.25),
    ]
    assert [(a, b) for a, b, _ in rows] == [(a, b) for a, b, _ in expected]
    assert values == pytest.approx([v for _, _, v in expected])


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"alpha": 0.1}, "alpha"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": 1.5}, "learning_rate"),
        ({"learning_rate": -0.01}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"learning_rate": "0.1"}, "learning_rate"),
        ({"learning_rate": True}, "learning_rate"),
        ({"discount": 1.1}, "discount"),
        ({"replay": -1}, "replay"),
        ({"schedule_scale": -0.5}, "schedule_scale"),
        ({"q_init": math.inf}, "q_init"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, Any], name: str) -> None:
    with pytest.raises(AgentSettingsError, match=name):
        QLearningAgent(SPACE8, settings)


@pytest.mark.parametrize("space", [ZophSpace(), "metaqnn", None])
def test_wrong_space_is_named(space: Any) -> None:
    with pytest.raises(AgentSettingsError, match="metaqnn") as info:
        QLearningAgent(space)
    if isinstance(space, ZophSpace):
        assert "zoph" in str(info.value)
