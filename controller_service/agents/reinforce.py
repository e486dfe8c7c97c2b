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

The policy (the LSTM, or with ``independent`` one learnt softmax per decision; in the NB201
cell space one operation per edge) and the decisions' format: ``reinforce_policy``.

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

from controller_service.agents.advantages import Advantages
from controller_service.agents.base import (
    Agent,
    AgentSettingsError,
    Decisions,
    Predict,
    Proposal,
)
from controller_service.agents.controller_lstm import Trajectory
from controller_service.agents.edge_policy import EdgePolicy
from controller_service.agents.persistence import (
    StoredInParts,
    optimizer_state,
    plain_optimizer_state,
)
from controller_service.agents.reinforce_policy import make_policy, proposal_of, trajectory_of
from controller_service.spaces import Nb201Space, ZophSpace
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
        self.policy, self.skips = make_policy(space, s, self.generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=s.learning_rate)
        self.advantages = Advantages(s.baseline_decay, s.standardize, s.elite)
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
        """Queue one result with its advantage (``advantages.Advantages``); every ``batch``
        results take one Adam step on their mean loss ``-advantage * log_prob -
        entropy_weight * entropy``, with the elite replayed."""
        trajectory = self._trajectory(decisions)
        r = self.settings.failure_reward if reward is None else float(reward)
        if not math.isfinite(r):
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        advantage = self.advantages.of(r)
        self.pending.append(
            {"tokens": trajectory.tokens, "skips": trajectory.skips, "advantage": advantage}
        )
        self.advantages.join(trajectory, r)
        if len(self.pending) % self.settings.batch == 0:
            # the elite replay of this batch's step, as of now: learnt later (the controller
            # records several results before it learns), the step is the one ``update`` takes
            self.pending[-1]["elite"] = self.advantages.replay()
        self.updates += 1

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
        batch = batch + (self.advantages.replay() if elite is None else list(elite))
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
        return proposal_of(self.space, t, logp)

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
        return trajectory_of(self.space, self.skips, decisions)

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
            **self.advantages.state(),  # serialised at once: no copy
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
        self.advantages.load(state)
        self.samples = int(state["samples"])
        self.updates = int(state["updates"])
        self.steps = int(state["steps"])
        self.pretrained = int(state["pretrained"])
        # states saved before model-based steps existed had none
        self.dreamt = int(state.get("dreamt", 0))
        self.dreams = int(state.get("dreams", 0))
        self.pending = copy.deepcopy(list(state["pending"]))

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
        if self.advantages.baseline is not None:
            out["baseline"] = self.advantages.baseline
        return out
