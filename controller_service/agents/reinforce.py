"""REINFORCE controller of Zoph & Le (2017), "Neural Architecture Search with Reinforcement
Learning".

A stacked LSTM emits, per convolution, five categorical decisions (filter height, filter
width, stride height, stride width, number of filters); the sampled token's embedding is the
next step's input. With skip connections each layer then takes one more "anchor" step whose
hidden state ``h_i`` is compared with every earlier layer's anchor ``h_j``:
``P(j -> i) = sigmoid(v' tanh(W_prev h_j + W_curr h_i))``, one Bernoulli per earlier layer.
The next layer starts from the mean of the chosen anchors (as in ENAS).

Learning is REINFORCE with an exponential-moving-average baseline and Adam. Results may come
back late, out of order and from an older policy: ``update`` recomputes the log-probability
of the stored decisions under the current policy, and every ``batch`` results the averaged
gradient takes one Adam step. Depth follows the paper's curriculum: ``start_layers``, plus
``layers_step`` every ``step_every`` samples, capped by the space's ``max_layers``.

``Proposal.decisions`` is plain JSON data::

    {"tokens": [[fh, fw, sh, sw, nf], ...],   # indices into the space's choices, per layer
     "skips": [[], [b], [b, b], ...] | None,  # skips[i][j] = 1: layer i+1 reads layer j+1
     "layers": L,                              # len(tokens)
     "logp": -12.3}                            # log-probability at sampling time (diagnostic)

With ``independent`` the policy is one learnt softmax per decision of each layer position
(``edge_policy.LayerLogits``) instead of the LSTM. In the NB201 cell space the policy emits one
operation per edge (``edge_policy.EdgePolicy``: the LSTM, or with ``independent`` one softmax
per edge, as NAS-Bench-201's paper) and the
decisions are ``{"path": [op of each edge], "logp": -9.6}``; there is no depth curriculum.

With ``model_steps`` (model-based, needs the search's predictor screening) every refit of the
predictor is followed by ``model_steps`` policy steps on ``model_batch`` networks sampled from
the policy and scored by the predictor instead of trained (``dream``): their advantages are the
predicted rewards standardised within the step. These samples do not count towards the depth
curriculum and are never handed out.

All sampling draws from the agent's own ``torch.Generator``, never torch's global RNG.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from controller_service.agents.base import (
    Agent,
    AgentSettingsError,
    Decisions,
    Predict,
    Proposal,
)
from controller_service.agents.controller_lstm import ControllerLSTM, Trajectory
from controller_service.agents.edge_policy import EdgePolicy, LayerLogits
from controller_service.agents.persistence import (
    StoredInParts,
    optimizer_state,
    plain_optimizer_state,
)
from controller_service.spaces import ZOPH_DECISIONS, Nb201Space, ZophSpace
from nasrl.core.agent_settings import ReinforceSettings
from nasrl.core.cell import EDGES

__all__ = ["ReinforceAgent", "ReinforceSettings"]

_STATE_FORMAT = 1


class ReinforceAgent(StoredInParts, Agent):
    """Zoph & Le's controller. ``progress()`` omits "baseline" until the first result."""

    name = "reinforce"
    default_reward = "zoph"
    settings_class = ReinforceSettings

    def __init__(
        self,
        space: ZophSpace | Nb201Space,
        settings: ReinforceSettings | Mapping[str, Any] | None = None,
        seed: int = 0,
        budget: int | None = None,
    ) -> None:
        if not isinstance(space, ZophSpace | Nb201Space):
            name = getattr(space, "name", type(space).__name__)
            raise AgentSettingsError(
                f"agent 'reinforce' cannot search the {name!r} space; use 'zoph' or 'nb201'"
            )
        self.space = space
        s = self.settings = ReinforceSettings.of(settings)
        self.generator = torch.Generator().manual_seed(seed)
        self.policy: ControllerLSTM | EdgePolicy | LayerLogits
        if isinstance(space, Nb201Space):
            self.skips = False
            self.policy = EdgePolicy(
                len(EDGES),
                len(space.ops),
                s.hidden,
                s.lstm_layers,
                s.init_range,
                self.generator,
                s.independent,
            )
        elif s.independent:
            self.skips = s.skip_connections and space.skip_connections
            sizes = [len(space.choices(d)) for d in ZOPH_DECISIONS]
            self.policy = LayerLogits(sizes, space.max_layers, s.init_range, self.generator)
        else:
            self.skips = s.skip_connections and space.skip_connections
            self.policy = ControllerLSTM(
                space, s.hidden, s.lstm_layers, s.init_range, self.generator
            )
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=s.learning_rate)
        self.baseline: float | None = None
        self.variance: float | None = None  # moving variance of the rewards (standardize)
        self.elite: list[dict[str, Any]] = []  # {"tokens", "skips", "reward"}, best first
        self.samples = 0
        self.updates = 0
        self.steps = 0
        self.pretrained = 0  # priors the policy was pre-trained on (warm start)
        self.dreamt = 0  # results the predictor of the last model-based steps was fitted on
        self.dreams = 0  # model-based policy steps taken
        self.pending: list[dict[str, Any]] = []  # {"tokens", "skips", "advantage"}

    def curriculum_layers(self) -> int:
        if isinstance(self.space, Nb201Space):
            return len(EDGES)  # a cell: every proposal decides all its edges
        s = self.settings
        grown = s.start_layers + s.layers_step * (self.samples // s.step_every)
        return min(grown, self.space.max_layers)

    def sample(self, n: int) -> list[Proposal]:
        """``n`` proposals from batched rollouts (one per curriculum depth they span)."""
        if n < 0:
            raise ValueError(f"cannot sample a negative number ({n}) of architectures")
        if isinstance(self.policy, EdgePolicy):
            return self._sample_cells(n)
        assert isinstance(self.space, ZophSpace) and not isinstance(self.policy, EdgePolicy)
        out: list[Proposal] = []
        while len(out) < n:
            layers = self.curriculum_layers()
            # samples left at this depth before the curriculum may grow
            room = self.settings.step_every - self.samples % self.settings.step_every
            count = min(n - len(out), room)
            with torch.inference_mode():
                trajectories, log_probs = self.policy.sample(
                    self.generator, layers, self.skips, count
                )
            self.samples += count
            out += [self._proposal(t, logp) for t, logp in zip(trajectories, log_probs)]
        return out

    def _sample_cells(self, n: int) -> list[Proposal]:
        assert isinstance(self.space, Nb201Space) and isinstance(self.policy, EdgePolicy)
        rows, log_probs = self.policy.sample(self.generator, n) if n else ([], [])
        self.samples += n
        return [self._proposal(Trajectory([row], None), p) for row, p in zip(rows, log_probs)]

    def log_prob(self, decisions: Decisions) -> Tensor:
        """Log-probability of ``decisions`` under the current policy (differentiable)."""
        return self._evaluate([self._trajectory(decisions)])[0][0]

    def _evaluate(self, trajectories: list[Trajectory]) -> tuple[Tensor, Tensor]:
        """Log-probabilities and entropies of ``trajectories`` (any depths) under the current
        policy, in their order: one batched replay per depth (one in all for cells)."""
        if isinstance(self.policy, EdgePolicy):
            return self.policy.evaluate([t.tokens[0] for t in trajectories])
        log_probs: list[Tensor | None] = [None] * len(trajectories)
        entropies: list[Tensor | None] = [None] * len(trajectories)
        by_depth: dict[int, list[int]] = {}
        for i, t in enumerate(trajectories):
            by_depth.setdefault(len(t.tokens), []).append(i)
        for layers, rows in by_depth.items():
            _, lp, ent = self.policy.rollout([trajectories[i] for i in rows], layers, self.skips)
            for j, i in enumerate(rows):
                log_probs[i], entropies[i] = lp[j], ent[j]
        return torch.stack(log_probs), torch.stack(entropies)  # type: ignore[arg-type]

    def record(self, decisions: Decisions, reward: float | None) -> None:
        """Queue one result; every ``batch`` results take one Adam step on their mean loss
        ``-(reward - baseline) * log_prob - entropy_weight * entropy``. The baseline a
        result is compared with is the one before its own reward (the first result's
        advantage is 0: the baseline starts at the first reward). With ``standardize`` the
        advantage is divided by the moving standard deviation of the rewards (updated with
        this reward first); with ``elite`` the result may join the elite."""
        trajectory = self._trajectory(decisions)
        r = self.settings.failure_reward if reward is None else float(reward)
        if not math.isfinite(r):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        baseline = r if self.baseline is None else self.baseline
        decay = self.settings.baseline_decay
        self.baseline = decay * baseline + (1 - decay) * r
        advantage = r - baseline
        if self.settings.standardize:
            previous = advantage**2 if self.variance is None else self.variance
            self.variance = decay * previous + (1 - decay) * advantage**2
            advantage = advantage / self._scale()
        self.pending.append(
            {"tokens": trajectory.tokens, "skips": trajectory.skips, "advantage": advantage}
        )
        self._join_elite(trajectory, r)
        if len(self.pending) % self.settings.batch == 0:
            # the elite replay of this batch's step, as of now: learnt later (the controller
            # records several results before it learns), the step is the one ``update`` takes
            self.pending[-1]["elite"] = self._elite_replay()
        self.updates += 1

    def _scale(self) -> float:
        """What advantages are divided by: the rewards' moving standard deviation with
        ``standardize`` (1 while it is 0), else 1."""
        if not self.settings.standardize or not self.variance:
            return 1.0
        return math.sqrt(self.variance)

    def _join_elite(self, trajectory: Trajectory, reward: float) -> None:
        """Keep the ``elite`` best distinct architectures seen (the first reward of each)."""
        if not self.settings.elite or any(
            e["tokens"] == trajectory.tokens and e["skips"] == trajectory.skips for e in self.elite
        ):
            return
        member = {"tokens": trajectory.tokens, "skips": trajectory.skips, "reward": reward}
        self.elite.append(member)
        self.elite.sort(key=lambda e: -float(e["reward"]))
        del self.elite[self.settings.elite :]

    def _elite_replay(self) -> list[dict[str, Any]]:
        """The elite members better than the baseline, with their advantage now."""
        if self.baseline is None:
            return []
        out = []
        for e in self.elite:
            advantage = (float(e["reward"]) - self.baseline) / self._scale()
            if advantage > 0:
                out.append({"tokens": e["tokens"], "skips": e["skips"], "advantage": advantage})
        return out

    def update(self, decisions: Decisions, reward: float | None) -> None:
        """Queue one result (``record``) and take the steps a full batch asks for."""
        self.record(decisions, reward)
        self.learn()

    def learn(self) -> None:
        """One Adam step per full batch of queued results, oldest first."""
        while len(self.pending) >= self.settings.batch:
            self._step()

    def _step(self) -> None:
        """One Adam step on the mean loss of the oldest ``batch`` queued results and the elite
        replay (one batched replay per depth)."""
        batch, self.pending = (
            self.pending[: self.settings.batch],
            self.pending[self.settings.batch :],
        )
        elite = batch[-1].get("elite")  # absent in states saved before it was kept
        batch = batch + (self._elite_replay() if elite is None else list(elite))
        self.optimizer.zero_grad()
        log_prob, entropy = self._evaluate(
            [Trajectory(item["tokens"], item["skips"]) for item in batch]
        )
        advantage = torch.tensor([float(item["advantage"]) for item in batch])
        loss = -advantage * log_prob - self.settings.entropy_weight * entropy
        torch.autograd.backward(loss.mean())
        self.optimizer.step()
        self.steps += 1

    def dream(self, predict: Predict, fitted_on: int) -> None:
        """Model-based steps (``model_steps``), once per predictor fit: each samples
        ``model_batch`` networks, asks ``predict`` for their rewards (None: the failure
        reward) and takes one Adam step with advantages standardised within the batch
        (none when all predictions are equal)."""
        s = self.settings
        if not s.model_steps or fitted_on <= self.dreamt:
            return
        self.dreamt = fitted_on
        for _ in range(s.model_steps):
            trajectories = self._rollouts(s.model_batch)
            predicted = predict([self._proposal(t, None) for t in trajectories])
            rewards = torch.tensor(
                [s.failure_reward if r is None else float(r) for r in predicted],
                dtype=torch.float64,
            )
            spread = float(rewards.std())
            if not spread > 0:
                continue
            advantage = ((rewards - rewards.mean()) / spread).float()
            self.optimizer.zero_grad()
            log_prob, entropy = self._evaluate(trajectories)
            loss = -advantage * log_prob - s.entropy_weight * entropy
            torch.autograd.backward(loss.mean())
            self.optimizer.step()
            self.steps += 1
            self.dreams += 1

    def _rollouts(self, n: int) -> list[Trajectory]:
        """``n`` trajectories from the policy at the current depth, not counted as samples."""
        if isinstance(self.policy, EdgePolicy):
            rows, _ = self.policy.sample(self.generator, n)
            return [Trajectory([list(row)], None) for row in rows]
        trajectories, _ = self.policy.sample(
            self.generator, self.curriculum_layers(), self.skips, n
        )
        return list(trajectories)

    def _proposal(self, t: Trajectory, logp: float | None) -> Proposal:
        """The network of a trajectory with its decisions (``logp``: its log-probability at
        sampling time; None for the model-based steps' networks, which are never stored)."""
        tail = {} if logp is None else {"logp": logp}
        if isinstance(self.space, Nb201Space):
            path = [self.space.ops[i] for i in t.tokens[0]]
            return Proposal(self.space.decode(path), {"path": path, **tail})
        assert isinstance(self.space, ZophSpace)
        decisions = {"tokens": t.tokens, "skips": t.skips, "layers": len(t.tokens), **tail}
        return Proposal(self.space.decode(t.tokens, t.skips), decisions)

    def pretrain(self, priors: list[Decisions], steps: int, learning_rate: float) -> None:
        """Warm start: ``steps`` Adam steps (learning rate ``learning_rate``, an optimiser of
        their own, so the policy-gradient optimiser starts fresh) that maximise the mean
        log-probability of the priors' decisions, before any reward is known. Afterwards the
        policy samples the priors' choices far more often than uniform, without excluding
        the rest: with the defaults (50 steps at 0.01) on ten priors, about half of the
        probability mass moves onto them."""
        if not priors or steps <= 0:
            return
        trajectories = [self._trajectory(d) for d in priors]
        optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = -self._evaluate(trajectories)[0].mean()
            torch.autograd.backward(loss)
            optimizer.step()
        self.pretrained += len(priors)

    def _trajectory(self, decisions: Decisions) -> Trajectory:
        """The stored decisions, checked against this space; ValueError says what is wrong.
        A cell's path becomes one row of operation indices (``tokens[0]``)."""
        if isinstance(self.space, Nb201Space):
            path = decisions.get("path")
            if not isinstance(path, list):
                raise ValueError("decisions need a 'path' list of the edges' operations")
            self.space.follow(path)
            return Trajectory([[self.space.ops.index(op) for op in path]], None)
        tokens, skips = decisions.get("tokens"), decisions.get("skips")
        if not isinstance(tokens, list) or not tokens:
            raise ValueError("decisions need a non-empty 'tokens' list")
        sizes = [len(self.space.choices(d)) for d in ZOPH_DECISIONS]
        for i, row in enumerate(tokens):
            if (
                not isinstance(row, list)
                or len(row) != len(sizes)
                or not all(isinstance(t, int) and 0 <= t < n for t, n in zip(row, sizes))
            ):
                raise ValueError(
                    f"decisions: tokens[{i}] must be {len(sizes)} indices "
                    f"below {sizes}, got {row!r}"
                )
        if not self.skips:
            return Trajectory([list(r) for r in tokens], None)
        if not isinstance(skips, list) or len(skips) != len(tokens):
            raise ValueError("decisions need one 'skips' row per layer")
        for i, row in enumerate(skips):
            if not isinstance(row, list) or len(row) != i or any(b not in (0, 1) for b in row):
                raise ValueError(f"decisions: skips[{i}] must be {i} bits, got {row!r}")
        return Trajectory([list(r) for r in tokens], [[int(b) for b in r] for r in skips])

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (copies, not views) that loads with ``torch.load(weights_only=True)``."""
        return {
            **copy.deepcopy(self.light_state()),
            "policy": {k: v.detach().clone() for k, v in self.policy.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def light_state(self) -> dict[str, Any]:
        """Everything but the policy and optimiser: a few kilobytes (the generator state and
        the results waiting for their batch). Live, not copied: serialise it at once."""
        return {
            "format": _STATE_FORMAT,
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "variance": self.variance,
            "elite": self.elite,  # serialised at once: no copy
            "samples": self.samples,
            "updates": self.updates,
            "steps": self.steps,
            "pretrained": self.pretrained,
            "dreamt": self.dreamt,
            "dreams": self.dreams,
            "pending": self.pending,  # serialised at once: no copy
        }

    def heavy_state(self) -> dict[str, Any]:
        """The policy's and optimiser's live state (no copies: serialise it at once), plain
        data so that it is written as JSON."""
        return {
            "policy": dict(self.policy.state_dict()),
            "optimizer": plain_optimizer_state(self.optimizer.state_dict()),
        }

    def weights_version(self) -> object:
        """The weights change only in a policy-gradient step or pre-training."""
        return (self.steps, self.pretrained)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"unknown reinforce state format {state.get('format')!r}")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(optimizer_state(copy.deepcopy(state["optimizer"])))
        self.generator.set_state(state["generator"])
        baseline = state["baseline"]
        self.baseline = None if baseline is None else float(baseline)
        self.samples = int(state["samples"])
        self.updates = int(state["updates"])
        self.steps = int(state["steps"])
        self.pretrained = int(state["pretrained"])
        # states saved before model-based steps existed had none
        self.dreamt = int(state.get("dreamt", 0))
        self.dreams = int(state.get("dreams", 0))
        self.pending = copy.deepcopy(list(state["pending"]))
        variance = state["variance"]
        self.variance = None if variance is None else float(variance)
        self.elite = copy.deepcopy(list(state["elite"]))

    def progress(self) -> dict[str, float]:
        out = (
            {}
            if isinstance(self.space, Nb201Space)
            else {
                "curriculum_layers": float(self.curriculum_layers()),
            }
        )
        out |= {
            "samples": float(self.samples),
            "updates": float(self.updates),
            "steps": float(self.steps),
        }
        if self.pretrained:
            out["pretrained_on"] = float(self.pretrained)
        if self.settings.model_steps:
            out["model_steps"] = float(self.dreams)
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out
