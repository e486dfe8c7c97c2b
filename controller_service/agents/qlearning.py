"""Tabular Q-learning of MetaQNN (Baker et al. 2017), "Designing Neural Network Architectures
Using Reinforcement Learning".

The agent walks the MetaQNN space from the start state to a termination, epsilon-greedy on
Q(state, next state). A result's reward (validation accuracy) is given at the terminal
transition and the trajectory is updated in reverse order with

    Q(s_i, s_{i+1}) <- (1 - alpha) Q(s_i, s_{i+1}) + alpha (r_i + gamma max_a Q(s_{i+1}, a))

(r_i = 0 except at the end). Every result is kept in a replay memory; after each result the
agent replays ``replay`` (100) trajectories drawn from it. Epsilon follows the paper's
schedule, counted in unique models: 1.0 for 1,500, then 0.9, 0.8, 0.7 for 100 each, 0.6 ... 0.1
for 150 each. A search with a smaller budget scales the counts to it (``schedule_scale`` 0,
the default: min(1, budget / 2,700); any positive number: that factor).

``Proposal.decisions`` is ``{"path": ["C(3,64)", "P(2,2)", "FC(256)", "SM"], "epsilon": e}``.

In the NB201 cell space the walk decides the cell's edges one after another: a state is the
edges decided so far, an action the next edge's operation, and the sixth edge ends the walk
(``{"path": ["nor_conv_3x3", "none", ...], "epsilon": e}``); α, γ, Q₀, ε and replay as above.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from itertools import repeat
from typing import Any

from controller_service.agents.base import (
    Agent,
    Decisions,
    Proposal,
    rng_state,
    set_rng_state,
)
from controller_service.agents.persistence import StoredInParts
from controller_service.agents.proposals import check_space
from controller_service.spaces import MetaQNNSpace, Nb201Space, PathSpace
from nasrl.core.agent_settings import QLearningSettings

__all__ = ["QLearningAgent", "PAPER_SCHEDULE", "epsilon_schedule"]

#: (Q-table key, number of the next state's ways out, their keys; -1 and None at the end)
Transition = tuple[str, int, tuple[str, ...] | None]

PAPER_SCHEDULE: tuple[tuple[float, int], ...] = (
    (1.0, 1500),
    (0.9, 100),
    (0.8, 100),
    (0.7, 100),
    (0.6, 150),
    (0.5, 150),
    (0.4, 150),
    (0.3, 150),
    (0.2, 150),
    (0.1, 150),
)
PAPER_MODELS = sum(n for _, n in PAPER_SCHEDULE)  # 2,700


def epsilon_schedule(scale: float) -> list[tuple[float, int]]:
    """The paper's schedule with every stage's length multiplied by ``scale`` (at least 1)."""
    return [(eps, max(1, round(n * scale))) for eps, n in PAPER_SCHEDULE]


def explore_schedule(budget: int, fraction: float) -> list[tuple[float, int]]:
    """``fraction`` of ``budget`` at epsilon 1, then the paper's later stages sharing the rest
    in the paper's proportions (each at least 1)."""
    first = max(1, round(budget * fraction))
    later = PAPER_SCHEDULE[1:]
    total = sum(n for _, n in later)
    rest = max(0, budget - first)
    return [(1.0, first)] + [(eps, max(1, round(rest * n / total))) for eps, n in later]


