"""The controller network of Zoph & Le (2017): a stacked LSTM that emits five categorical
decisions per convolution (the sampled token's embedding feeding the next step) and, for skip
connections, one anchor step per layer with ``P(j -> i) = sigmoid(v' tanh(W_prev h_j +
W_curr h_i))``. Used by ``controller_service.agents.reinforce``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from controller_service.spaces import ZOPH_DECISIONS, ZophSpace

__all__ = ["ControllerLSTM", "Trajectory"]


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
        self.to_empty(device="cpu")
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-init_range, init_range, generator=generator)

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
