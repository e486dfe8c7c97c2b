"""The flags of ``nasrl search``, ``nasrl leaderboard``, ``nasrl agents`` and
``nasrl searches``, a group of related flags per function."""

from __future__ import annotations

import argparse
import math
from typing import Any

from nasrl.cli.listing_cmd import agent_setting_help, cmd_agents, cmd_leaderboard, cmd_searches
from nasrl.cli.search_cmd import cmd_search
from nasrl.core.agent_settings import AGENT_SETTINGS
from nasrl.core.search_choices import (
    ACQUISITIONS,
    CONVERGENCE_ACTIONS,
    COST_METRICS,
    EXPLORATION_DRAWS,
    SCREENING_SCORES,
    SPACE_NAMES,
    STOPPING_RULES,
)
from nasrl.rpc.security import add_client_flags

__all__ = ["add_search_commands", "positive_int", "finite_float"]

#: the training-free scores (all screening scores but the predictor): --screen-cold-start-score
COLD_START_SCORES = tuple(s for s in SCREENING_SCORES if s != "predictor")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (0 would mean "the default" in the
    request, silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def add_search_commands(sub: Any, controller_default: str) -> None:
    _add_search(sub, controller_default)
    _add_listings(sub, controller_default)


def _add_listings(sub: Any, controller_default: str) -> None:
    """``nasrl leaderboard``, ``nasrl agents`` and ``nasrl searches``."""
    lb = sub.add_parser("leaderboard", help="the best results of a search")
    lb.add_argument("search_id")
    lb.add_argument("--controller", default=controller_default)
    lb.add_argument("--top", type=int, default=10)
    lb.add_argument(
        "--pareto",
        choices=COST_METRICS,
        help="the accuracy/cost Pareto front instead of the most accurate",
    )
    lb.add_argument("--json", action="store_true")
    lb.add_argument("--timeout", type=float, default=30.0)
    add_client_flags(lb)
    lb.set_defaults(func=cmd_leaderboard)
    ag = sub.add_parser("agents", help="every agent and its settings: defaults and ranges")
    ag.add_argument("--json", action="store_true", help="one JSON list of settings")
    ag.set_defaults(func=cmd_agents)
    ls = sub.add_parser("searches", help="every search on a controller")
    ls.add_argument("--controller", default=controller_default)
    ls.add_argument("--timeout", type=float, default=30.0)
    add_client_flags(ls)
    ls.set_defaults(func=cmd_searches)


def _add_search(sub: Any, controller_default: str) -> None:
    s = sub.add_parser("search", help="run a whole search over a controller and trainers")
    s.add_argument("--controller", default=controller_default, help="HOST:PORT [NASRL_CONTROLLER]")
    s.add_argument(
        "--trainers",
        default="127.0.0.1:50052",
        help="HOST:PORT[,HOST:PORT...] or dns:///NAME:PORT (every address it resolves to)",
    )
    for group in (
        _agent,
        _space,
        _budget,
        _evaluation,
        _warm_start,
        _limits,
        _screening,
        _convergence,
        _running,
        _output,
    ):
        group(s)
    add_client_flags(s)
    s.set_defaults(func=cmd_search)


def _agent(s: argparse.ArgumentParser) -> None:
    """the agent and its settings"""
    s.add_argument("--agent", default="reinforce", choices=tuple(AGENT_SETTINGS))
    s.add_argument(
        "--preset",
        default="",
        metavar="NAME",
        help="a named set of the agent's settings: paper (the defaults) or, for reinforce and "
        "qlearning, efficient (nasrl agents lists them); --agent-setting overrides it",
    )
    s.add_argument(
        "--agent-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=agent_setting_help(),
    )


def _space(s: argparse.ArgumentParser) -> None:
    """the search space"""
    s.add_argument(
        "--space",
        choices=SPACE_NAMES,
        default=None,
        help="search space (default: the agent's own); nb201 is NAS-Bench-201's cell space",
    )
    s.add_argument(
        "--skeleton",
        metavar="C=16,N=5,S=3",
        default=None,
        help="nb201: the skeleton every child is built on, the values that differ from "
        "NAS-Bench-201's (stem channels C, cells per stage N, stages S), e.g. N=1",
    )
    s.add_argument(
        "--cell-ops",
        metavar="OP,OP,...",
        default=None,
        help="nb201: the operations an edge may take (default all five: none, skip_connect, "
        "nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)",
    )
    s.add_argument(
        "--space-from-table",
        metavar="TABLE",
        help="search the space of a tabular benchmark (bench/build_table.py) on its "
        "dataset with its training settings; pair with trainers started with --table",
    )


def _budget(s: argparse.ArgumentParser) -> None:
    """the dataset, budget, training and early stopping"""
    s.add_argument("--dataset", default="digits")
    s.add_argument("--budget", type=int, default=20, help="children to train")
    s.add_argument(
        "--epochs", type=int, default=None, help="epochs per child (default 3, or the table's)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--early-stopping",
        choices=STOPPING_RULES,
        default="none",
        help="stop children early by the controller's rule (default none, as the "
        "papers); each epoch is reported with Report and a STOP ends the child",
    )
    s.add_argument("--eta", type=int, default=3, help="asha's reduction factor (default 3)")


def _evaluation(s: argparse.ArgumentParser) -> None:
    """how children are evaluated: trained fully, or under shared weights (ENAS)"""
    s.add_argument(
        "--evaluation",
        choices=("full", "shared"),
        default="full",
        help="full: train every child (default); shared: score each child under weights "
        "shared by all children, on a --supernet trainer (--budget counts them)",
    )
    s.add_argument(
        "--shared-steps",
        type=int,
        default=0,
        help="shared: mini-batch steps of the shared weights per child (0: the trainer's)",
    )
    s.add_argument(
        "--warmup-children",
        type=int,
        default=0,
        help="shared: the first W children uniform from the space; the agent learns from none",
    )
    s.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="shared: then train the K best by shared score fully, on a trainer without --supernet",
    )


