"""The names a search's settings may take, one list each, shared by the controller (which
checks a search's settings against them) and the clients (the CLI's choices)."""

from __future__ import annotations

__all__ = [
    "SPACE_NAMES",
    "STOPPING_RULES",
    "COST_METRICS",
    "SCREENING_SCORES",
    "ACQUISITIONS",
    "CONVERGENCE_ACTIONS",
]

#: the search spaces, by the name ``--space`` and ``SearchSpace.name`` take
SPACE_NAMES = ("zoph", "metaqnn", "nb201")
#: the early-stopping rules
STOPPING_RULES = ("none", "median", "asha")
#: the costs a cost-aware reward, a Pareto front and a size limit can weigh
COST_METRICS = ("params", "flops")
#: what the controller screens proposals by: training-free scores, or a predictor learnt from
#: the search's results
SCREENING_SCORES = ("synflow", "params", "flops", "predictor")
#: how the predictor ranks proposals
ACQUISITIONS = ("ucb", "ei", "mean")
#: what the controller does about a converged agent
CONVERGENCE_ACTIONS = ("explore", "end")
#: what a converged agent's exploration draws: uniformly from the space, or one-decision
#: mutations of the search's best results (a uniform draw when none of them is new)
EXPLORATION_DRAWS = ("uniform", "mutations")
