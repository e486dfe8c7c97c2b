"""Search efficiency of the agents with real training, at the same budget in trainer-seconds.

    .venv/bin/python bench/search_efficiency.py --quick      # what `make bench` runs
    .venv/bin/python bench/search_efficiency.py [--datasets digits,mnist5k]
        [--agents reinforce,qlearning,random,evolution,tpe] [--seeds 3]
        [--trainer-seconds 60 | --trainer-seconds digits=40,mnist5k=60] [--epochs 1] [--out DIR]

Starts one controller and two trainers (one CPU thread each) on loopback. For every dataset,
agent and seed it runs a search with two workers (one per trainer) until the trained children's
summed ``TrainOutcome.seconds`` (trainer-seconds) reaches the budget; then stops the search.

* reinforce, random and evolution search the same small Zoph space (4 layers: filter sizes
  1/3/5, strides 1/2, 8/16/24 filters, skip connections). qlearning cannot search a Zoph space:
  it searches a small MetaQNN space (conv filters 8/16/24, FC 64/32, depth <= 5), so its
  numbers compare budgets, not spaces. Its epsilon schedule is fitted to the number of children
  the budget is expected to buy (from a few warm-up trainings), as its default fits it to a
  child budget.
* tpe is Optuna's TPESampler (benchmark-only dependency, ``pip install -e '.[bench]'``) over
  the same Zoph decisions (five categorical indices per layer and the skip bits), decoded with
  ``ZophSpace.decode`` and trained by the same trainers. Like the controller, it never trains a
  network twice (it tells the stored value) and waits for a twin that is in flight.
* dedup savings: a candidate answered from the search's results costs no training; the saved
  trainer-seconds are the stored result's ``seconds``.

Metrics per run are taken at exactly the budget B: the best validation accuracy among the
children whose completion kept the cumulative trainer-seconds <= B (the child that crosses B
still trains and is recorded, but counts only in the trajectory), and the test accuracy of that
child. "Seconds to random's best": the target is the mean over seeds of random search's final
best validation accuracy on that dataset; a run reaches it at the cumulative trainer-seconds
where its best-so-far first is >= the target (within B), else "not reached".

Writes OUT/search_efficiency.json and OUT/search_efficiency.png (OUT: bench/results).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from controller_service.spaces import ZOPH_DECISIONS, MetaQNNSpace, ZophSpace
from nasrl.cli.local import LocalService
from nasrl.core import codec
from nasrl.core.arch import Architecture, arch_hash
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import ControllerClient, NasrlError, TrainerClient, wait_until_serving
from protos import controller_pb2 as cpb

if TYPE_CHECKING:
    import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import draw_band, fmt, mean_std  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
AGENTS = ("reinforce", "qlearning", "random", "evolution", "tpe")
DATASETS = ("digits", "mnist5k")
#: trainer-seconds per run of --quick (what `make bench` runs)
QUICK_SECONDS = {"digits": 20.0, "mnist5k": 30.0}
#: trainer-seconds per run without --quick or --trainer-seconds
FULL_SECONDS = {"digits": 60.0, "mnist5k": 120.0}
CHILD_BUDGET = 1000  # the searches' child budget: never the limit, StopSearch is
STALL = 500  # consecutive duplicates (no training) after which a run gives up
GRID = 80  # points of the aggregated curves

#: the Zoph space shared by reinforce, random, evolution and tpe (all children have 4 layers)
ZOPH = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16, 24), max_layers=4)
#: the MetaQNN space of qlearning
METAQNN = MetaQNNSpace(conv_filters=(8, 16, 24), fc_units=(64, 32), max_depth=5)


def zoph_proto() -> cpb.SearchSpace:
    return cpb.SearchSpace(
        zoph=cpb.ZophSpace(
            filter_sizes=list(ZOPH.filter_sizes),
            strides=list(ZOPH.strides),
            filters=list(ZOPH.filters),
            max_layers=ZOPH.max_layers,
        )
    )


def metaqnn_proto() -> cpb.SearchSpace:
    return cpb.SearchSpace(
        metaqnn=cpb.MetaQNNSpace(
            conv_filters=list(METAQNN.conv_filters),
            fc_units=list(METAQNN.fc_units),
            max_depth=METAQNN.max_depth,
        )
    )


def space_of(agent: str) -> str:
    return "metaqnn" if agent == "qlearning" else "zoph"


# ---------------------------------------------------------------------------------- one run


@dataclass
class RunLog:
    """What one (dataset, agent, seed) run spent and found; thread-safe."""

    agent: str
    dataset: str
    seed: int
    budget: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    spent: float = 0.0
    trained: int = 0
    cached: int = 0
    saved_seconds: float = 0.0
    failed: int = 0
    abandoned: int = 0  # in flight when the budget ran out: cancelled, never counted
    streak: int = 0  # consecutive duplicates
    stalled: bool = False
    best_val: float = -1.0
    best_test: float = float("nan")
    # (cumulative trainer-seconds, best validation accuracy so far, test accuracy of that best)
    trajectory: list[tuple[float, float, float]] = field(default_factory=list)
    # (cumulative trainer-seconds, architecture) of every new best
    improvements: list[tuple[float, str]] = field(default_factory=list)
    calls: set[Any] = field(default_factory=set, repr=False)  # Train calls in flight

    def exhausted(self) -> bool:
        with self.lock:
            return self._exhausted()

    def _exhausted(self) -> bool:
        return self.spent >= self.budget or self.stalled

    def register(self, call: Any) -> None:
        """Track a Train call; cancel it at once if the budget is already spent."""
        with self.lock:
            self.calls.add(call)
            if self._exhausted():
                call.cancel()

    def unregister(self, call: Any) -> None:
        with self.lock:
            self.calls.discard(call)

    def _cancel_if_spent(self) -> None:
        """A child that completes after the budget is spent cannot count: stop the others."""
        if self._exhausted():
            for call in self.calls:
                call.cancel()

    def add_trained(self, outcome: TrainOutcome) -> None:
        with self.lock:
            self.spent += outcome.seconds
            self.trained += 1
            self.streak = 0
            if outcome.validation_accuracy > self.best_val:
                self.best_val = outcome.validation_accuracy
                self.best_test = outcome.test_accuracy
                self.improvements.append((self.spent, outcome.architecture))
            self.trajectory.append((self.spent, self.best_val, self.best_test))
            self._cancel_if_spent()

    def add_cached(self, outcome: TrainOutcome) -> None:
        with self.lock:
            self.cached += 1
            self.saved_seconds += outcome.seconds
            self.streak += 1
            self.stalled = self.stalled or self.streak >= STALL
            self._cancel_if_spent()

    def add_failed(self, seconds: float) -> None:
        with self.lock:
            self.spent += seconds
            self.failed += 1
            self.streak = 0
            self._cancel_if_spent()

    def add_abandoned(self) -> None:
        with self.lock:
            self.abandoned += 1

    def trained_within(self) -> int:
        return sum(1 for p in self.trajectory if p[0] <= self.budget)

    def at_budget(self) -> tuple[float, float, float | None]:
        """(best validation accuracy, its test accuracy, trainer-seconds when found) among the
        children completed within the budget; NaNs when none was."""
        within = [p for p in self.trajectory if p[0] <= self.budget]
        if not within:
            return float("nan"), float("nan"), None
        best = within[-1]
        found = next(p[0] for p in within if p[1] == best[1])
        return best[1], best[2], found

    def best_arch(self) -> str:
        """The architecture of the best child within the budget."""
        within = [a for s, a in self.improvements if s <= self.budget]
        return within[-1] if within else ""

    def seconds_to(self, target: float) -> float | None:
        """Trainer-seconds at which the best-so-far first reached ``target`` (within B)."""
        return next((s for s, v, _ in self.trajectory if v >= target and s <= self.budget), None)


def _train(
    trainer: TrainerClient, arch: Architecture, dataset: str, settings: TrainSettings, log: RunLog
) -> TrainOutcome | str | None:
    """Train and record; a failure is recorded with its wall time and returned as a reason;
    None: cancelled because the budget ran out meanwhile (not recorded, not to be reported)."""
    began = time.perf_counter()
    calls: list[Any] = []

    def register(call: Any) -> None:
        calls.append(call)
        log.register(call)

    try:
        outcome = trainer.train(arch, dataset, settings, on_call=register)
    except NasrlError as exc:
        if exc.code == grpc.StatusCode.CANCELLED and log.exhausted():
            log.add_abandoned()
            return None
        log.add_failed(time.perf_counter() - began)
        return str(exc)
    finally:
        for call in calls:
            log.unregister(call)
    log.add_trained(outcome)
    return outcome


def _in_threads(workers: Sequence[Callable[[], None]]) -> None:
    """Run the workers in parallel; re-raise the first error after all have stopped."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def agent_spec(agent: str, qlearning_scale: float) -> cpb.AgentSpec:
    if agent == "random":
        return cpb.AgentSpec(name=agent, random=cpb.RandomSettings(layers=ZOPH.max_layers))
    if agent == "evolution":
        return cpb.AgentSpec(
            name=agent,
            evolution=cpb.EvolutionSettings(population=8, sample_size=3, layers=ZOPH.max_layers),
        )
    if agent == "qlearning":
        return cpb.AgentSpec(
            name=agent, qlearning=cpb.QLearningSettings(schedule_scale=qlearning_scale)
        )
    return cpb.AgentSpec(name=agent)


