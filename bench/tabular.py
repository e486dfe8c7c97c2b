"""Search efficiency on a tabular benchmark: every agent (and Optuna TPE) replayed against a
table built by bench/build_table.py, over many seeds, in minutes.

    .venv/bin/python bench/tabular.py --table bench/tables/zoph_mnist5k.jsonl.gz
        [--agents reinforce,random,evolution,tpe] [--seeds 50] [--evaluations N]
        [--variant paper|budget|both] [--workers 2] [--out DIR]

Each run drives the agent exactly as the controller does (``agent.sample(1)``, then
``agent.update(decisions, reward)`` with the agent's default reward: (max validation accuracy
of the last 5 epochs)^3 for reinforce, validation accuracy for the others), but answers every
proposal from the table instead of training it. As in the controller, a network already
evaluated in the run costs nothing: the agent learns its stored reward and it does not count
as an evaluation. A run ends after ``--evaluations`` distinct networks (default: a quarter of
the table) or after 4 x that many proposals (a stalled agent: it re-proposes known networks;
the report counts such runs, and their best-so-far stays at its last value).

TPE is Optuna's TPESampler (``pip install -e '.[bench]'``) over the same decisions (Zoph
tables only), with the same dedup. Variants: ``paper`` runs every agent with its defaults
(the papers' values); ``budget`` runs settings fitted to budgets of a few hundred children
(reported separately): reinforce with a 20x larger learning rate (0.012) and batch 4, qlearning
with its epsilon schedule scaled to a third of the budget spent at epsilon 1.

Reported per agent: the mean best-so-far validation accuracy (and the test accuracy of that
best network) after 50 / 100 / 200 / 500 evaluations with 95 % confidence intervals; the
evaluations and trainer-seconds (the table's recorded seconds of the networks evaluated) a run
needs to reach random search's mean final best; the final regret against the table's optimum.
Writes OUT/tabular_NAME.json and OUT/tabular_NAME.png (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import draw_band, first_reaching, fmt, mean_std  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CHECKPOINTS = (50, 100, 200, 500)
ZOPH_AGENTS = ("reinforce", "random", "evolution", "tpe")
METAQNN_AGENTS = ("qlearning", "random", "evolution")
BUDGET_SETTINGS: dict[str, dict[str, Any]] = {
    "reinforce": {"learning_rate": 0.012, "batch": 4},
    "qlearning": {"schedule_scale": -1.0},  # filled in per run: a third of the budget at 1.0
}


@dataclass
class Run:
    agent: str
    seed: int
    best: list[float] = field(default_factory=list)  # best-so-far validation per evaluation
    test: list[float] = field(default_factory=list)  # test accuracy of that best network
    seconds: list[float] = field(default_factory=list)  # cumulative trainer-seconds
    cached: int = 0
    proposals: int = 0
    stopped: int = 0
    stalled: bool = False
    proxy_seconds: float = 0.0  # warm start: trainer-seconds of the proxy search

    def record(self, validation: float, test: float, seconds: float) -> None:
        if not self.best or validation > self.best[-1]:  # ties keep the first
            self.best.append(validation)
            self.test.append(test)
        else:
            self.best.append(self.best[-1])
            self.test.append(self.test[-1])
        self.seconds.append((self.seconds[-1] if self.seconds else 0.0) + seconds)

    def at(self, n: int) -> tuple[float, float] | None:
        if len(self.best) < n:
            return None
        return self.best[n - 1], self.test[n - 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "seed": self.seed,
            "best": self.best,
            "test": self.test,
            "seconds": self.seconds,
            "cached": self.cached,
            "proposals": self.proposals,
            "stopped": self.stopped,
            "stalled": self.stalled,
            "proxy_seconds": self.proxy_seconds,
        }


# ------------------------------------------------------------------------ the replay itself


class Lookup:
    """The table as the agents see it: canonical text -> (validation, last5, test, seconds)."""

    def __init__(self, path: Path) -> None:
        from google.protobuf import json_format

        from controller_service.codec import space_from_proto
        from nasrl.core.datasets import input_shape
        from nasrl.core.table import read_table
        from protos import controller_pb2 as cpb

        self.table = read_table(path)
        space = space_from_proto(json_format.ParseDict(self.table.space, cpb.SearchSpace()))
        assert space is not None
        self.space = space.bind(input_shape(self.table.dataset))
        self.rows = {
            a: (r.best_validation, max(r.validation[-5:]), r.test_accuracy, r.seconds)
            for a, r in self.table.primary().items()
        }
        self.primary = self.table.primary()
        self.optimum = max(v[0] for v in self.rows.values())

    def text(self, arch: Any) -> str:
        from nasrl.core.arch import canonical, format_arch

        text = format_arch(canonical(arch))
        if text not in self.rows:
            raise KeyError(f"{text} is not in the table")
        return text


def _agent_settings(agent: str, variant: str, evaluations: int) -> dict[str, Any]:
    if variant != "budget" or agent not in BUDGET_SETTINGS:
        return {}
    settings = dict(BUDGET_SETTINGS[agent])
    if agent == "qlearning":  # the paper spends 1,500 of 2,700 models at epsilon 1
        settings["schedule_scale"] = (evaluations / 3) / 1500
    return settings


class Evaluator:
    """Answers one run's proposals from the table as the controller and runner would: a
    network seen before is free (its stored result is learnt again); a new one "trains"
    epoch by epoch under the early-stopping rule, costing the recorded seconds of the epochs
    it ran. A stopped child's result is its best validation accuracy over the epochs it ran
    (and, for the zoph reward, the max of its last 5 of those), which is what the agent learns;
    its test accuracy is unknown (NaN). The run ends at ``evaluations`` distinct networks or at
    ``budget_seconds`` trainer-seconds, whichever comes first."""

    def __init__(
        self,
        lookup: Lookup,
        run: Run,
        evaluations: int,
        stopping: str,
        budget_seconds: float | None,
        stall: int = 4,
    ) -> None:
        from controller_service.stopping import StoppingSettings, make_rule

        self.lookup, self.run = lookup, run
        self.evaluations, self.budget, self.stall = evaluations, budget_seconds, stall
        epochs = len(next(iter(lookup.primary.values())).validation)
        self.rule = make_rule(StoppingSettings(stopping), epochs)
        self.results: dict[str, tuple[float, float]] = {}  # text -> (validation, last5)

    def done(self) -> bool:
        if self.run.proposals >= self.stall * self.evaluations:
            self.run.stalled = True
            return True
        if self.budget is not None and self.run.seconds and self.run.seconds[-1] >= self.budget:
            return True
        return len(self.run.best) >= self.evaluations

    def __call__(self, arch: Any) -> tuple[float, float]:
        """(validation, last5) that the agent learns for ``arch``."""
        from controller_service.stopping import Decision

        text = self.lookup.text(arch)
        self.run.proposals += 1
        if text in self.results:
            self.run.cached += 1
            return self.results[text]
        row = self.lookup.primary[text]
        child = len(self.results)
        ran = len(row.validation)
        for epoch, accuracy in enumerate(row.validation, start=1):
            if self.rule.decide(child, epoch, accuracy) is Decision.STOP:
                ran = epoch
                break
        curve = row.validation[:ran]
        overhead = max(0.0, row.seconds - sum(row.epoch_seconds))
        seconds = sum(row.epoch_seconds[:ran]) + overhead * ran / len(row.validation)
        stopped = ran < len(row.validation)
        self.run.stopped += stopped
        self.run.record(max(curve), float("nan") if stopped else row.test_accuracy, seconds)
        self.results[text] = (max(curve), max(curve[-5:]))
        return self.results[text]


def proxy_priors(proxy: Lookup, seed: int, evaluations: int, top: int) -> tuple[list[str], float]:
    """A warm start's priors: the ``top`` best networks that a random search of
    ``evaluations`` distinct networks finds on the proxy table (the same space on a cheaper
    dataset), and the trainer-seconds that search cost."""
    import random

    from controller_service.agents.proposals import random_proposal
    from controller_service.spaces import ZophSpace

    # a MetaQNN walk picks its own depth; a Zoph proposal has every layer count up to the most
    layers = proxy.space.max_layers if isinstance(proxy.space, ZophSpace) else 1
    rng = random.Random(1_000_003 + seed)  # not the target run's seed stream
    found: dict[str, float] = {}
    seconds = 0.0
    for _ in range(50 * evaluations):
        if len(found) >= evaluations:
            break
        text = proxy.text(random_proposal(proxy.space, rng, layers).arch)
        if text not in found:
            found[text] = proxy.rows[text][0]
            seconds += proxy.rows[text][3]
    return sorted(found, key=lambda a: -found[a])[:top], seconds


def replay_agent(
    lookup: Lookup,
    agent_name: str,
    seed: int,
    evaluations: int,
    variant: str = "paper",
    stopping: str = "none",
    budget_seconds: float | None = None,
    warm: tuple[str, int, int] | None = None,
    screen: tuple[str, int, str] | None = None,
    extras: dict[str, Any] | None = None,
) -> Run:
    """One search by a nasrl agent against the table, with the controller's dedup. ``warm``
    = (proxy table, proxy evaluations, top): the search starts as the controller's warm
    start does — the agent pre-trains on the priors, which are evaluated first. ``screen`` =
    (score, factor, scores file of bench/screening.py): as the controller's screening, the
    agent proposes ``factor`` networks per child; known ones are learnt again for free, and
    of the new ones only the best-scoring is evaluated, the others are not learnt from.
    ``extras["max_params"]``: proposals with more parameters are rejected before training
    (no evaluation, learnt as a failure), as the controller's constraint does."""
    import torch

    from controller_service.agents import agent_class
    from controller_service.spaces import encode
    from controller_service.spec import WarmStart
    from nasrl.core.arch import parse

    torch.set_num_threads(1)
    cls = agent_class(agent_name)
    agent = cls(lookup.space, _agent_settings(agent_name, variant, evaluations), seed, evaluations)
    zoph_reward = cls.default_reward == "zoph"
    run = Run(agent_name, seed)
    evaluate = Evaluator(lookup, run, evaluations, stopping, budget_seconds)
    if warm is not None:
        priors, run.proxy_seconds = proxy_priors(_lookup(warm[0]), seed, warm[1], warm[2])
        decisions = [{**encode(lookup.space, parse(text)), "prior": True} for text in priors]
        d = WarmStart()
        agent.pretrain(decisions, d.pretrain_steps, d.pretrain_learning_rate)
        for text, prior in zip(priors, decisions):
            if evaluate.done():
                break
            validation, last5 = evaluate(parse(text))
            agent.update(prior, last5**3 if zoph_reward else validation)
    scores = _scores(screen[2])[screen[0]] if screen else {}
    max_params = (extras or {}).get("max_params", 0)
    while not evaluate.done():
        if screen is None:
            proposals = agent.sample(1)
        else:
            fresh: dict[str, Any] = {}
            proposals = []
            for p in agent.sample(screen[1]):
                text = lookup.text(p.arch)
                if text in evaluate.results:
                    proposals.append(p)  # known: answered from the results, learnt again
                elif text not in fresh:
                    fresh[text] = p
            if fresh:
                proposals.append(fresh[max(fresh, key=lambda a: scores[a])])
        for proposal in proposals:
            if max_params and lookup.primary[lookup.text(proposal.arch)].params > max_params:
                run.proposals += 1  # rejected before training: no budget, learnt as a failure
                agent.update(proposal.decisions, None)
                continue
            validation, last5 = evaluate(proposal.arch)
            agent.update(proposal.decisions, last5**3 if zoph_reward else validation)
            if evaluate.done():
                break
    return run


