"""Reloading a search from the store never changes what it does next.

Every agent × space × feature (warm start, screening, constraints, early stopping) runs one
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
from controller_service.searches import BadReport, CandidateNotFound, Handout, Searches
from controller_service.spaces import Space
from controller_service.spec import Constraints, Screening, SearchSpec, WarmStart
from controller_service.stopping import Decision, StoppingSettings
from controller_service.store import Store
from nasrl.core.arch import parse
from nasrl.core.results import EpochRecord, Evaluation, TrainOutcome, TrainSettings
from nasrl.core.shapes import analyze
from tests.conformance.test_agents import PAIRS
from tests.helpers import FakeClock, same_state

EPOCHS = 3
#: how many results the script has reported at each stage (REINFORCE learns from batches
#: of 8, so 4 is half a batch)
STAGES = {"created": -1, "sampled": 0, "one-result": 1, "half-batch": 4}
FEATURES = ("plain", "warm-start", "screening", "constraints", "early-stopping", "shared")


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
    return (life.log, *life.final())


def _priors(space: Space, name: str) -> tuple[str, ...]:
    """Two networks of the space (as another search of this agent would propose them)."""
    from controller_service.agents import AGENTS

    return tuple(str(p.arch) for p in AGENTS[name](space, {}, 99, 100).sample(2))


@functools.cache
def _baseline(name: str, space: Space, feature: str, root: Path) -> tuple[Any, ...]:
    return _run(name, space, feature, root / f"{name}-{space.name}-{feature}.db", None, None)


def _run(
    name: str,
    space: Space,
    feature: str,
    path: Path,
    at: int | None,
    interrupt: Callable[[Life], None] | None,
) -> tuple[Any, ...]:
    priors = _priors(space, name)
    life = Life(path, lambda source: _spec(name, space, feature, priors, source))
    return _live(life, at, interrupt or (lambda _: None))


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uninterrupted")


COMBOS = [
    pytest.param(name, space, feature, id=f"{name}-{space.name}-{feature}")
    for name, space in PAIRS
    for feature in FEATURES
    if feature != "shared" or space.name != "metaqnn"  # its FC layers share no weights
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