def run_nasrl(
    controller: str,
    trainers: list[TrainerClient],
    log: RunLog,
    settings: TrainSettings,
    qlearning_scale: float,
) -> dict[str, Any]:
    """One search of a nasrl agent, two workers, until the trainer-second budget is spent."""
    with ControllerClient(controller) as ctl:
        sid = ctl.create_search(
            agent=agent_spec(log.agent, qlearning_scale),
            space=metaqnn_proto() if log.agent == "qlearning" else zoph_proto(),
            dataset=log.dataset,
            training=codec.settings_to_proto(settings),
            budget=CHILD_BUDGET,
            seed=log.seed,
            name=f"bench {log.agent} {log.dataset} seed {log.seed}",
        ).search_id

        def work(trainer: TrainerClient) -> None:
            while not log.exhausted():
                batch = ctl.sample(sid, 1)
                if not batch.candidates:
                    if batch.done:
                        return
                    time.sleep(0.02)  # its twin is in flight on the other worker
                    continue
                cand = batch.candidates[0]
                if cand.cached is not None:
                    log.add_cached(cand.cached)
                    continue
                result = _train(trainer, cand.arch, batch.dataset, batch.training, log)
                if result is None:
                    return  # the budget ran out while it trained; StopSearch follows
                if isinstance(result, str):
                    ctl.update(sid, cand.id, failure=result)
                else:
                    ctl.update(sid, cand.id, result=result)

        _in_threads([functools.partial(work, t) for t in trainers])
        search = ctl.stop_search(sid)
        return {
            "search_id": sid,
            "counts": {
                k: int(getattr(search.counts, k))
                for k in ("sampled", "evaluated", "cached", "failed", "reissued")
            },
            "progress": dict(search.progress),
        }