_SCORE_FILES: dict[str, dict[str, dict[str, float]]] = {}


def _scores(path: str) -> dict[str, dict[str, float]]:
    if path not in _SCORE_FILES:
        _SCORE_FILES[path] = json.loads(Path(path).read_text())["values"]
    return _SCORE_FILES[path]


def replay_tpe(
    lookup: Lookup,
    seed: int,
    evaluations: int,
    stopping: str = "none",
    budget_seconds: float | None = None,
) -> Run:
    """Optuna TPE over the Zoph decisions against the table, with the same dedup."""
    import optuna

    from bench.efficiency.tpe import zoph_trial
    from controller_service.spaces import ZophSpace

    space = lookup.space
    assert isinstance(space, ZophSpace), "tpe runs on Zoph tables only"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    run = Run("tpe", seed)
    evaluate = Evaluator(lookup, run, evaluations, stopping, budget_seconds)
    while not evaluate.done():
        trial = study.ask()
        validation, _ = evaluate(zoph_trial(trial, space))
        study.tell(trial, validation)
    return run


# (table, agent, seed, evaluations, variant, stopping rule, trainer-second budget, extras:
# {"warm": (proxy table, proxy evaluations, top), "screen": (score, factor, scores file)})
Job = tuple[str, str, int, int, str, str, "float | None", "dict[str, Any] | None"]


