"""The reinforce agent's policies other than Zoph & Le's layer LSTM (``controller_lstm``):
``LayerLogits``, one learnt softmax per decision of each layer position in the Zoph space
(``independent``), and ``EdgePolicy``, over a fixed sequence of categorical decisions (a cell's
edges, each taking one of the same operations) in the NB201 space:

* ``lstm``: Zoph & Le's controller applied to a cell, as NAS-Bench-201's paper did — a stacked
  LSTM emits one operation per edge, the sampled operation's embedding is the next step's
  input, one softmax decoder per edge;
* ``independent``: one learnt softmax per edge and nothing else (the REINFORCE of
  NAS-Bench-201's own scripts: ``Categorical(softmax(arch_parameters))``).

Both take their initial weights from the agent's ``torch.Generator`` (uniform in
±``init_range``) and never touch torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from controller_service.agents.controller_lstm import Trajectory, init_uniform

__all__ = ["EdgePolicy", "LayerLogits"]


class EdgePolicy(nn.Module):
    """``steps`` decisions of ``choices`` options each. ``sample`` draws (batched),
    ``evaluate`` gives the log-probability and entropy of given decisions (differentiable)."""

    def __init__(
        self,
        steps: int,
        choices: int,
        hidden: int,
        lstm_layers: int,
        init_range: float,
        generator: torch.Generator,
        independent: bool,
    ) -> None:
        super().__init__()
        self.steps, self.choices, self.independent = steps, choices, independent
        kw: dict[str, Any] = {"device": torch.device("meta"), "dtype": torch.float32}
        if independent:
            self.logits = nn.Parameter(torch.empty(steps, choices, **kw))
        else:
            self.start = nn.Parameter(torch.empty(1, hidden, **kw))
            self.cells = nn.ModuleList(
                nn.LSTMCell(hidden, hidden, **kw) for _ in range(lstm_layers)
            )
            self.embedding = nn.Embedding(choices, hidden, **kw)
            self.decoders = nn.ModuleList(nn.Linear(hidden, choices, **kw) for _ in range(steps))
        init_uniform(self, init_range, generator)

    def _run(
        self, count: int, forced: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(decisions (count, steps), log-probabilities (count,), entropies (count,)): drawn
        from ``generator``, or ``forced`` replayed."""
        log_prob = torch.zeros(count)
        entropy = torch.zeros(count)
        chosen: list[Tensor] = []
        if not self.independent:
            hidden = self.start.shape[1]
            zero = self.start.new_zeros(count, hidden)
            state = [(zero, zero) for _ in self.cells]
            x = self.start.expand(count, hidden)
        for step in range(self.steps):
            if self.independent:
                logits = self.logits[step].expand(count, self.choices)
            else:
                for n, module in enumerate(self.cells):
                    cell = cast(nn.LSTMCell, module)
                    state[n] = torch.lstm_cell(
                        x, state[n], cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
                    )
                    x = state[n][0]
                logits = cast(nn.Linear, self.decoders[step])(x)
            log_p = F.log_softmax(logits, dim=-1)
            if forced is not None:
                token = forced[:, step]
            else:
                token = torch.multinomial(log_p.exp(), 1, generator=generator).view(-1)
            log_prob = log_prob + log_p.gather(1, token.view(-1, 1)).view(-1)
            entropy = entropy - (log_p.exp() * log_p).sum(dim=1)
            if not self.independent:
                x = self.embedding(token)
            chosen.append(token)
        return torch.stack(chosen, dim=1), log_prob, entropy

    def sample(self, generator: torch.Generator, count: int) -> tuple[list[list[int]], list[float]]:
        """``count`` decision sequences and their log-probabilities."""
        with torch.inference_mode():
            tokens, log_prob, _ = self._run(count, None, generator)
        return tokens.tolist(), log_prob.tolist()

    def evaluate(self, decisions: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Log-probabilities and entropies of ``decisions`` under the current policy."""
        forced = torch.tensor(decisions, dtype=torch.long).view(len(decisions), self.steps)
        _, log_prob, entropy = self._run(len(decisions), forced, None)
        return log_prob, entropy


class LayerLogits(nn.Module):
    """The ``independent`` policy in the Zoph space: for each layer position up to the space's
    ``max_layers``, one learnt softmax per decision (filter height, filter width, stride
    height, stride width, filters) and one learnt Bernoulli per skip connection (layer i reads
    layer j); a network of L layers uses the first L positions. The same ``sample`` /
    ``rollout`` interface as ``ControllerLSTM``."""

    def __init__(
        self, sizes: Sequence[int], max_layers: int, init_range: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        kw: dict[str, Any] = {"device": torch.device("meta"), "dtype": torch.float32}
        self.sizes = tuple(sizes)
        self.decisions = nn.ParameterList(
            nn.Parameter(torch.empty(max_layers, n, **kw)) for n in self.sizes
        )
        self.skip_logits = nn.Parameter(torch.empty(max_layers, max(1, max_layers), **kw))
        init_uniform(self, init_range, generator)

    def sample(
        self, generator: torch.Generator, layers: int, skips: bool, count: int = 1
    ) -> tuple[list[Trajectory], list[float]]:
        with torch.inference_mode():
            out, log_prob, _ = self.rollout(generator, layers, skips, count)
        return out, log_prob.tolist()

    def rollout(
        self,
        source: torch.Generator | list[Trajectory],
        layers: int,
        skips: bool,
        count: int = 1,
    ) -> tuple[list[Trajectory], Tensor, Tensor]:
        """Sampled from ``source`` (a generator) or replayed (a list of trajectories of
        ``layers`` layers): trajectories, log-probabilities and summed entropies."""
        forced = None if isinstance(source, torch.Generator) else source
        generator = source if isinstance(source, torch.Generator) else None
        if forced is not None:
            count = len(forced)
        log_prob, entropy = torch.zeros(count), torch.zeros(count)
        columns = []
        for k, logits in enumerate(self.decisions):
            log_p = F.log_softmax(logits[:layers], dim=-1)  # (layers, n)
            if forced is not None:
                tokens = torch.tensor([[row[k] for row in t.tokens] for t in forced])
            else:
                probs = log_p.exp().repeat(count, 1)
                tokens = torch.multinomial(probs, 1, generator=generator).view(count, layers)
            log_prob = log_prob + log_p.gather(1, tokens.T).T.sum(dim=1)
            entropy = entropy - (log_p.exp() * log_p).sum()
            columns.append(tokens)
        bits: Tensor | None = None
        if skips and layers > 1:
            mask = torch.tril(torch.ones(layers, layers), diagonal=-1).bool()
            logits = self.skip_logits[:layers, :layers][mask]  # row-major: (1,0), (2,0), (2,1)...
            if forced is not None:
                bits = torch.tensor(
                    [[b for row in (t.skips or []) for b in row] for t in forced],
                    dtype=torch.float32,
                ).view(count, -1)
            else:
                bits = torch.bernoulli(torch.sigmoid(logits).expand(count, -1), generator=generator)
            on, off = F.logsigmoid(logits), F.logsigmoid(-logits)
            log_prob = log_prob + (bits * on + (1 - bits) * off).sum(dim=1)
            p = torch.sigmoid(logits)
            entropy = entropy - (p * on + (1 - p) * off).sum()
        if forced is not None:
            return forced, log_prob, entropy
        token_rows = torch.stack(columns, dim=2).tolist()  # (count, layers, 5)
        out = []
        for b in range(count):
            skip_rows = None
            if skips:
                flat = [] if bits is None else [int(x) for x in bits[b].tolist()]
                skip_rows, at = [], 0
                for i in range(layers):
                    skip_rows.append(flat[at : at + i])
                    at += i
            out.append(Trajectory(token_rows[b], skip_rows))
        return out, log_prob, entropy
