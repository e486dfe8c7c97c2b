"""Reloading a search from the store never changes what it does next.

Every agent × space × feature (warm start, screening by a training-free score or by the
learned predictor, constraints, early stopping, weight sharing, convergence) runs one
scripted life through the real ``Searches`` on a database file: created, sampled, one result,
half a REINFORCE batch, more rounds. At each stage the script is interrupted once by a restart
(a new ``Searches`` on the same file, as after SIGTERM or kill -9: every call commits before it
answers) and once by a call that fails inside the search's lock (after which the controller
drops the search's memory and reloads it). Every answer after the interruption — the networks
handed out, the acknowledgements, the early-stopping decisions, the search's progress and the
stored agent state — must equal the uninterrupted run's.

A search reloaded before its first result once wedged for ever (Q-learning read a replay
memory the store only wrote once it had entries): these are the tests that would have caught it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from controller_service.evaluation import SearchEvaluation
from controller_service.reports import Screened
from controller_service.searches import BadReport, CandidateNotFound, Handout, Searches
from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from controller_service.spec import Constraints, Convergence, Screening, SearchSpec, WarmStart
from controller_service.stopping import Decision, StoppingSettings
from controller_service.store import CandidateRow, Store
from nasrl.core.arch import parse
from nasrl.core.results import EpochRecord, Evaluation, TrainOutcome, TrainSettings
from nasrl.core.shapes import analyze
from tests.conformance.test_agents import PAIRS
from tests.helpers import FakeClock, same_state

EPOCHS = 3
#: how many results the script has reported at each stage (REINFORCE learns from batches
#: of 8, so 4 is half a batch)
STAGES = {"created": -1, "sampled": 0, "one-result": 1, "half-batch": 4}
#: the stage before every Sample of the convergence feature's tail (where the agent converges)
TAIL = -2
FEATURES = (
    "plain",
    "warm-start",
    "screening",
    "predictor",
    "model",
    "constraints",
    "early-stopping",
    "shared",
    "convergence",
)


def _spec(
    name: str, space: Space, feature: str, priors: tuple[str, ...], source: str
) -> SearchSpec:
    spec = SearchSpec(
        agent=name,
        space=space,
        budget=40,
        seed=5,
        training=TrainSettings(epochs=EPOCHS),
    )
    if feature == "warm-start":
        return replace(spec, warm_start=WarmStart(priors, source, top=3, pretrain_steps=5))
    if feature == "screening":
        return replace(spec, screening=Screening("params", factor=3))
    if feature == "predictor":  # the model of the first 4 results ranks the last two Samples
        learnt = Screening("predictor", factor=3, cold_start_results=2, refit_every=2)
        return replace(spec, screening=learnt)
    if feature == "model":  # reinforce's model-based steps after each refit of the predictor
        learnt = Screening("predictor", factor=2, cold_start_results=2, refit_every=2)
        settings = {"model_steps": 2, "model_batch": 4}
        return replace(spec, screening=learnt, agent_settings=settings)
    if feature == "convergence":  # a small space: the agent soon proposes known networks
        return replace(spec, space=_small(space), convergence=Convergence(patience=2))
    if feature == "constraints":
        limits = Constraints(max_params=12_000, cost_metric="params", cost_target=6_000)
        return replace(spec, constraints=limits)
    if feature == "early-stopping":
        rule = StoppingSettings(rule="median", grace=1, min_children=2)
        return replace(spec, early_stopping=rule)
    if feature == "shared":  # budget 9: the script reaches the top-k stage in its last Sample
        shared = SearchEvaluation("shared", steps=3, warmup_children=2, top_k=2)
        return replace(spec, budget=9, evaluation=shared)
    return spec


def _small(space: Space) -> Space:
    """A dozen or so networks of the same kind as ``space``: in the script the agent soon
    proposes known ones."""
    if isinstance(space, ZophSpace):
        return ZophSpace(filter_sizes=(1, 3), strides=(1, 2), filters=(8,), max_layers=1)
    if isinstance(space, MetaQNNSpace):
        return MetaQNNSpace(
            conv_sizes=(1, 3), conv_filters=(8,), pools=((2, 2),), fc_units=(32,), max_depth=2
        )
    assert isinstance(space, Nb201Space)
    return replace(space, ops=("none", "nor_conv_1x1"))


def _accuracy(text: str, epoch: int) -> float:
    """A made-up but deterministic learning curve of the network ``text``."""
    return round(0.3 + (sum(map(ord, text)) % 50) / 100 + 0.02 * epoch, 4)


@dataclass
class Life:
    """One scripted search: ``searches`` may be replaced (a restart) between steps."""

    path: Path
    spec_of: Callable[[str], SearchSpec]
    clock: FakeClock = field(default_factory=FakeClock)
    searches: Searches = field(init=False)
    sid: str = ""
    log: list[Any] = field(default_factory=list)
    out: list[Handout] = field(default_factory=list)  # handed out, not yet reported
    results: int = 0
    tail: tuple[int, ...] = ()  # the sizes of the script's last Samples, after 6 and 5

    def __post_init__(self) -> None:
        self.searches = self._open()

    def _open(self) -> Searches:
        return Searches(Store(self.path), clock=self.clock, timer=self.clock)

    def restart(self) -> None:
        self.searches.store.close()
        self.searches = self._open()

    def fail_a_call(self) -> None:
        """A call that fails inside the search's lock: an epoch beyond the search's (or, with
        nothing handed out, a candidate that does not exist)."""
        cid = self.out[-1].id if self.out else 10**6
        with pytest.raises((BadReport, CandidateNotFound)):
            self.searches.report(self.sid, cid, 99, 0.5)

    def create(self) -> None:
        source = ""
        if self.spec_of("").warm_start.active:  # an earlier search whose results are reused
            earlier = self.searches.create(replace(self.spec_of(""), warm_start=WarmStart()))
            handouts, _ = self.searches.sample(earlier.id, 6)
            for h in handouts:
                self._report(earlier.id, h)
            source = earlier.id
        self.sid = self.searches.create(self.spec_of(source)).id

    def sample(self, n: int) -> None:
        handouts, done = self.searches.sample(self.sid, n)
        handed = [(h.text, h.cached is not None, h.shared is not None) for h in handouts]
        self.log.append(("sample", handed, done))
        self.out += [h for h in handouts if h.cached is None]

    def report_one(self) -> None:
        self._report(self.sid, self.out.pop(0))
        self.results += 1

    def _report(self, sid: str, h: Handout) -> None:
        spec = self.searches.spec(sid)
        curve = []
        stopped = False
        for epoch in range(1, EPOCHS + 1):
            accuracy = _accuracy(h.text, epoch)
            curve.append(EpochRecord(epoch, EPOCHS, 1.0, 0.5, accuracy, 0.1))
            if spec.early_stopping.rule != "none":
                decision = self.searches.report(sid, h.id, epoch, accuracy)
                self.log.append(("report", h.text, epoch, decision.value))
                if decision is Decision.STOP and epoch < EPOCHS:
                    stopped = True
                    break
        best = max(r.validation_accuracy for r in curve)
        size = analyze(parse(h.text), spec.image())
        outcome = TrainOutcome(
            best,
            best,
            best - 0.01,
            size.params,
            size.flops,
            float(len(curve)),
            "cpu",
            h.text,
            curve=tuple(curve),
            stopped_early=stopped,
            evaluation=Evaluation.SHARED if h.shared else Evaluation.FULL,
        )
        ack = self.searches.update(sid, h.id, outcome, None)
        self.log.append(("update", h.text, ack.accepted, ack.reward, ack.state))

    def final(self) -> tuple[Any, ...]:
        view = self.searches.view(self.sid)
        state = self.searches.store.load_agent(self.sid)
        self.searches.store.close()
        return view.counts, view.progress, state


def _live(life: Life, at: int | None, interrupt: Callable[[Life], None]) -> tuple[Any, ...]:
    """The script; ``interrupt`` runs once where ``at`` results have been reported
    (-1: right after the search was created)."""

    def maybe(stage: int) -> None:
        if stage == at:
            interrupt(life)

    life.create()
    maybe(-1)
    life.sample(4)
    maybe(0)
    while life.out and life.results < 4:
        life.report_one()
        maybe(life.results)
    for n in (6, 5):
        life.sample(n)
        while life.out:
            life.report_one()
    for n in life.tail:
        maybe(TAIL)
        life.sample(n)
        while life.out:
            life.report_one()
    return (life.log, *life.final())


def _priors(space: Space, name: str) -> tuple[str, ...]:
    """Two networks of the space (as another search of this agent would propose them)."""
    from controller_service.agents import AGENTS

    return tuple(str(p.arch) for p in AGENTS[name](space, {}, 99, 100).sample(2))


def _db(root: Path, name: str, space: Space, feature: str) -> Path:
    return root / f"{name}-{space.name}-{feature}.db"


@functools.cache
def _baseline(name: str, space: Space, feature: str, root: Path) -> tuple[Any, ...]:
    return _run(name, space, feature, _db(root, name, space, feature), None, None)


def _candidates(path: Path) -> list[CandidateRow]:
    """Every candidate of the one search stored in ``path`` (a feature without a warm start)."""
    store = Store(path)
    try:
        (sid,) = store.search_ids()
        rows = [store.candidate(sid, c.id) for c in store.candidates_after(sid, 0, 10_000)]
        return [r for r in rows if r is not None]
    finally:
        store.close()


def _run(
    name: str,
    space: Space,
    feature: str,
    path: Path,
    at: int | None,
    interrupt: Callable[[Life], None] | None,
) -> tuple[Any, ...]:
    priors = _priors(space, name)
    # convergence: Samples of one child, each ended by the agent's first known proposal, so
    # that the next starts converged when it was the second in a row
    tail = (1,) * 8 if feature == "convergence" else ()
    life = Life(path, lambda source: _spec(name, space, feature, priors, source), tail=tail)
    return _live(life, at, interrupt or (lambda _: None))


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uninterrupted")


COMBOS = [
    pytest.param(name, space, feature, id=f"{name}-{space.name}-{feature}")
    for name, space in PAIRS
    for feature in FEATURES
    if feature != "shared" or space.name != "metaqnn"  # its FC layers share no weights
    if feature != "model" or name == "reinforce"  # the one agent with model-based steps
]


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.parametrize("interrupt", ["restart", "failed-call"])
@pytest.mark.parametrize(("name", "space", "feature"), COMBOS)
def test_a_reloaded_search_continues_exactly(
    name: str,
    space: Space,
    feature: str,
    interrupt: str,
    stage: str,
    baselines: Path,
    tmp_path: Path,
) -> None:
    expected_log, counts, progress, state = _baseline(name, space, feature, baselines)
    how = Life.restart if interrupt == "restart" else Life.fail_a_call
    log, got_counts, got_progress, got_state = _run(
        name, space, feature, tmp_path / "c.db", STAGES[stage], how
    )
    assert log == expected_log
    assert (got_counts, got_progress) == (counts, progress)
    assert same_state(got_state, state), "the stored agent state differs"


@pytest.mark.parametrize("interrupt", ["restart", "failed-call"])
@pytest.mark.parametrize(
    ("name", "space"), [pytest.param(n, s, id=f"{n}-{s.name}") for n, s in PAIRS]
)
def test_a_converged_search_continues_exactly(
    name: str, space: Space, interrupt: str, baselines: Path, tmp_path: Path
) -> None:
    """The agent's streak of known proposals lives in memory and is rebuilt from the store
    (``Store.known_streak``): interrupted before every Sample of the convergence script's
    tail, where the agent converges and the controller explores, the search goes on exactly."""
    expected_log, counts, progress, state = _baseline(name, space, "convergence", baselines)
    how = Life.restart if interrupt == "restart" else Life.fail_a_call
    log, got_counts, got_progress, got_state = _run(
        name, space, "convergence", tmp_path / "c.db", TAIL, how
    )
    assert log == expected_log
    assert (got_counts, got_progress) == (counts, progress)
    assert same_state(got_state, state), "the stored agent state differs"


@pytest.mark.parametrize(("name", "space", "feature"), COMBOS)
def test_the_script_exercises_its_feature(
    name: str, space: Space, feature: str, baselines: Path
) -> None:
    """The script above is only worth its interruptions if each feature acts in it."""
    log, counts, progress, _ = _baseline(name, space, feature, baselines)
    if feature == "shared":  # 9 shared children (2 warm-up), then the top 2 trained fully
        handed = [h for e in log if e[0] == "sample" for h in e[1] if not h[1]]
        assert [h[2] for h in handed[-2:]] == [False, False] and counts["done"] == 11
        assert sum(h[2] for h in handed) == 9 and log[-1][-1] == "done"
        return
    assert counts["done"] + counts.get("cached", 0) >= 15 and progress["updates"] >= 9
    if feature == "early-stopping":
        assert any(e[0] == "report" and e[3] == Decision.STOP.value for e in log)
    elif feature == "warm-start":
        assert counts["cached"] >= 3  # the earlier search's results, reused
    elif feature in ("screening", "constraints"):
        assert counts["invalid"] >= 3  # screened out, or over max_params
    elif feature == "predictor":  # screened out by the model once it had 2 results
        children = _candidates(_db(baselines, name, space, feature))
        screened = [c.report for c in children if isinstance(c.report, Screened)]
        assert len(screened) >= 3 and all(r.score == "predictor" for r in screened)
    elif feature == "model":  # steps on the predictor's rewards after each refit
        assert progress["model_steps"] >= 2 * 2 and progress["steps"] > progress["model_steps"]
    elif feature == "convergence":  # two known proposals in a row: the controller explores
        children = _candidates(_db(baselines, name, space, feature))
        assert any(c.decisions.get("explore") is True for c in children)