def _one(job: Job) -> dict[str, Any]:
    path, agent, seed, evaluations, variant, stopping, budget, extras = job
    lookup = _lookup(path)
    extras = extras or {}
    if agent == "tpe":
        run = replay_tpe(lookup, seed, evaluations, stopping, budget)
    else:
        settings = variant if variant in ("paper", "budget") else "paper"
        run = replay_agent(
            lookup,
            agent,
            seed,
            evaluations,
            settings,
            stopping,
            budget,
            extras.get("warm"),
            extras.get("screen"),
            extras,
        )
    return run.to_json()


_LOOKUPS: dict[str, Lookup] = {}


def _lookup(path: str) -> Lookup:
    if path not in _LOOKUPS:
        _LOOKUPS[path] = Lookup(Path(path))
    return _LOOKUPS[path]


# ----------------------------------------------------------------------------- reporting


def table_stats(lookup: Lookup, path: Path) -> dict[str, Any]:
    """Size, build time and the seed-to-seed noise of a table: for every network of the noise
    subset, the best validation accuracy of seed 0 and seed 1 give the per-network standard
    deviation |a - b| / sqrt(2) (reported as its root mean square) and the Spearman rank
    correlation between the seeds."""
    import statistics

    from scipy.stats import spearmanr

    table = lookup.table
    pairs = [
        (r.best_validation, table.rows[(a, 1)].best_validation)
        for (a, s), r in table.rows.items()
        if s == 0 and (a, 1) in table.rows
    ]
    vals = sorted(v[0] for v in lookup.rows.values())
    out: dict[str, Any] = {
        "architectures": len(lookup.rows),
        "rows": len(table.rows),
        "epochs": table.header["training"]["epochs"],
        "bytes": path.stat().st_size,
        "build_seconds": round(table.build_seconds(), 1),
        "validation": {"min": vals[0], "median": statistics.median(vals), "max": vals[-1]},
        "best_network": max(lookup.rows, key=lambda a: lookup.rows[a][0]),
        "noise_pairs": len(pairs),
    }
    if len(pairs) >= 3:
        diffs = [(a - b) ** 2 / 2 for a, b in pairs]
        rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        out["seed_std"] = math.sqrt(statistics.fmean(diffs))
        out["mean_abs_seed_difference"] = statistics.fmean(abs(a - b) for a, b in pairs)
        out["spearman"] = float(rho.statistic)
        out["spearman_p"] = float(rho.pvalue)
    return out


