"""The controller network of Zoph & Le (2017): a stacked LSTM that emits five categorical
decisions per convolution (the sampled token's embedding feeding the next step) and, for skip
connections, one anchor step per layer with ``P(j -> i) = sigmoid(v' tanh(W_prev h_j +
W_curr h_i))``. Used by ``controller_service.agents.reinforce``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from controller_service.search_space import ZOPH_DECISIONS, ZophSpace

__all__ = ["ControllerLSTM", "Trajectory"]


@dataclass
class Trajectory:
    """One architecture's decisions: five token indices per layer and, with skip
    connections, ``skips[i]`` = i bits (does layer i+1 read layer j+1, j < i)."""

    tokens: list[list[int]]
    skips: list[list[int]] | None


@dataclass
class _Walk:
    """The controller's running state while it emits one architecture."""

    state: list[tuple[Tensor, Tensor]]
    x: Tensor
    anchors: list[Tensor] = field(default_factory=list)  # h_j of each earlier layer
    keys: list[Tensor] = field(default_factory=list)  # W_prev h_j
    log_probs: list[Tensor] = field(default_factory=list)
    entropies: list[Tensor] = field(default_factory=list)


class ControllerLSTM(nn.Module):
    """Embedding -> stacked LSTMCells -> one softmax decoder per decision, plus the anchor
    attention for skip connections. Every weight is uniform in ±``init_range``."""

    def __init__(
        self,
        space: ZophSpace,
        hidden: int,
        lstm_layers: int,
        init_range: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        # built on "meta" and initialised below from ``generator``: torch's global RNG is
        # never touched
        kw: dict[str, Any] = {"device": torch.device("meta"), "dtype": torch.float32}
        sizes = {d: len(space.choices(d)) for d in ZOPH_DECISIONS}
        self.start = nn.Parameter(torch.empty(1, hidden, **kw))
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden, **kw) for _ in range(lstm_layers))
        self.embeddings = nn.ModuleDict(
            {d: nn.Embedding(n, hidden, **kw) for d, n in sizes.items()}
        )
        self.decoders = nn.ModuleDict({d: nn.Linear(hidden, n, **kw) for d, n in sizes.items()})
        self.w_prev = nn.Linear(hidden, hidden, bias=False, **kw)
        self.w_curr = nn.Linear(hidden, hidden, bias=False, **kw)
        self.v = nn.Linear(hidden, 1, bias=False, **kw)
        self.to_empty(device="cpu")
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range, generator=generator)

    def rollout(
        self, source: torch.Generator | Trajectory, layers: int, skips: bool
    ) -> tuple[Trajectory, Tensor, Tensor]:
        """Emit ``layers`` layers, sampling from ``source`` when it is a generator and
        replaying it (teacher forcing) when it is a trajectory. Returns the trajectory, its
        log-probability and the summed entropy of every decision's distribution."""
        hidden = self.start.shape[1]
        zero = self.start.new_zeros(1, hidden)
        walk = _Walk([(zero, zero) for _ in self.cells], self.start)
        tokens, bits = [], []
        for i in range(layers):
            tokens.append(self._layer_tokens(walk, i, source))
            if skips:
                bits.append(self._layer_skips(walk, i, source))
        log_prob = torch.stack(walk.log_probs).sum()
        entropy = torch.stack(walk.entropies).sum()
        return Trajectory(tokens, bits if skips else None), log_prob, entropy

    def _advance(self, walk: _Walk) -> Tensor:
        """One LSTM step on ``walk.x``; returns the top layer's hidden state."""
        x, new_state = walk.x, []
        for cell, hc in zip(self.cells, walk.state):
            h, c = cell(x, hc)
            new_state.append((h, c))
            x = h
        walk.state = new_state
        return x

    def _layer_tokens(self, walk: _Walk, i: int, source: torch.Generator | Trajectory) -> list[int]:
        out = []
        for k, name in enumerate(ZOPH_DECISIONS):
            log_p = F.log_softmax(self.decoders[name](self._advance(walk)), dim=-1)[0]
            if isinstance(source, Trajectory):
                token = source.tokens[i][k]
            else:
                token = int(torch.multinomial(log_p.exp(), 1, generator=source))
            walk.log_probs.append(log_p[token])
            walk.entropies.append(-(log_p.exp() * log_p).sum())
            walk.x = self.embeddings[name](torch.tensor([token]))
            out.append(token)
        return out

    def _layer_skips(self, walk: _Walk, i: int, source: torch.Generator | Trajectory) -> list[int]:
        """The anchor step of layer i+1: one Bernoulli per earlier layer."""
        h = self._advance(walk)
        chosen: list[int] = []
        walk.x = torch.zeros_like(h)
        if walk.anchors:
            logits = self.v(torch.tanh(torch.cat(walk.keys) + self.w_curr(h))).view(-1)
            if isinstance(source, Trajectory):
                bits = torch.tensor(source.skips[i] if source.skips else [], dtype=h.dtype)
            else:
                bits = torch.bernoulli(torch.sigmoid(logits), generator=source)
            p = torch.sigmoid(logits)
            log_on, log_off = F.logsigmoid(logits), F.logsigmoid(-logits)
            walk.log_probs.append((bits * log_on + (1 - bits) * log_off).sum())
            walk.entropies.append(-(p * log_on + (1 - p) * log_off).sum())
            walk.x = (bits @ torch.cat(walk.anchors)).unsqueeze(0) / (1 + bits.sum())
            chosen = [int(b) for b in bits.tolist()]
        walk.anchors.append(h)
        walk.keys.append(self.w_prev(h))
        return chosen


# ---------------------------------------------------------------------------- the agent