def _warm_start(s: argparse.ArgumentParser) -> None:
    """a warm start from an earlier search or a file of networks"""
    s.add_argument(
        "--warm-start",
        metavar="SEARCH_ID|FILE",
        help="start from an earlier search (its results are reused, its best are "
        "priors) or from a file of networks, one per line (trained first)",
    )
    s.add_argument(
        "--warm-top",
        type=int,
        default=10,
        help="how many of the earlier search's best become priors (default 10)",
    )
    s.add_argument(
        "--pretrain-steps",
        type=int,
        default=50,
        help="reinforce: likelihood steps on the priors (default 50)",
    )


def _limits(s: argparse.ArgumentParser) -> None:
    """size limits and a cost-aware reward"""
    s.add_argument(
        "--max-params",
        type=int,
        default=0,
        help="reject networks with more parameters before training (no budget spent)",
    )
    s.add_argument("--max-flops", type=int, default=0, help="the same for FLOPs")
    s.add_argument(
        "--cost",
        choices=COST_METRICS,
        help="cost-aware reward: reward x (cost / --cost-target)^--cost-weight",
    )
    s.add_argument("--cost-target", type=float, default=None)
    s.add_argument(
        "--cost-weight",
        type=float,
        default=-0.07,
        help="exponent of the cost term (default -0.07, MnasNet)",
    )