def summarize(
    runs: list[dict[str, Any]],
    evaluations: int,
    target: float | None,
    optimum: float,
    seconds_per_evaluation: float = 0.0,
) -> dict[str, Any]:
    checkpoints = sorted({c for c in CHECKPOINTS if c <= evaluations} | {evaluations})
    out: dict[str, Any] = {
        "runs": len(runs),
        "stalled": sum(r["stalled"] for r in runs),
        "cached": mean_std([float(r["cached"]) for r in runs]),
        "at": {},
    }
    for n in checkpoints:
        vals = [_at(r, "best", n) for r in runs]
        tests = [_at(r, "test", n) for r in runs]
        out["at"][str(n)] = {"validation": mean_std(vals), "test": mean_std(tests)}
    finals = [r["best"][-1] for r in runs if r["best"]]
    out["final_regret"] = mean_std([optimum - v for v in finals])
    out["found_optimum"] = sum(v >= optimum for v in finals)
    if target is not None:
        evals = [first_reaching(range(1, len(r["best"]) + 1), r["best"], target) for r in runs]
        secs = [first_reaching(r["seconds"], r["best"], target) for r in runs]
        # a warm start's proxy search is part of what reaching the target cost
        secs = [None if s is None else s + r.get("proxy_seconds", 0.0) for s, r in zip(secs, runs)]
        out["proxy_seconds"] = mean_std([r.get("proxy_seconds", 0.0) for r in runs])
        out["to_random_best"] = {
            "reached": sum(e is not None for e in evals),
            "runs": len(runs),
            # runs that never reach it count as the whole budget of evaluations and its
            # expected trainer-seconds (a lower bound; a stalled run too)
            "evaluations": mean_std(
                [float(e) if e is not None else float(evaluations) for e in evals]
            ),
            "trainer_seconds": mean_std(
                [
                    s
                    if s is not None
                    else max(
                        r["seconds"][-1] if r["seconds"] else 0.0,
                        evaluations * seconds_per_evaluation,
                    )
                    + r.get("proxy_seconds", 0.0)
                    for s, r in zip(secs, runs)
                ]
            ),
        }
    return out


