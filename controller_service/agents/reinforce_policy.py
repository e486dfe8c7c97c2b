"""The reinforce agent's policy in each space, and how its decisions become trajectories
(checked against the space) and networks.

In the Zoph space the policy is Zoph & Le's stacked LSTM (``controller_lstm.ControllerLSTM``)
or, with ``independent``, one learnt softmax per decision of each layer position
(``edge_policy.LayerLogits``). ``Proposal.decisions`` is plain JSON data::

    {"tokens": [[fh, fw, sh, sw, nf], ...],   # indices into the space's choices, per layer
     "skips": [[], [b], [b, b], ...] | None,  # skips[i][j] = 1: layer i+1 reads layer j+1
     "layers": L,                              # len(tokens)
     "logp": -12.3}                            # log-probability at sampling time (diagnostic)

In the NB201 cell space the policy emits one operation per edge (``edge_policy.EdgePolicy``:
the LSTM, or with ``independent`` one softmax per edge, as NAS-Bench-201's paper) and the
decisions are ``{"path": [op of each edge], "logp": -9.6}``; a trajectory holds the path's
operation indices as its one row.
"""

from __future__ import annotations

import torch

from controller_service.agents.base import Decisions, Proposal
from controller_service.agents.controller_lstm import ControllerLSTM, Trajectory
from controller_service.agents.edge_policy import EdgePolicy, LayerLogits
from controller_service.spaces import ZOPH_DECISIONS, Nb201Space, ZophSpace
from nasrl.core.agent_settings import ReinforceSettings
from nasrl.core.cell import EDGES

__all__ = ["Policy", "make_policy", "proposal_of", "trajectory_of"]

Policy = ControllerLSTM | EdgePolicy | LayerLogits


def make_policy(
    space: ZophSpace | Nb201Space, s: ReinforceSettings, generator: torch.Generator
) -> tuple[Policy, bool]:
    """The policy for ``space`` with its initial weights drawn from ``generator``, and whether
    it decides skip connections."""
    if isinstance(space, Nb201Space):
        cells = EdgePolicy(
            len(EDGES),
            len(space.ops),
            s.hidden,
            s.lstm_layers,
            s.init_range,
            generator,
            s.independent,
        )
        return cells, False
    skips = s.skip_connections and space.skip_connections
    if s.independent:
        sizes = [len(space.choices(d)) for d in ZOPH_DECISIONS]
        return LayerLogits(sizes, space.max_layers, s.init_range, generator), skips
    return ControllerLSTM(space, s.hidden, s.lstm_layers, s.init_range, generator), skips


def proposal_of(space: ZophSpace | Nb201Space, t: Trajectory, logp: float | None) -> Proposal:
    """The network of a trajectory with its decisions (``logp``: its log-probability at
    sampling time; None for the model-based steps' networks, which are never stored)."""
    tail = {} if logp is None else {"logp": logp}
    if isinstance(space, Nb201Space):
        path = [space.ops[i] for i in t.tokens[0]]
        return Proposal(space.decode(path), {"path": path, **tail})
    decisions = {"tokens": t.tokens, "skips": t.skips, "layers": len(t.tokens), **tail}
    return Proposal(space.decode(t.tokens, t.skips), decisions)


def trajectory_of(space: ZophSpace | Nb201Space, skips: bool, decisions: Decisions) -> Trajectory:
    """Stored decisions as a trajectory, checked against ``space`` (``skips``: whether the
    policy decides skip connections); ValueError says what is wrong."""
    if isinstance(space, Nb201Space):
        path = decisions.get("path")
        if not isinstance(path, list):
            raise ValueError("decisions need a 'path' list of the edges' operations")
        space.follow(path)
        return Trajectory([[space.ops.index(op) for op in path]], None)
    tokens, skip_rows = decisions.get("tokens"), decisions.get("skips")
    if not isinstance(tokens, list) or not tokens:
        raise ValueError("decisions need a non-empty 'tokens' list")
    sizes = [len(space.choices(d)) for d in ZOPH_DECISIONS]
    for i, row in enumerate(tokens):
        if (
            not isinstance(row, list)
            or len(row) != len(sizes)
            or not all(isinstance(t, int) and 0 <= t < n for t, n in zip(row, sizes))
        ):
            raise ValueError(
                f"decisions: tokens[{i}] must be {len(sizes)} indices below {sizes}, got {row!r}"
            )
    if not skips:
        return Trajectory([list(r) for r in tokens], None)
    if not isinstance(skip_rows, list) or len(skip_rows) != len(tokens):
        raise ValueError("decisions need one 'skips' row per layer")
    for i, row in enumerate(skip_rows):
        if not isinstance(row, list) or len(row) != i or any(b not in (0, 1) for b in row):
            raise ValueError(f"decisions: skips[{i}] must be {i} bits, got {row!r}")
    return Trajectory([list(r) for r in tokens], [[int(b) for b in r] for r in skip_rows])