def _screening(s: argparse.ArgumentParser) -> None:
    """screening proposals by a training-free score or a predictor learnt from the results"""
    s.add_argument(
        "--screen",
        choices=SCREENING_SCORES,
        help="screening: of --screen-factor proposals per child, train only the best by this "
        "score: a training-free one at initialisation, or predictor (a model fitted on the "
        "search's own results; see --screen-acquisition)",
    )
    s.add_argument(
        "--screen-factor",
        type=int,
        default=4,
        help="proposals scored per child trained (default 4)",
    )
    s.add_argument(
        "--screen-acquisition",
        choices=ACQUISITIONS,
        help="predictor: how proposals are ranked: ucb (default: mean + kappa x spread of "
        "the ensemble), ei (expected improvement over the best so far) or mean",
    )
    s.add_argument(
        "--screen-kappa",
        type=finite_float,
        metavar="K",
        help="predictor: ucb's weight on the spread, 0 .. 10 (default 0.5)",
    )
    s.add_argument(
        "--screen-cold-start",
        type=positive_int,
        metavar="N",
        help="predictor: results before the first model, 2 .. 1000 (default 10)",
    )
    s.add_argument(
        "--screen-cold-start-score",
        choices=("none", *COLD_START_SCORES),
        help="predictor: the training-free score that screens before the first model "
        "(default none: one proposal per child until then)",
    )
    s.add_argument(
        "--screen-refit-every",
        type=positive_int,
        metavar="N",
        help="predictor: refit the model after every N new results, 1 .. 1000 (default 10)",
    )


def _convergence(s: argparse.ArgumentParser) -> None:
    """what happens when the agent only re-proposes networks already evaluated"""
    s.add_argument(
        "--converged-after",
        type=positive_int,
        metavar="N",
        help="the agent is converged after N proposals in a row of networks already "
        "evaluated, 1 .. 1000000 (default 100)",
    )
    s.add_argument(
        "--when-converged",
        choices=CONVERGENCE_ACTIONS,
        help="explore (default): add a network per child (see --explore-by) until the agent "
        "proposes a new one; end: end the search, its budget unspent",
    )
    s.add_argument(
        "--explore-by",
        choices=EXPLORATION_DRAWS,
        help="what explore proposes: mutations (default): one decision changed in one of the "
        "best results so far (a uniform draw when none of those is new), or uniform draws "
        "from the space",
    )
    s.add_argument(
        "--explore-top",
        type=positive_int,
        metavar="K",
        help="--explore-by mutations: mutate the K best results, 1 .. 1000 (default 5)",
    )


def _running(s: argparse.ArgumentParser) -> None:
    """how the runner spends trainers, retries and waits"""
    s.add_argument("--name", default="")
    s.add_argument(
        "--lease",
        type=float,
        default=3600.0,
        help="seconds before an unreported child is handed out again",
    )
    s.add_argument("--slots-per-trainer", type=int, default=1)
    s.add_argument(
        "--retries",
        type=int,
        default=3,
        help="tries per child on trainers that answer with an error (a trainer that is "
        "down costs none: the child waits for one that is up)",
    )
    s.add_argument(
        "--max-failure-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="exit with code 3 when more than this fraction of the children failed, "
        "or when every child failed (default 0.5)",
    )
    s.add_argument(
        "--controller-wait",
        type=float,
        default=600.0,
        help="seconds to wait for an unreachable controller before giving up",
    )
    s.add_argument(
        "--trainer-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds with every trainer down before the search stops with an error "
        "(default 300); the children in flight stay leased for --resume",
    )


def _output(s: argparse.ArgumentParser) -> None:
    """resuming, and what the search prints, plots and exports"""
    s.add_argument("--resume", metavar="SEARCH_ID", help="continue this search")
    s.add_argument("--json", action="store_true", help="print one JSON summary on stdout")
    s.add_argument("--plot", metavar="FILE.png", help="accuracy per child and best so far")
    s.add_argument(
        "--export-best",
        metavar="FILE",
        help="the best network with its trained weights (retrained if no trainer "
        "still holds them): FILE.py, a standalone PyTorch module with FILE.pt beside "
        "it; FILE.onnx; or FILE.pt/.ts, TorchScript (see nasrl export)",
    )
    s.add_argument(
        "--export-format",
        choices=("python", "onnx", "torchscript"),
        help="the format of --export-best (default: from its suffix)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--timeout", type=float, default=30.0, help="deadline of controller calls")