def _at(run: dict[str, Any], key: str, n: int) -> float | None:
    """The run's value after ``n`` evaluations; a stalled run keeps its last value (it found
    nothing new), an unfinished one has none."""
    values = run[key]
    if len(values) >= n:
        return float(values[n - 1])
    return float(values[-1]) if run["stalled"] and values else None


def curves(runs: list[dict[str, Any]], evaluations: int) -> dict[str, list[float | None]]:
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for n in range(1, evaluations + 1):
        s = mean_std([_at(r, "best", n) for r in runs])
        m, ci = s["mean"], s["ci95"]
        if m is None or ci is None:
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(m)
            low.append(m - ci)
            high.append(m + ci)
    return {"mean": mean, "low": low, "high": high}


def seconds_grid(runs: list[dict[str, Any]], budget: float, points: int = 100) -> dict[str, Any]:
    """Mean best-so-far (± 95 % CI) over runs on a grid of trainer-seconds."""
    xs = [budget * (i + 1) / points for i in range(points)]
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for x in xs:
        values = []
        for r in runs:
            k = sum(1 for t in r["seconds"] if t <= x)
            values.append(r["best"][k - 1] if k else None)
        st = mean_std(values)
        m, ci = st["mean"], st["ci95"]
        if m is None or ci is None or st["n"] != len(runs):
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(m)
            low.append(m - ci)
            high.append(m + ci)
    return {"seconds": xs, "mean": mean, "low": low, "high": high}


def stopping_summary(
    runs: list[dict[str, Any]], budget: float, target: float | None
) -> dict[str, Any]:
    def best_at(r: dict[str, Any]) -> float | None:
        k = sum(1 for t in r["seconds"] if t <= budget)
        return r["best"][k - 1] if k else None

    out: dict[str, Any] = {
        "runs": len(runs),
        "best_at_budget": mean_std([best_at(r) for r in runs]),
        "children": mean_std([float(len(r["best"])) for r in runs]),
        "stopped": mean_std([float(r["stopped"]) for r in runs]),
    }
    if target is not None:
        secs = [first_reaching(r["seconds"], r["best"], target) for r in runs]
        out["to_target"] = {
            "reached": sum(x is not None for x in secs),
            "runs": len(runs),
            "trainer_seconds": mean_std([x if x is not None else budget for x in secs]),
        }
    return out


def print_stopping(report: dict[str, Any]) -> None:
    es = report["early_stopping"]
    print(
        f"\nearly stopping at an equal budget of {es['budget_seconds']:.0f} trainer-seconds "
        f"per run (= {report['evaluations']} fully trained children); target: random "
        f"search's mean best without early stopping, {es['target']:.4f}"
    )
    head = (
        f"{'arm':18s} {'best at budget':>17s} {'children':>9s} {'stopped':>8s} "
        f"{'trainer-s to target':>22s} {'reached':>8s} {'vs random':>10s}"
    )
    print(head)
    print("-" * len(head))
    base = es["arms"]["random"]["to_target"]["trainer_seconds"]["mean"]
    for arm, s in es["arms"].items():
        t = s["to_target"]
        ratio = t["trainer_seconds"]["mean"] / base if base else float("nan")
        print(
            f"{arm:18s} {fmt(s['best_at_budget'], 4, 'ci95'):>17s} "
            f"{s['children']['mean']:9.1f} {s['stopped']['mean']:8.1f} "
            f"{fmt(t['trainer_seconds'], 0, 'ci95'):>22s} {t['reached']:>4d}/{t['runs']:<3d} "
            f"{ratio:9.2f}x"
        )