def zoph_trial(trial: optuna.trial.Trial, space: ZophSpace) -> Architecture:
    """The same decisions the controller's agents make, as Optuna categorical parameters."""
    tokens: list[list[int]] = []
    skips: list[list[int]] = []
    for i in range(space.max_layers):
        tokens.append(
            [
                int(trial.suggest_categorical(f"l{i + 1}_{d}", list(range(len(space.choices(d))))))
                for d in ZOPH_DECISIONS
            ]
        )
        skips.append(
            [int(trial.suggest_categorical(f"l{i + 1}_skip{j + 1}", [0, 1])) for j in range(i)]
            if space.skip_connections
            else []
        )
    return space.decode(tokens, skips if space.skip_connections else None)


def run_tpe(trainers: list[TrainerClient], log: RunLog, settings: TrainSettings) -> dict[str, Any]:
    """Optuna's TPE over the Zoph space, two trials at a time, with the controller's dedup."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=log.seed)
    )
    lock = threading.Lock()
    known: dict[str, TrainOutcome] = {}
    in_flight: dict[str, threading.Event] = {}

    def work(trainer: TrainerClient) -> None:
        while not log.exhausted():
            with lock:
                trial = study.ask()
                arch = zoph_trial(trial, ZOPH)
                digest = arch_hash(arch)
                outcome = known.get(digest)
                twin = in_flight.get(digest)
                if outcome is None and twin is None:
                    in_flight[digest] = threading.Event()
            if outcome is None and twin is not None:
                twin.wait()
                with lock:
                    outcome = known.get(digest)
                if outcome is None:  # the twin failed
                    with lock:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
            if outcome is not None:
                log.add_cached(outcome)
            else:
                result = _train(trainer, arch, log.dataset, settings, log)
                with lock:
                    if isinstance(result, TrainOutcome):
                        known[digest] = result
                    in_flight.pop(digest).set()
                if not isinstance(result, TrainOutcome):
                    with lock:
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                outcome = result
            with lock:
                study.tell(trial, outcome.validation_accuracy)

    _in_threads([functools.partial(work, t) for t in trainers])
    return {"trials": len(study.trials), "optuna": optuna.__version__}


# ---------------------------------------------------------------------------------- warm-up


def warm_up(
    trainers: list[TrainerClient], dataset: str, settings: TrainSettings, metaqnn_samples: int
) -> float | None:
    """Train once on every trainer (the first child of a dataset pays one-off costs that no
    agent should be charged for); with ``metaqnn_samples``, also train that many random MetaQNN
    networks per trainer and return their mean seconds (for qlearning's epsilon schedule)."""
    rng = random.Random(12345)
    space = METAQNN.bind(input_shape(dataset))
    paths = [space.decode(space.random_path(rng)) for _ in range(metaqnn_samples * len(trainers))]
    decisions = ZOPH.random_decisions(rng, ZOPH.max_layers)
    first = ZOPH.decode(decisions["tokens"], decisions["skips"])
    seconds: list[float] = []

    def work(index: int) -> None:
        trainers[index].train(first, dataset, settings)
        for arch in paths[index :: len(trainers)]:
            try:
                seconds.append(trainers[index].train(arch, dataset, settings).seconds)
            except NasrlError:
                pass

    _in_threads([functools.partial(work, i) for i in range(len(trainers))])
    return statistics.fmean(seconds) if seconds else None


# ---------------------------------------------------------------------------------- report


def best_at(trajectory: Sequence[tuple[float, float, float]], t: float) -> float:
    """Best validation accuracy among children completed by ``t`` trainer-seconds (NaN: none)."""
    value = float("nan")
    for s, v, _ in trajectory:
        if s > t:
            break
        value = v
    return value


def curves(runs: Sequence[RunLog], budget: float) -> dict[str, list[float | None]]:
    """Mean, min and max over seeds of the best-so-far on a grid over [0, budget]; None until
    every seed has a result."""
    grid = [budget * i / (GRID - 1) for i in range(GRID)]
    mean: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    for t in grid:
        values = [best_at(r.trajectory, t) for r in runs]
        if any(math.isnan(v) for v in values):
            mean.append(None)
            low.append(None)
            high.append(None)
        else:
            mean.append(statistics.fmean(values))
            low.append(min(values))
            high.append(max(values))
    return {"seconds": list(grid), "mean": mean, "min": low, "max": high}


def summarize(runs: Sequence[RunLog], target: float | None) -> dict[str, Any]:
    finals = [r.at_budget() for r in runs]
    reach = [r.seconds_to(target) if target is not None else None for r in runs]
    return {
        "best_validation_accuracy": mean_std([f[0] for f in finals]),
        "test_accuracy_of_best": mean_std([f[1] for f in finals]),
        "seconds_to_find_best": mean_std([f[2] for f in finals if f[2] is not None]),
        "seconds_to_random_best": {
            **mean_std([s for s in reach if s is not None]),
            "reached": sum(s is not None for s in reach),
            "runs": len(runs),
            "per_seed": reach,
        },
        "dedup_saved_seconds": mean_std([r.saved_seconds for r in runs]),
        "cached_hits": mean_std([float(r.cached) for r in runs]),
        "children_trained": mean_std([float(r.trained_within()) for r in runs]),
        "trainer_seconds_spent": mean_std([r.spent for r in runs]),
        "failed": sum(r.failed for r in runs),
        "stalled_runs": sum(r.stalled for r in runs),
    }


def print_table(
    dataset: str, budget: float, target: float | None, summary: dict[str, dict[str, Any]]
) -> None:
    head = (
        f"{'agent':10s} {'space':8s} {'best val acc':>17s} {'its test acc':>17s} "
        f"{'t→random best (s)':>22s} {'dedup saved (s)':>15s} {'cached':>7s} "
        f"{'trained':>8s}"
    )
    print(
        f"\n{dataset}: budget {budget:g} trainer-seconds per run; random's final best "
        f"(mean over seeds) = {f'{target:.4f}' if target is not None else 'n/a'}"
    )
    print(head)
    print("-" * len(head))
    for agent, s in summary.items():
        reach = s["seconds_to_random_best"]
        if target is None:
            reached = "n/a"
        elif reach["reached"] == 0:
            reached = f"not reached 0/{reach['runs']}"
        else:
            reached = f"{fmt(reach, 1)} {reach['reached']}/{reach['runs']}"
        print(
            f"{agent:10s} {space_of(agent):8s} {fmt(s['best_validation_accuracy']):>17s} "
            f"{fmt(s['test_accuracy_of_best']):>17s} {reached:>22s} "
            f"{fmt(s['dedup_saved_seconds'], 1):>15s} {s['cached_hits']['mean']:7.1f} "
            f"{s['children_trained']['mean']:8.1f}"
        )


def plot(report: dict[str, Any], path: Path) -> None:
    """One panel per dataset, one curve per agent: the mean best-so-far validation accuracy
    over seeds against trainer-seconds, shaded between the seeds' min and max."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = list(report["datasets"])
    fig = Figure(figsize=(6.2 * max(1, len(datasets)), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(1, len(datasets)), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets):
        d = report["datasets"][dataset]
        lows: list[float] = []
        for agent, c in d["curves"].items():
            xs = c["seconds"]
            label = f"{agent} ({space_of(agent)})" if agent == "qlearning" else agent
            draw_band(ax, xs, c["mean"], c["min"], c["max"], label)
            lows += [v for v in c["mean"][len(xs) // 4 :] if v is not None]
        if d["random_target"] is not None:
            ax.axhline(
                d["random_target"],
                color="grey",
                linestyle=":",
                linewidth=1,
                label="random's final best",
            )
        if lows:
            bottom = min(lows)
            ax.set_ylim(max(0.0, bottom - 0.15 * (1.0 - bottom)), None)
        ax.set_title(f"{dataset}: {d['seeds']} seeds, {d['epochs']} epoch(s) per child")
        ax.set_xlabel("trainer-seconds")
        ax.set_ylabel("best validation accuracy so far")
        ax.set_xlim(0, d["budget_trainer_seconds"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------------- main


def parse_budgets(text: str | None, datasets: Sequence[str], quick: bool) -> dict[str, float]:
    base = QUICK_SECONDS if quick else FULL_SECONDS
    budgets = {d: base.get(d, 60.0) for d in datasets}
    if text:
        for part in text.split(","):
            name, sep, value = part.rpartition("=")
            if sep:
                budgets[name.strip()] = float(value)
            else:
                budgets = {d: float(value) for d in datasets}
    for d, b in budgets.items():
        if not b > 0:
            raise SystemExit(f"--trainer-seconds for {d} must be positive, got {b}")
    return {d: budgets[d] for d in datasets}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Search efficiency of nasrl's agents and Optuna's TPE at equal "
        "trainer-seconds, with real training."
    )
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per agent (default 3)")
    p.add_argument(
        "--trainer-seconds",
        default=None,
        help="budget per run: one number, or DATASET=S,...; default "
        f"{FULL_SECONDS} ({QUICK_SECONDS} with --quick)",
    )
    p.add_argument("--epochs", type=int, default=1, help="epochs per child (default 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the settings `make bench` uses: a few minutes on 2 cores",
    )
    p.add_argument("--out", type=Path, default=RESULTS, help=f"output folder (default {RESULTS})")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    for a in agents:
        if a not in AGENTS:
            raise SystemExit(f"unknown agent {a!r}; choose from {', '.join(AGENTS)}")
    for d in datasets:
        input_shape(d)
    if args.seeds < 1 or args.epochs < 1:
        raise SystemExit("--seeds and --epochs must be at least 1")
    skipped: dict[str, str] = {}
    if "tpe" in agents:
        try:
            import optuna  # noqa: F401
        except ImportError:
            skipped["tpe"] = (
                "optuna is not installed (pip install -e '.[bench]'); the tpe agent is skipped"
            )
            print(f"note: {skipped['tpe']}", file=sys.stderr)
            agents.remove("tpe")
    budgets = parse_budgets(args.trainer_seconds, datasets, args.quick)
    seeds = list(range(args.seeds))
    settings = TrainSettings(epochs=args.epochs)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "settings": {
            "datasets": datasets,
            "agents": agents,
            "skipped": skipped,
            "seeds": seeds,
            "epochs": args.epochs,
            "budgets_trainer_seconds": budgets,
            "quick": args.quick,
            "workers": 2,
            "trainer_threads": 1,
            "training": dataclasses.asdict(settings),
            "zoph_space": {
                "filter_sizes": ZOPH.filter_sizes,
                "strides": ZOPH.strides,
                "filters": ZOPH.filters,
                "layers": ZOPH.max_layers,
                "skip_connections": ZOPH.skip_connections,
            },
            "metaqnn_space": {
                "conv_sizes": METAQNN.conv_sizes,
                "conv_filters": METAQNN.conv_filters,
                "pools": METAQNN.pools,
                "fc_units": METAQNN.fc_units,
                "max_depth": METAQNN.max_depth,
            },
            "agent_settings": {
                "reinforce": "defaults (depth curriculum capped at 4 layers)",
                "random": {"layers": 4},
                "evolution": {"population": 8, "sample_size": 3, "layers": 4},
                "qlearning": "defaults, schedule_scale fitted to the expected children",
                "tpe": "optuna.samplers.TPESampler(seed=seed), library defaults",
            },
            "definitions": {
                "best_validation_accuracy": "best among children completed within the budget",
                "seconds_to_random_best": "cumulative trainer-seconds at which the run's "
                "best-so-far first reaches the mean over seeds of random's final best",
                "children_trained": "children completed within the budget (the one that "
                "crosses it is trained and kept in the trajectory; others then in flight are "
                "cancelled)",
                "dedup_saved_seconds": "sum of the stored seconds of duplicates answered "
                "without training (nasrl: Sample's cached candidates; tpe: own cache)",
            },
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        },
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="nasrl-bench-") as tmp:
        folder = Path(tmp)
        quiet = {"NASRL_LOG_LEVEL": "WARNING"}
        controller = LocalService(
            "controller_service", ["--db", str(folder / "bench.db")], log_dir=folder, env=quiet
        )
        services = [
            LocalService(
                "trainer_service", ["--device", "cpu", "--threads", "1"], log_dir=folder, env=quiet
            )
            for _ in range(2)
        ]
        with controller:
            try:
                for s in services:
                    s.start()
                for s in (controller, *services):
                    wait_until_serving(s.target, timeout=60)
                trainers = [TrainerClient(s.target) for s in services]
                for dataset in datasets:
                    report["datasets"][dataset] = bench_dataset(
                        controller.target,
                        trainers,
                        dataset,
                        agents,
                        seeds,
                        budgets[dataset],
                        settings,
                    )
                for t in trainers:
                    t.close()
            finally:
                for s in services:
                    s.stop()
    report["wall_seconds"] = time.perf_counter() - began
    json_path, png_path = out / "search_efficiency.json", out / "search_efficiency.png"
    json_path.write_text(json.dumps(report, indent=1))
    plot(report, png_path)
    for name in skipped.values():
        print(f"note: {name}")
    if "qlearning" in agents:
        print(
            "note: qlearning searches the MetaQNN space (it cannot search the Zoph space); "
            "the others search the same Zoph space."
        )
    print(f"\nwrote {json_path} and {png_path} in {report['wall_seconds']:.0f}s wall")
    return report


def bench_dataset(
    controller: str,
    trainers: list[TrainerClient],
    dataset: str,
    agents: list[str],
    seeds: list[int],
    budget: float,
    settings: TrainSettings,
) -> dict[str, Any]:
    began = time.perf_counter()
    q_seconds = warm_up(trainers, dataset, settings, 2 if "qlearning" in agents else 0)
    expected = budget / q_seconds if q_seconds else None
    q_scale = max(1e-4, min(1.0, expected / 2700)) if expected else 0.0
    if q_seconds:
        print(
            f"{dataset}: warm-up done; random MetaQNN children take {q_seconds:.2f}s → "
            f"qlearning's schedule fitted to ~{expected:.0f} children (scale {q_scale:.4f})"
        )
    runs: dict[str, list[RunLog]] = {a: [] for a in agents}
    extra: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    for seed in seeds:  # seed-major: load drift on a shared machine hits every agent alike
        for agent in agents:
            log = RunLog(agent, dataset, seed, budget)
            t0 = time.perf_counter()
            if agent == "tpe":
                info = run_tpe(trainers, log, settings)
            else:
                info = run_nasrl(controller, trainers, log, settings, q_scale)
            val, test, _ = log.at_budget()
            print(
                f"{dataset} {agent:9s} seed {seed}: best val {val:.4f} (test {test:.4f}), "
                f"{log.trained} trained, {log.cached} cached ({log.saved_seconds:.1f}s saved)"
                f", {log.spent:.1f} trainer-s in {time.perf_counter() - t0:.0f}s wall"
                + (" [stalled]" if log.stalled else ""),
                flush=True,
            )
            runs[agent].append(log)
            extra[agent].append(info)
    target = None
    if "random" in runs:
        finals = [r.at_budget()[0] for r in runs["random"]]
        finite = [v for v in finals if math.isfinite(v)]
        target = statistics.fmean(finite) if finite else None
    summary = {a: summarize(rs, target) for a, rs in runs.items()}
    print_table(dataset, budget, target, summary)
    return {
        "budget_trainer_seconds": budget,
        "epochs": settings.epochs,
        "seeds": len(seeds),
        "random_target": target,
        "qlearning_schedule": {
            "metaqnn_child_seconds": q_seconds,
            "expected_children": expected,
            "schedule_scale": q_scale,
        },
        "summary": summary,
        "curves": {a: curves(rs, budget) for a, rs in runs.items()},
        "runs": {
            a: [
                {
                    "seed": r.seed,
                    "space": space_of(a),
                    "trained": r.trained,
                    "trained_within_budget": r.trained_within(),
                    "abandoned": r.abandoned,
                    "cached": r.cached,
                    "dedup_saved_seconds": r.saved_seconds,
                    "failed": r.failed,
                    "stalled": r.stalled,
                    "trainer_seconds": r.spent,
                    "best_at_budget": list(r.at_budget()),
                    "best_architecture": r.best_arch(),
                    "trajectory": r.trajectory,
                    **info,
                }
                for r, info in zip(rs, extra[a])
            ]
            for a, rs in runs.items()
        },
        "wall_seconds": time.perf_counter() - began,
    }


if __name__ == "__main__":
    main()
