"""The controller network of Zoph & Le (2017): a stacked LSTM that emits five categorical
decisions per convolution (the sampled token's embedding feeding the next step) and, for skip
connections, one anchor step per layer with ``P(j -> i) = sigmoid(v' tanh(W_prev h_j +
W_curr h_i))``. Used by ``controller_service.agents.reinforce``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from controller_service.spaces import ZOPH_DECISIONS, ZophSpace

__all__ = ["ControllerLSTM", "Trajectory", "init_uniform"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), no overflow
    return out


def _logsigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = -np.logaddexp(0.0, -x)
    return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    out: np.ndarray = top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))
    return out


def init_uniform(module: nn.Module, init_range: float, generator: torch.Generator) -> None:
    """Allocate ``module`` (built on the "meta" device) on the CPU with every weight uniform
    in ±``init_range``, drawn from ``generator`` (torch's global RNG is never touched)."""
    module.to_empty(device="cpu")
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-init_range, init_range, generator=generator)


@dataclass
class Trajectory:
    """One architecture's decisions: five token indices per layer and, with skip
    connections, ``skips[i]`` = i bits (does layer i+1 read layer j+1, j < i)."""

    tokens: list[list[int]]
    skips: list[list[int]] | None


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
        init_uniform(self, init_range, generator)

    def sample(
        self, generator: torch.Generator, layers: int, skips: bool, count: int = 1
    ) -> tuple[list[Trajectory], list[float]]:
        """``count`` architectures of ``layers`` layers sampled in one batched pass, and their
        log-probabilities: the same network as ``rollout`` evaluated in NumPy, because at
        this size (35 units) a torch call costs more than its arithmetic — ~1 ms instead of
        ~6 ms for the paper's controller. Every random number comes from ``generator`` (one
        draw per rollout); decisions are drawn by inverse CDF. ``rollout`` replaying the
        result gives the same log-probability (tests/unit/test_reinforce.py checks it)."""
        w = {name: p.detach().numpy() for name, p in self.named_parameters()}
        cells = [
            (
                w[f"cells.{n}.weight_ih"].T,
                w[f"cells.{n}.weight_hh"].T,
                w[f"cells.{n}.bias_ih"] + w[f"cells.{n}.bias_hh"],
            )
            for n in range(len(self.cells))
        ]
        hidden = self.start.shape[1]
        draws = layers * len(ZOPH_DECISIONS) + (layers * (layers - 1) // 2 if skips else 0)
        u = torch.rand(count, max(1, draws), generator=generator, dtype=torch.float64).numpy()
        rows = np.arange(count)
        state = [(np.zeros((count, hidden), np.float32),) * 2 for _ in cells]
        x = np.broadcast_to(w["start"], (count, hidden))
        log_prob = np.zeros(count)
        anchors: list[np.ndarray] = []
        keys: list[np.ndarray] = []
        tokens: list[np.ndarray] = []
        bits_per_layer: list[np.ndarray] = []
        j = 0

        def advance(x: np.ndarray) -> np.ndarray:
            for n, (w_ih, w_hh, b) in enumerate(cells):
                h, c = state[n]
                gates = x @ w_ih + h @ w_hh + b  # torch's order: input, forget, cell, output
                s = _sigmoid(gates)
                c = s[:, hidden : 2 * hidden] * c + s[:, :hidden] * np.tanh(
                    gates[:, 2 * hidden : 3 * hidden]
                )
                h = s[:, 3 * hidden :] * np.tanh(c)
                state[n] = (h, c)
                x = h
            return x

        for i in range(layers):
            row = []
            for name in ZOPH_DECISIONS:
                logits = advance(x) @ w[f"decoders.{name}.weight"].T + w[f"decoders.{name}.bias"]
                log_p = logits - _logsumexp(logits)
                cdf = np.cumsum(np.exp(log_p.astype(np.float64)), axis=1)
                token = np.minimum((u[:, j, None] > cdf).sum(axis=1), cdf.shape[1] - 1)
                j += 1
                log_prob += log_p[rows, token]
                x = w[f"embeddings.{name}.weight"][token]
                row.append(token)
            tokens.append(np.stack(row, axis=1))
            if not skips:
                continue
            h = advance(x)
            x = np.zeros_like(h)
            if anchors:
                logits = np.tanh(np.stack(keys, axis=1) + (h @ w["w_curr.weight"].T)[:, None])
                logits = (logits @ w["v.weight"].T).reshape(count, i)
                bits = (u[:, j : j + i] < _sigmoid(logits.astype(np.float64))).astype(np.float32)
                j += i
                log_prob += (bits * _logsigmoid(logits) + (1 - bits) * _logsigmoid(-logits)).sum(1)
                x = (bits[:, :, None] * np.stack(anchors, axis=1)).sum(axis=1) / (
                    1 + bits.sum(axis=1, keepdims=True)
                )
                bits_per_layer.append(bits)
            else:
                bits_per_layer.append(np.zeros((count, 0), np.float32))
            anchors.append(h)
            keys.append(h @ w["w_prev.weight"].T)
        token_rows = np.stack(tokens, axis=1).tolist()
        skip_rows = [b.astype(np.int64).tolist() for b in bits_per_layer]
        out = [
            Trajectory(token_rows[b], [layer[b] for layer in skip_rows] if skips else None)
            for b in range(count)
        ]
        return out, log_prob.tolist()

    def rollout(
        self,
        source: torch.Generator | list[Trajectory],
        layers: int,
        skips: bool,
        count: int = 1,
    ) -> tuple[list[Trajectory], Tensor, Tensor]:
        """Emit ``count`` architectures of ``layers`` layers in one batched pass: sampled from
        ``source`` when it is a generator, replayed (teacher forcing) when it is a list of
        trajectories of ``layers`` layers each (``count`` is then their number). Returns the
        trajectories, their log-probabilities and the summed entropy of every decision's
        distribution (both shape ``(count,)``)."""
        forced = None if isinstance(source, torch.Generator) else source
        if forced is not None:
            count = len(forced)
            if any(len(t.tokens) != layers for t in forced):
                raise ValueError(f"every replayed trajectory must have {layers} layers")
        generator = source if isinstance(source, torch.Generator) else None
        hidden = self.start.shape[1]
        zero = self.start.new_zeros(count, hidden)
        state = [(zero, zero) for _ in self.cells]
        x = self.start.expand(count, hidden)
        log_prob = self.start.new_zeros(count)
        entropy = self.start.new_zeros(count)
        anchors: list[Tensor] = []  # h_j of each earlier layer, (count, hidden)
        keys: list[Tensor] = []  # W_prev h_j
        tokens: list[Tensor] = []  # (count, 5) per layer
        bits_per_layer: list[Tensor] = []  # (count, i) per layer i

        cells = [cast(nn.LSTMCell, c) for c in self.cells]
        decoders = {d: cast(nn.Linear, self.decoders[d]) for d in ZOPH_DECISIONS}
        embeddings = {d: cast(nn.Embedding, self.embeddings[d]) for d in ZOPH_DECISIONS}

        def advance(x: Tensor) -> Tensor:
            # the cells called directly: a module call costs more than the step itself
            for n, cell in enumerate(cells):
                h, c = torch.lstm_cell(
                    x, state[n], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
                )
                state[n] = (h, c)
                x = h
            return x

        for i in range(layers):
            row = []
            for k, name in enumerate(ZOPH_DECISIONS):
                decoder = decoders[name]
                log_p = F.log_softmax(F.linear(advance(x), decoder.weight, decoder.bias), dim=-1)
                if forced is not None:
                    token = torch.tensor([t.tokens[i][k] for t in forced])
                else:
                    token = torch.multinomial(log_p.exp(), 1, generator=generator).view(-1)
                log_prob = log_prob + log_p.gather(1, token.view(-1, 1)).view(-1)
                entropy = entropy - (log_p.exp() * log_p).sum(dim=1)
                x = F.embedding(token, embeddings[name].weight)
                row.append(token)
            tokens.append(torch.stack(row, dim=1))
            if not skips:
                continue
            # the anchor step of layer i+1: one Bernoulli per earlier layer
            h = advance(x)
            x = torch.zeros_like(h)
            if anchors:
                logits = F.linear(
                    torch.tanh(torch.stack(keys, dim=1) + F.linear(h, self.w_curr.weight)[:, None]),
                    self.v.weight,
                ).view(count, i)
                if forced is not None:
                    bits = torch.tensor(
                        [t.skips[i] if t.skips else [] for t in forced], dtype=h.dtype
                    )
                else:
                    bits = torch.bernoulli(torch.sigmoid(logits), generator=generator)
                log_on, log_off = F.logsigmoid(logits), F.logsigmoid(-logits)
                p = torch.sigmoid(logits)
                log_prob = log_prob + (bits * log_on + (1 - bits) * log_off).sum(dim=1)
                entropy = entropy - (p * log_on + (1 - p) * log_off).sum(dim=1)
                x = (bits[:, :, None] * torch.stack(anchors, dim=1)).sum(dim=1) / (
                    1 + bits.sum(dim=1, keepdim=True)
                )
                bits_per_layer.append(bits)
            else:
                bits_per_layer.append(h.new_zeros(count, 0))
            anchors.append(h)
            keys.append(F.linear(h, self.w_prev.weight))
        out = forced
        if out is None:
            token_rows = torch.stack(tokens, dim=1).tolist()  # (count, layers, 5)
            skip_rows = [b.long().tolist() for b in bits_per_layer]
            out = [
                Trajectory(token_rows[b], [layer[b] for layer in skip_rows] if skips else None)
                for b in range(count)
            ]
        return out, log_prob, entropy