def print_report(report: dict[str, Any]) -> None:
    t = report["table_stats"]
    print(
        f"table {report['table']}: {t['architectures']} networks, {t['rows']} rows, "
        f"{t['epochs']} epochs each, {t['bytes'] / 1e6:.2f} MB, built in "
        f"{t['build_seconds'] / 3600:.2f} h; validation {t['validation']['min']:.3f} .. "
        f"{t['validation']['max']:.3f} (median {t['validation']['median']:.3f})"
    )
    if "seed_std" in t:
        print(
            f"noise over {t['noise_pairs']} networks trained with two seeds: seed-to-seed std "
            f"{t['seed_std']:.4f}, mean |difference| {t['mean_abs_seed_difference']:.4f}, "
            f"Spearman {t['spearman']:.3f}"
        )
    print(
        f"\n{report['table']}: {report['architectures']} networks, optimum "
        f"{report['optimum']:.4f}, {report['seeds']} seeds, {report['evaluations']} "
        f"evaluations per run; random's mean final best {report['random_target']:.4f}"
    )
    for variant, agents in report["variants"].items():
        checkpoints = list(next(iter(agents.values()))["at"])
        head = f"{variant:11s} {'agent':10s} " + " ".join(f"{'val@' + c:>17s}" for c in checkpoints)
        head += f" {'test@' + checkpoints[-1]:>17s} {'evals→random':>16s} {'trainer-s→random':>18s}"
        head += f" {'regret':>17s}"
        print(head)
        print("-" * len(head))
        for agent, s in agents.items():
            cells = " ".join(
                f"{fmt(s['at'][c]['validation'], 4, 'ci95'):>17s}" for c in checkpoints
            )
            reach = s.get("to_random_best")
            ev = (
                f"{fmt(reach['evaluations'], 0, 'ci95')} {reach['reached']}/{reach['runs']}"
                if reach
                else "-"
            )
            ts = fmt(reach["trainer_seconds"], 0, "ci95") if reach else "-"
            print(
                f"{variant:11s} {agent:10s} {cells} "
                f"{fmt(s['at'][checkpoints[-1]]['test'], 4, 'ci95'):>17s} {ev:>16s} "
                f"{ts:>18s} {fmt(s['final_regret'], 4, 'ci95'):>17s}"
            )


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    variants = list(report["curves"])
    fig = Figure(figsize=(6.4 * len(variants), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    for ax, variant in zip(axes, variants):
        lows: list[float] = []
        for agent, c in report["curves"][variant].items():
            xs = list(range(1, len(c["mean"]) + 1))
            draw_band(ax, xs, c["mean"], c["low"], c["high"], agent)
            lows += [v for v in c["mean"][len(xs) // 10 :] if v is not None]
        ax.axhline(
            report["optimum"], color="black", linestyle="--", linewidth=1, label="table optimum"
        )
        ax.axhline(
            report["random_target"],
            color="grey",
            linestyle=":",
            linewidth=1,
            label="random's final best",
        )
        if lows:
            bottom = min(lows)
            ax.set_ylim(bottom - 0.1 * (report["optimum"] - bottom), None)
        ax.set_xscale("log")
        ax.set_title(
            f"{report['table']} ({variant} settings): {report['seeds']} seeds, mean ± 95 % CI"
        )
        ax.set_xlabel("distinct networks evaluated")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import statistics

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--agents", help="comma-separated (default: every agent of the table's space)")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--evaluations", type=int, help="default: a quarter of the table")
    p.add_argument("--variant", choices=("paper", "budget", "both"), default="both")
    p.add_argument(
        "--early-stopping",
        default="",
        help="comma-separated rules (none,median,asha): run every agent under each "
        "rule to the same trainer-second budget instead of the evaluation study",
    )
    p.add_argument(
        "--warm-start",
        metavar="PROXY_TABLE",
        type=Path,
        help="also run every agent warm-started (variant 'warm'): priors are the "
        "best --warm-top networks a random search of --proxy-evaluations finds on "
        "this proxy table (the same space on a cheaper dataset); its trainer-seconds "
        "are added to the warm runs' cost",
    )
    p.add_argument("--proxy-evaluations", type=int, default=100)
    p.add_argument("--warm-top", type=int, default=10)
    p.add_argument(
        "--warm-stopping",
        default="none",
        help="comma-separated early-stopping rules for the warm runs (variant "
        "'warm+RULE' for each rule other than none)",
    )
    p.add_argument(
        "--screen",
        choices=("synflow", "params", "flops", "naswot"),
        help="also run every agent with training-free screening by this score "
        "(variant SCOREx<factor>; scores from bench/screening.py)",
    )
    p.add_argument(
        "--screen-factor",
        default="4",
        help="comma-separated proposals per evaluated child (default 4)",
    )
    p.add_argument(
        "--max-params",
        type=int,
        default=0,
        help="also run every agent with this parameter limit (variant 'max_params "
        "N'): proposals over it are rejected before training and learnt as failures",
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    began = time.perf_counter()
    lookup = _lookup(str(args.table))
    is_zoph = "zoph" in lookup.table.space
    agents = (
        args.agents.split(",") if args.agents else list(ZOPH_AGENTS if is_zoph else METAQNN_AGENTS)
    )
    if "tpe" in agents and not is_zoph:
        raise SystemExit("tpe runs on Zoph tables only")
    evaluations = args.evaluations or len(lookup.rows) // 4
    if not 1 <= evaluations <= len(lookup.rows):
        raise SystemExit(f"--evaluations must be between 1 and {len(lookup.rows)}")
    if args.early_stopping:
        return early_stopping_study(args, lookup, agents, evaluations, began)
    variants = ["paper", "budget"] if args.variant == "both" else [args.variant]
    # random search with the paper's (its only) settings is every variant's reference
    paper = agents if "paper" in variants else ["random"]
    jobs: list[Job] = [
        (str(args.table), a, s, evaluations, "paper", "none", None, None)
        for a in paper
        for s in range(args.seeds)
    ]
    jobs += [
        (str(args.table), a, s, evaluations, "budget", "none", None, None)
        for a in agents
        if "budget" in variants and a in BUDGET_SETTINGS
        for s in range(args.seeds)
    ]
    if args.warm_start:
        warm = {"warm": (str(args.warm_start), args.proxy_evaluations, args.warm_top)}
        for rule in args.warm_stopping.split(","):
            name = "warm" if rule == "none" else f"warm+{rule}"
            jobs += [
                (str(args.table), a, s, evaluations, name, rule, None, warm)
                for a in agents
                if a != "tpe"
                for s in range(args.seeds)
            ]
    if args.max_params:
        limit = {"max_params": args.max_params}
        jobs += [
            (
                str(args.table),
                a,
                s,
                evaluations,
                f"max_params {args.max_params:,}",
                "none",
                None,
                limit,
            )
            for a in agents
            if a != "tpe"
            for s in range(args.seeds)
        ]
    if args.screen:
        from bench.screening import scores_path

        scores = scores_path(args.table, args.out)
        if not scores.exists():
            raise SystemExit(
                f"{scores} is missing: run python bench/screening.py --table {args.table} first"
            )
        for factor in (int(f) for f in args.screen_factor.split(",")):
            screen = {"screen": (args.screen, factor, str(scores))}
            jobs += [
                (
                    str(args.table),
                    a,
                    s,
                    evaluations,
                    f"{args.screen}x{factor}",
                    "none",
                    None,
                    screen,
                )
                for a in agents
                if a != "tpe"
                for s in range(args.seeds)
            ]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        results = list(pool.map(_one, jobs, chunksize=4))
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for job, run in zip(jobs, results):
        by.setdefault(job[4], {}).setdefault(job[1], []).append(run)
    random_runs = by.get("paper", {}).get("random", [])
    target = mean_std([r["best"][-1] for r in random_runs])["mean"] if random_runs else None
    report: dict[str, Any] = {
        "table": lookup.table.name,
        "dataset": lookup.table.dataset,
        "architectures": len(lookup.rows),
        "optimum": lookup.optimum,
        "table_stats": table_stats(lookup, args.table),
        "seeds": args.seeds,
        "evaluations": evaluations,
        "random_target": target,
        "variants": {
            v: {
                a: summarize(
                    runs,
                    evaluations,
                    target,
                    lookup.optimum,
                    statistics.fmean(r[3] for r in lookup.rows.values()),
                )
                for a, runs in agents_runs.items()
            }
            for v, agents_runs in by.items()
        },
        "curves": {
            v: {a: curves(runs, evaluations) for a, runs in agents_runs.items()}
            for v, agents_runs in by.items()
        },
        "settings": {a: _agent_settings(a, "budget", evaluations) for a in BUDGET_SETTINGS},
        "warm_start": None
        if not args.warm_start
        else {
            "proxy_table": str(args.warm_start),
            "proxy_evaluations": args.proxy_evaluations,
            "top": args.warm_top,
            "stopping": args.warm_stopping,
        },
        "wall_seconds": round(time.perf_counter() - began, 1),
        "machine": f"{platform.machine()}, {args.workers} worker process(es)",
        "command": "python bench/tabular.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if target is not None:
        print_report(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = (
        f"tabular_{lookup.table.name}"
        + ("_warm" if args.warm_start else "")
        + (f"_{args.screen}" if args.screen else "")
        + ("_max_params" if args.max_params else "")
    )
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    if target is not None:
        plot(report, args.out / f"{stem}.png")
    print(f"\n{len(jobs)} runs in {report['wall_seconds']:.0f}s; wrote {args.out / stem}.json/.png")
    return report


def early_stopping_study(
    args: argparse.Namespace, lookup: Lookup, agents: list[str], evaluations: int, began: float
) -> dict[str, Any]:
    """Every agent under every rule, each run to the trainer-seconds that ``evaluations``
    fully trained children cost on average in this table."""
    import statistics

    rules = args.early_stopping.split(",")
    if "none" not in rules:
        rules.insert(0, "none")
    budget = evaluations * statistics.fmean(r.seconds for r in lookup.primary.values())
    jobs: list[Job] = [
        (str(args.table), a, s, len(lookup.rows), "paper", rule, budget, None)
        for a in agents
        for rule in rules
        for s in range(args.seeds)
    ]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        results = list(pool.map(_one, jobs, chunksize=4))
    arms: dict[str, list[dict[str, Any]]] = {}
    for job, run in zip(jobs, results):
        arms.setdefault(job[1] if job[5] == "none" else f"{job[1]}+{job[5]}", []).append(run)
    target = None
    if "random" in arms:
        target = stopping_summary(arms["random"], budget, None)["best_at_budget"]["mean"]
    report: dict[str, Any] = {
        "table": lookup.table.name,
        "seeds": args.seeds,
        "evaluations": evaluations,
        "early_stopping": {
            "budget_seconds": budget,
            "target": target,
            "rules": rules,
            "arms": {a: stopping_summary(runs, budget, target) for a, runs in arms.items()},
            "curves": {a: seconds_grid(runs, budget) for a, runs in arms.items()},
        },
        "wall_seconds": round(time.perf_counter() - began, 1),
        "command": "python bench/tabular.py " + " ".join(sys.argv[1:]),
    }
    if target is not None:
        print_stopping(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"tabular_{lookup.table.name}_stopping"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    _plot_stopping(report, args.out / f"{stem}.png")
    print(f"\n{len(jobs)} runs in {report['wall_seconds']:.0f}s; wrote {args.out / stem}.json/.png")
    return report


def _plot_stopping(report: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    es = report["early_stopping"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for arm, c in es["curves"].items():
        draw_band(ax, c["seconds"], c["mean"], c["low"], c["high"], arm)
    if es["target"] is not None:
        ax.axhline(
            es["target"],
            color="grey",
            linestyle=":",
            linewidth=1,
            label="random's best (no early stopping)",
        )
    ax.set_title(f"{report['table']}: early stopping, {report['seeds']} seeds, mean ± 95 % CI")
    ax.set_xlabel("trainer-seconds")
    ax.set_ylabel("best validation accuracy so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