class QLearningAgent(StoredInParts, Agent):
    name = "qlearning"
    default_reward = "accuracy"
    settings_class = QLearningSettings

    def __init__(
        self,
        space: PathSpace,
        settings: QLearningSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> None:
        check_space(self.name, space, (MetaQNNSpace, Nb201Space))
        self.space: Any = space  # both spaces walk states with .key, .action, .terminal
        s = self.settings = QLearningSettings.of(settings)
        self.alpha = s.learning_rate
        self.gamma = s.discount
        self.q_init = s.q_init
        self.replay = s.replay
        self.failure_reward = s.failure_reward
        scale = s.schedule_scale
        if scale == 0:
            scale = min(1.0, (budget or PAPER_MODELS) / PAPER_MODELS)
        self.schedule = epsilon_schedule(scale)
        if s.explore_fraction:
            self.schedule = explore_schedule(budget or PAPER_MODELS, s.explore_fraction)
        self.rng = random.Random(seed)
        self.q: dict[str, float] = {}
        self.memory: list[tuple[list[str], float]] = []
        self.seen: dict[str, int] = {}  # path -> index in memory (unique models)
        self.samples = 0
        self.results = 0
        self.trajectory_updates = 0
        self.queued: list[tuple[list[str], float]] = []  # recorded, not yet learnt
        self._edge_cache: dict[Any, tuple[str, ...]] = {}
        self._plans: dict[str, tuple[Transition, ...]] = {}
        self._changed: set[str] = set()  # Q-values not yet given to changed_entries
        self._numbers: dict[tuple[str, ...], int] = {}  # a state's ways out -> its number
        self._within: dict[str, list[int]] = {}  # Q-table key -> the numbers it is part of
        self._best: dict[int, float] = {}  # number -> the largest Q-value among them

    # ------------------------------------------------------------------ epsilon

    def stage(self) -> tuple[int, float]:
        """(stage index, epsilon) after the unique models seen so far; past the schedule the
        last epsilon stays."""
        done = len(self.seen)
        for index, (eps, n) in enumerate(self.schedule):
            if done < n:
                return index, eps
            done -= n
        return len(self.schedule) - 1, self.schedule[-1][0]

    # ------------------------------------------------------------------ acting

    def value(self, s: Any, a: Any) -> float:
        return self.q.get(f"{s.key}->{a.key}", self.q_init)

    def _edges(self, s: Any) -> tuple[str, ...]:
        """The Q-table keys of every transition out of ``s`` (cached: the replay asks for
        the same states again and again)."""
        edges = self._edge_cache.get(s)
        if edges is None:
            edges = tuple(f"{s.key}->{a.key}" for a in self.space.actions(s))
            self._edge_cache[s] = edges
        return edges

    def _choose(self, s: Any, epsilon: float) -> Any:
        actions = self.space.actions(s)
        if self.rng.random() < epsilon:
            return self.rng.choice(actions)
        values = [self.q.get(k, self.q_init) for k in self._edges(s)]  # in actions' order
        best = max(values)
        return self.rng.choice([a for a, v in zip(actions, values) if v == best])

    def walk(self, epsilon: float) -> list[str]:
        s, path = self.space.start(), []
        while not s.terminal:
            s = self._choose(s, epsilon)
            path.append(s.action)
        return path

    def sample(self, n: int) -> list[Proposal]:
        _, epsilon = self.stage()
        out = []
        for _ in range(n):
            path = self.walk(epsilon)
            out.append(Proposal(self.space.decode(path), {"path": path, "epsilon": epsilon}))
        self.samples += n
        return out

    # ------------------------------------------------------------------ learning

    def _learn(self, path: list[str], reward: float) -> None:
        """One Q update of a whole trajectory, last transition first."""
        q, q_init, alpha, gamma = self.q, self.q_init, self.alpha, self.gamma
        best, within, changed = self._best, self._within, self._changed
        for key, after, edges in self._plan(path):
            if edges is None:
                target = reward
            else:
                # the largest value out of the next state, kept per set of transitions (exact:
                # a max is never rounded), worked out again only after its largest went down;
                # map over q.get: no Python frame per edge
                top = best.get(after)
                if top is None:
                    top = best[after] = max(map(q.get, edges, repeat(q_init)))
                target = gamma * top
            old = q.get(key, q_init)
            new = q[key] = (1 - alpha) * old + alpha * target
            changed.add(key)
            for n in within.get(key, ()):  # the kept maxima this value is part of
                top = best.get(n)
                if top is not None:
                    if new >= top:
                        best[n] = new
                    elif old == top:
                        del best[n]
        self.trajectory_updates += 1

    def _plan(self, path: list[str]) -> tuple[Transition, ...]:
        """A trajectory's transitions, last first: each one's Q-table key, and the number and
        keys of every transition out of its next state (-1 and None when that state ends the
        network). Cached per path: the replay comes back to the same stored models again and
        again."""
        name = " ".join(path)
        plan = self._plans.get(name)
        if plan is None:
            states = self.space.follow(path)
            steps: list[Transition] = []
            for i in range(len(states) - 2, -1, -1):
                key = f"{states[i].key}->{states[i + 1].key}"
                if states[i + 1].terminal:
                    steps.append((key, -1, None))
                else:
                    edges = self._edges(states[i + 1])
                    steps.append((key, self._number(edges), edges))
            plan = self._plans[name] = tuple(steps)
        return plan

    def _number(self, edges: tuple[str, ...]) -> int:
        """The number of a set of transitions (one state's way out) whose largest Q-value
        ``_learn`` keeps. States with the same key can differ in their ways out (the key bins
        the representation size), so a Q-value can be part of several."""
        n = self._numbers.get(edges)
        if n is None:
            n = self._numbers[edges] = len(self._numbers)
            for key in edges:
                self._within.setdefault(key, []).append(n)
        return n

    def update(self, decisions: Decisions, reward: float | None) -> None:
        self.record(decisions, reward)
        self.learn()

    def record(self, decisions: Decisions, reward: float | None) -> None:
        """Check and queue a result; ``learn`` replays."""
        path = [str(step) for step in decisions["path"]]
        self.space.follow(path)  # ValueError for a path that breaks the rules
        r = self.failure_reward if reward is None else float(reward)
        if not math.isfinite(r):
            raise ValueError(f"reward must be finite, got {reward!r}")
        self.queued.append((path, r))

    def learn(self) -> None:
        """Each queued result in turn: into the memory, learnt, then ``replay`` memories."""
        queued, self.queued = self.queued, []
        for path, r in queued:
            self._remember(path, r)

    def _remember(self, path: list[str], r: float) -> None:
        key = " ".join(path)
        if key not in self.seen:
            self.seen[key] = len(self.memory)
            self.memory.append((path, r))
        self.results += 1
        self._learn(path, r)
        for _ in range(self.replay):  # the paper's 100, with replacement, from the start
            old_path, old_reward = self.memory[self.rng.randrange(len(self.memory))]
            self._learn(old_path, old_reward)

    def greedy_path(self) -> list[str]:
        """The epsilon = 0 trajectory (ties broken by this agent's RNG, which is not advanced)."""
        saved = self.rng.getstate()
        try:
            return self.walk(0.0)
        finally:
            self.rng.setstate(saved)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {**self.light_state(), "q": dict(self.q), "log": self.log_since(0)}

    def light_state(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "samples": self.samples,
            "results": self.results,
            "trajectory_updates": self.trajectory_updates,
            "queued": [[list(p), r] for p, r in self.queued],
        }

    def changed_entries(self) -> dict[str, Any]:
        """The Q-values learnt since the last call: the controller stores the Q-table entry
        by entry, so a result writes the few hundred values it changed, not the table."""
        changed, self._changed = self._changed, set()
        return {k: self.q[k] for k in changed}

    def log_since(self, start: int) -> list[Any]:
        """The replay memory (one [path, reward] per unique model) from ``start`` on: it
        only grows, so the controller stores just the new entries."""
        return [[list(p), r] for p, r in self.memory[start:]]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # "q": the whole table (a state_dict); "entries": the stored entries, newer
        self.q = {str(k): float(v) for k, v in state.get("q", {}).items()}
        self.q.update({str(k): float(v) for k, v in state.get("entries", {}).items()})
        self._best = {}
        self._changed = set(state.get("q", ()))  # from a state_dict: the store has none yet
        self.memory = [([str(s) for s in p], float(r)) for p, r in state["log"]]
        self.seen = {" ".join(p): i for i, (p, _) in enumerate(self.memory)}
        set_rng_state(self.rng, state["rng"])
        self.samples = int(state["samples"])
        self.results = int(state["results"])
        self.trajectory_updates = int(state["trajectory_updates"])
        self.queued = [([str(s) for s in p], float(r)) for p, r in state["queued"]]

    def export_q(self) -> list[tuple[str, str, float]]:
        """Every learnt Q value as (state, next state, value), highest first."""
        rows = [(k.split("->")[0], k.split("->")[1], v) for k, v in self.q.items()]
        return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))

    def progress(self) -> dict[str, float]:
        index, epsilon = self.stage()
        return {
            "epsilon": epsilon,
            "epsilon_stage": float(index),
            "unique_models": float(len(self.seen)),
            "samples": float(self.samples),
            "updates": float(self.results),
            "trajectory_updates": float(self.trajectory_updates),
            "q_entries": float(len(self.q)),
        }
