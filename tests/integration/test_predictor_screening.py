"""Screening by a learned predictor and the convergence rule, through the real
``controller_service.searches.Searches`` on a database file (results scripted: a made-up but
deterministic accuracy per network) and, for the settings and ``Search.ended_because``, over
real gRPC.

What each Sample hands out is recomputed here independently: the agent's proposals from its
stored state, the model with ``screen_model.fit`` on the first results in the order the test
reported them, the ranking from the model's values. A restart is a new ``Searches`` on the same file with the old one
abandoned, not closed (as after kill -9: every call commits before it answers)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from controller_service import live as live_module
from controller_service.agents.proposals import mutation_draws, random_proposal
from controller_service.reports import Screened
from controller_service.screen_model import Fitted, fit, fit_size
from controller_service.searches import Handout, Searches
from controller_service.spaces import ZophSpace
from controller_service.spec import Convergence, Screening, SearchSpec
from controller_service.states import SearchState, Status
from controller_service.store import CandidateRow, ChildRow, Store, Trained
from nasrl.core.arch import ArchError, Architecture, arch_hash, canonical, format_arch, parse
from nasrl.core.scoring import score as screen_score
from nasrl.core.shapes import analyze
from nasrl.rpc.client import ControllerClient, NasrlError
from protos import controller_pb2 as cpb
from tests.helpers import FakeClock, outcome, same_state

from .conftest import start_controller

#: thousands of networks: a Sample of 4 proposals almost never repeats one
SPACE = ZophSpace(filter_sizes=(1, 3, 5), strides=(1, 2), filters=(8, 16), max_layers=3)
#: the random agent with ``layers=1`` proposes only its 4 one-layer networks; the
#: controller's exploration draws from the whole space (two layers)
SMALL = ZophSpace(filter_sizes=(1, 3), strides=(1,), filters=(8,), max_layers=2)
SEED = 7


def _accuracy(text: str) -> float:
    """A made-up but deterministic accuracy of the network ``text``."""
    return 0.4 + (zlib.crc32(text.encode()) % 500) / 1000


def _text(arch: Architecture) -> str:
    return format_arch(canonical(arch))


@dataclass
class Drive:
    """One search driven through ``Searches`` on a database file; ``restart`` abandons the
    controller (no close: as after kill -9) and opens a new one on the same file."""

    path: Path
    spec: SearchSpec
    clock: FakeClock = field(default_factory=FakeClock)
    searches: Searches = field(init=False)
    abandoned: list[Searches] = field(default_factory=list)
    sid: str = ""
    log: list[Any] = field(default_factory=list)
    trained: list[Trained] = field(default_factory=list)  # the results, in report order

    def __post_init__(self) -> None:
        self.searches = self._open()
        self.sid = self.searches.create(self.spec).id

    def _open(self) -> Searches:
        return Searches(Store(self.path), clock=self.clock, timer=self.clock)

    @property
    def store(self) -> Store:
        return self.searches.store

    def restart(self) -> None:
        self.abandoned.append(self.searches)
        self.searches = self._open()

    def sample(self, n: int) -> tuple[list[Handout], bool]:
        handouts, done = self.searches.sample(self.sid, n)
        self.log.append(("sample", [(h.text, h.cached is not None) for h in handouts], done))
        return handouts, done

    def report(self, h: Handout) -> None:
        size = analyze(parse(h.text), self.spec.image())
        result = outcome(h.text, _accuracy(h.text), params=size.params, flops=size.flops)
        ack = self.searches.update(self.sid, h.id, result, None)
        self.log.append(("update", h.text, ack.accepted, ack.reward))
        assert ack.accepted and ack.reward is not None
        self.trained.append(Trained(h.text, size.params, size.flops, ack.reward))

    def candidates(self) -> list[ChildRow]:
        return self.store.candidates_after(self.sid, 0, 100_000)

    def close(self) -> None:
        for s in [*self.abandoned, self.searches]:
            s.store.close()


@pytest.fixture()
def drives() -> Iterator[list[Drive]]:
    """Drives a test opened, closed after it."""
    opened: list[Drive] = []
    yield opened
    for d in opened:
        d.close()


def _predictor_spec(**screening: Any) -> SearchSpec:
    settings = {"factor": 4, "cold_start_results": 4, "refit_every": 3, **screening}
    return SearchSpec(
        agent="random",
        space=SPACE,
        budget=50,
        seed=SEED,
        screening=Screening("predictor", **settings),
    )


# ---------------------------------------------------------------------------- fit_size


def test_fit_size_steps_at_the_cold_start_and_every_refit() -> None:
    s = Screening("predictor", cold_start_results=4, refit_every=3)
    sizes = [fit_size(s, n) for n in range(15)]
    assert sizes == [0, 0, 0, 0, 4, 4, 4, 7, 7, 7, 10, 10, 10, 13, 13]
    every = Screening("predictor", cold_start_results=2, refit_every=1)
    assert [fit_size(every, n) for n in range(6)] == [0, 0, 2, 3, 4, 5]
    # only the predictor has a model, whatever the numbers say
    for score in ("", "params", "synflow"):
        assert fit_size(replace(s, score=score), 100) == 0
    assert Screening("predictor").learnt and not Screening("params").learnt


# ---------------------------------------------------------------------------- ranking


@dataclass
class Expected:
    """What a Sample of one child should record, recomputed from the stored state: the
    handed-out network, the screened-out ones with their values, and what ranked them."""

    handout: str
    screened: dict[str, float]
    score: str


def _expected(d: Drive, models: dict[int, Fitted]) -> Expected | None:
    """The first round of a Sample(1) recomputed independently: the agent (loaded from the
    store) proposes ``factor`` networks when screening, else one; the new ones are ranked
    by a model of the first ``fit_size`` results as the test reported them (or by the
    cold-start score). None when the first round yields nothing new (the Sample then
    proposes again)."""
    spec, store = d.spec, d.store
    screening = spec.screening
    size = fit_size(screening, store.result_count(d.sid))
    score = "predictor" if size else screening.cold_start_score
    agent = spec.make_agent()
    state = store.load_agent(d.sid)
    assert state is not None
    agent.load_state_dict(state)
    agent.learn()
    proposals = agent.sample(screening.factor if score else 1)
    fresh: dict[str, tuple[Architecture, tuple[int, int]]] = {}
    for p in proposals:
        digest = arch_hash(p.arch)
        try:
            shape = analyze(p.arch, spec.image())
        except ArchError:
            continue
        if digest in fresh or store.result(d.sid, digest) is not None:
            continue
        if store.in_flight_with_hash(d.sid, digest) is not None:
            continue
        fresh[digest] = (p.arch, (shape.params, shape.flops))
    if not fresh:
        return None
    archs = [a for a, _ in fresh.values()]
    if not score:
        assert len(archs) == 1
        return Expected(_text(archs[0]), {}, "")
    if score == "predictor":
        if size not in models:
            models[size] = fit(screening, spec.bound_space(), spec.seed, d.trained[:size])
        values = models[size].values(archs, [s for _, s in fresh.values()])
    else:
        values = [screen_score(score, a, spec.image()) for a in archs]
    best = max(range(len(archs)), key=lambda i: values[i])  # the first of equals, as max()
    screened = {_text(a): v for i, (a, v) in enumerate(zip(archs, values)) if i != best}
    return Expected(_text(archs[best]), screened, score)


@pytest.mark.parametrize(
    ("cold_start_score", "acquisition"), [("", "ucb"), ("params", "ei"), ("flops", "mean")]
)
def test_each_child_is_the_best_ranked_of_its_group(
    cold_start_score: str,
    acquisition: str,
    tmp_path: Path,
    drives: list[Drive],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before ``cold_start_results`` results the cold-start score ranks (or, with "", there
    is no screening: one proposal per child); from then on the model of the first
    ``fit_size`` results does, refitted only at 4, 7, 10, 13 results, and the Sample hands
    out exactly the network the independent ranking puts first."""
    fits: list[int] = []

    def counting_fit(*args: Any) -> Fitted:
        fitted = fit(*args)
        fits.append(fitted.size)
        return fitted

    monkeypatch.setattr(live_module, "fit", counting_fit)
    spec = _predictor_spec(cold_start_score=cold_start_score, acquisition=acquisition)
    d = Drive(tmp_path / "s.db", spec.validate())
    drives.append(d)
    models: dict[int, Fitted] = {}
    checked = {"": 0, cold_start_score: 0, "predictor": 0}
    for step in range(15):
        results = d.store.result_count(d.sid)
        assert results == step
        first_new = len(d.candidates()) + 1
        expected = _expected(d, models)
        handouts, done = d.sample(1)
        assert len(handouts) == 1 and handouts[0].cached is None and not done
        new = [c for c in d.candidates() if c.id >= first_new]
        screened = {c.arch: c.report for c in new if isinstance(c.report, Screened)}
        if expected is None:  # the first round proposed nothing new: not recomputed here
            continue
        checked[expected.score] += 1
        assert handouts[0].text == expected.handout, f"step {step}"
        assert sorted(screened) == sorted(expected.screened)
        for text, report in screened.items():
            assert report.score == expected.score
            assert report.value == pytest.approx(expected.screened[text], rel=1e-9, abs=1e-12)
        if results < 4:
            assert expected.score == cold_start_score
            if not cold_start_score:  # no screening before the model: one proposal a child
                assert [c.arch for c in new] == [handouts[0].text]
        else:
            assert expected.score == "predictor" and len(screened) >= 1
            size = fit_size(spec.screening, results)
            if size != results:  # not refitted: a model of all the results tells apart
                model = fit(spec.screening, SPACE, SEED, d.trained)
                archs = [parse(t) for t in [handouts[0].text, *sorted(screened)]]
                shapes = [analyze(a, spec.image()) for a in archs]
                sizes = [(s.params, s.flops) for s in shapes]
                assert model.values(archs, sizes) != models[size].values(archs, sizes)
        d.report(handouts[0])
    assert checked["predictor"] >= 9 and checked[cold_start_score] >= 3
    assert fits == [4, 7, 10, 13]  # each model fitted once, when its results were in
    assert d.searches.view(d.sid).counts[Status.INVALID] >= 9 * 3 - 2  # screened out


def test_a_restarted_predictor_search_hands_out_the_same_networks(
    tmp_path: Path, drives: list[Drive]
) -> None:
    """Driven for 16 results two children at a time, the search is interrupted as after
    kill -9 before every Sample and between every Sample and its reports (leases
    outstanding): every handout, acknowledgement, recorded screening value and the agent's
    stored state equal an uninterrupted run's."""
    spec = SearchSpec(
        agent="reinforce",
        space=SPACE,
        budget=40,
        seed=SEED,
        screening=Screening(
            "predictor",
            factor=3,
            acquisition="ei",
            cold_start_results=3,
            cold_start_score="params",
            refit_every=2,
        ),
    )

    def run(name: str, restarts: bool) -> tuple[Any, ...]:
        d = Drive(tmp_path / name, spec)
        drives.append(d)
        while d.store.result_count(d.sid) < 16:
            if restarts:
                d.restart()
            handouts, _ = d.sample(2)
            if restarts:
                d.restart()
            for h in handouts:
                if h.cached is None:
                    d.report(h)
        rows = [(c.arch, c.status, c.report, c.reward) for c in d.candidates()]
        return d.log, rows, d.store.load_agent(d.sid), d.searches.view(d.sid).counts

    log, rows, state, counts = run("uninterrupted.db", False)
    got_log, got_rows, got_state, got_counts = run("restarted.db", True)
    assert got_log == log and got_rows == rows and got_counts == counts
    assert same_state(got_state, state), "the stored agent state differs"
    reports = [r[2] for r in rows]
    assert sum(isinstance(r, Screened) and r.score == "params" for r in reports) >= 2
    assert sum(isinstance(r, Screened) and r.score == "predictor" for r in reports) >= 10


# ---------------------------------------------------------------------------- convergence


def _converging_spec(action: str, patience: int = 3, budget: int = 12) -> SearchSpec:
    return SearchSpec(
        agent="random",
        agent_settings={"layers": 1},
        space=SMALL,
        budget=budget,
        seed=SEED,
        convergence=Convergence(patience=patience, action=action, draws="uniform"),
    ).validate()


def _own(c: CandidateRow) -> bool:
    return "explore" not in c.decisions and "prior" not in c.decisions


def _same_when_restarted(d: Drive, db: Path, drives: list[Drive]) -> None:
    """The same search driven again with a controller restarted before every Sample
    proposes, hands out and records exactly what ``d``'s did."""
    again = Drive(db, d.spec)
    drives.append(again)
    _drive_to_the_end(again, restart_every_step=True)
    assert again.log == d.log
    assert [(c.arch, c.status) for c in again.candidates()] == [
        (c.arch, c.status) for c in d.candidates()
    ]


def _drive_to_the_end(d: Drive, restart_every_step: bool, steps: int = 200) -> None:
    for _ in range(steps):
        if restart_every_step:
            d.restart()
        handouts, done = d.sample(1)
        for h in handouts:
            if h.cached is None:
                d.report(h)
        if done:
            return
    raise AssertionError(f"the search was not done after {steps} Samples")


def test_a_converged_agent_gets_uniform_exploration(tmp_path: Path, drives: list[Drive]) -> None:
    """The agent knows only 4 networks. Once ``patience`` of its proposals in a row were
    known, every child's group gets one uniformly random proposal (seeded by the search's
    seed, the candidates recorded and its place), handed out when new; the budget is then
    spent on those. A controller restarted before every Sample does exactly the same."""
    spec = _converging_spec("explore")
    d = Drive(tmp_path / "explore.db", spec)
    drives.append(d)
    _drive_to_the_end(d, restart_every_step=False)
    rows = [d.store.candidate(d.sid, c.id) for c in d.candidates()]
    assert all(r is not None for r in rows)
    cands = [r for r in rows if r is not None]
    explored = [c for c in cands if c.decisions.get("explore") is True]
    assert explored, "no exploration proposal was recorded"
    trained = [c for c in cands if c.status == Status.DONE]
    assert len(trained) == spec.budget
    assert d.searches.view(d.sid).ended_because == "budget spent"
    # the agent's own proposals: only its 4 one-layer networks, all trained, the rest known
    own_trained = {c.arch for c in trained if _own(c)}
    assert len(own_trained) == 4 and all(len(parse(t).layers) == 1 for t in own_trained)
    assert all(
        c.status in (Status.CACHED, Status.WAITING)
        for c in cands
        if _own(c) and c.status != Status.DONE
    )
    # the rest of the budget went on exploration proposals, each a new network
    explored_trained = [c for c in trained if not _own(c)]
    assert len(explored_trained) == spec.budget - 4
    assert all(c.decisions.get("explore") is True for c in explored_trained)
    assert len({c.arch for c in trained}) == spec.budget
    first = min(c.id for c in explored)
    streak = 0
    for c in cands:
        if c.id == first:
            break
        if _own(c):
            streak = streak + 1 if c.status in (Status.CACHED, Status.WAITING) else 0
    assert streak >= spec.convergence.patience, "explored before the agent converged"
    for c in explored:
        own = d.store.candidate(d.sid, c.id - 1)  # the group's own proposal, recorded first
        assert own is not None and _own(own) and own.status in (Status.CACHED, Status.WAITING)
        # drawn as the controller says: seeded by the seed, the candidates recorded before
        # the round (the group's own proposal came first) and the group's place (0)
        rng = random.Random(f"explore:{SEED}:{c.id - 2}:0")
        p = random_proposal(spec.bound_space(), rng, SMALL.max_layers)
        assert c.decisions == {**p.decisions, "explore": True} and c.arch == _text(p.arch)
    _same_when_restarted(d, tmp_path / "explore-restarted.db", drives)


def test_mutation_exploration_mutates_the_best_results_then_draws_uniformly(
    tmp_path: Path, drives: list[Drive]
) -> None:
    """With ``draws`` "mutations" a converged agent's group gets one decision changed in one
    of the ``top`` best results so far (seeded as the uniform draw is); when that network is
    known, the uniform draw instead. Each is recomputed here from the results before it; a
    controller restarted before every Sample proposes exactly the same."""
    spec = replace(
        _converging_spec("explore", budget=16),
        convergence=Convergence(patience=3, action="explore", draws="mutations", top=2),
    ).validate()
    d = Drive(tmp_path / "mutations.db", spec)
    drives.append(d)
    _drive_to_the_end(d, restart_every_step=False)
    cands = [c for c in map(_row(d), d.candidates())]
    explored = [c for c in cands if c.decisions.get("explore") is True]
    kinds = []
    for c in explored:
        before = [b for b in cands if b.id < c.id and b.status == Status.DONE]
        best = sorted(before, key=lambda b: (-float(b.reward or 0.0), b.id))[: spec.convergence.top]
        mutated = mutation_draws(SMALL, SEED, 1, [b.arch for b in best], c.id - 2, 0)[0]
        if _text(mutated.arch) not in {b.arch for b in before}:
            expected, kind = mutated, "mutation"
        else:
            rng = random.Random(f"explore:{SEED}:{c.id - 2}:0")
            expected, kind = random_proposal(SMALL, rng, SMALL.max_layers), "uniform"
            expected = replace(expected, decisions={**expected.decisions, "explore": True})
        assert c.arch == _text(expected.arch) and c.decisions == expected.decisions, kind
        kinds.append(kind)
    assert {"mutation", "uniform"} <= set(kinds), kinds
    assert len([c for c in cands if c.status == Status.DONE]) == spec.budget
    _same_when_restarted(d, tmp_path / "mutations-restarted.db", drives)


def test_a_converged_search_ends_when_nothing_is_leased(
    tmp_path: Path, drives: list[Drive]
) -> None:
    """With action "end", once ``patience`` known proposals came in a row the search hands
    out nothing more; it is DONE, its budget unspent, as soon as no child is out for
    training, and says why (also after a restart)."""
    spec = _converging_spec("end", patience=5, budget=30)
    d = Drive(tmp_path / "end.db", spec)
    drives.append(d)
    # the first network is held out for training while the agent re-proposes
    held: Handout | None = None
    for _ in range(50):
        handouts, done = d.sample(1)
        assert not done
        for h in handouts:
            if held is None:
                held = h
            elif h.cached is None:
                d.report(h)
        if d.store.known_streak(d.sid) >= spec.convergence.patience:
            break
    else:
        raise AssertionError("the agent never converged")
    assert held is not None
    # converged while ``held`` is leased: nothing is handed out, the search still runs
    for _ in range(3):
        handouts, done = d.sample(1)
        assert handouts == [] and not done
    assert d.store.known_streak(d.sid) >= spec.convergence.patience
    view = d.searches.view(d.sid)
    assert view.state == SearchState.RUNNING and view.ended_because == ""
    assert not any("explore" in c.decisions for c in map(_row(d), d.candidates()))
    d.restart()
    d.report(held)
    handouts, done = d.sample(1)
    assert handouts == [] and done
    view = d.searches.view(d.sid)
    assert view.state == SearchState.DONE and view.counts[Status.DONE] <= 4 < spec.budget
    assert d.store.known_streak(d.sid) == spec.convergence.patience  # it ended at once
    assert view.ended_because.startswith("converged: the agent's last ")
    assert "convergence.action end" in view.ended_because
    d.restart()
    assert d.searches.view(d.sid).ended_because == view.ended_because
    assert d.searches.sample(d.sid, 1) == ([], True)


def _row(d: Drive) -> Any:
    def row(c: Any) -> Any:
        found = d.store.candidate(d.sid, c.id)
        assert found is not None
        return found

    return row


# ---------------------------------------------------------------------------- over gRPC


@pytest.fixture(scope="module")
def controller_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    handle, searches = start_controller(str(tmp_path_factory.mktemp("c") / "controller.db"))
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)
    searches.store.close()


GRPC_SMALL = cpb.SearchSpace(
    zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1], filters=[8], max_layers=2)
)


def _create(c: ControllerClient, **fields: Any) -> str:
    fields.setdefault("agent", cpb.AgentSpec(name="random"))
    return c.create_search(
        dataset="digits", budget=fields.pop("budget", 6), space=GRPC_SMALL, **fields
    ).search_id


def _raw(c: ControllerClient, sid: str) -> cpb.Search:
    search: cpb.Search = c._call("GetSearch", cpb.GetSearchRequest(search_id=sid))
    return search


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {"screening": cpb.Screening(score="predictor", acquisition="foo")},
            "screening.acquisition",
        ),
        ({"screening": cpb.Screening(score="predictor", kappa=-0.5)}, "screening.kappa"),
        ({"screening": cpb.Screening(score="predictor", kappa=11)}, "screening.kappa"),
        ({"screening": cpb.Screening(score="predictor", kappa=float("nan"))}, "screening.kappa"),
        (
            {"screening": cpb.Screening(score="predictor", cold_start_results=1)},
            "screening.cold_start_results",
        ),
        (
            {"screening": cpb.Screening(score="predictor", cold_start_results=1001)},
            "screening.cold_start_results",
        ),
        (
            {"screening": cpb.Screening(score="predictor", cold_start_score="predictor")},
            "screening.cold_start_score",
        ),
        (
            {"screening": cpb.Screening(score="predictor", cold_start_score="naswot")},
            "screening.cold_start_score",
        ),
        ({"screening": cpb.Screening(score="predictor", refit_every=-1)}, "screening.refit_every"),
        (
            {"screening": cpb.Screening(score="predictor", refit_every=1001)},
            "screening.refit_every",
        ),
        ({"screening": cpb.Screening(score="predictors")}, "screening.score"),
        ({"convergence": cpb.Convergence(patience=-1)}, "convergence.patience"),
        ({"convergence": cpb.Convergence(patience=1_000_001)}, "convergence.patience"),
        ({"convergence": cpb.Convergence(action="bar")}, "convergence.action"),
        ({"convergence": cpb.Convergence(draws="evolve")}, "convergence.draws"),
        ({"convergence": cpb.Convergence(draws="mutations", top=1001)}, "convergence.top"),
        ({"convergence": cpb.Convergence(draws="uniform", top=3)}, 'convergence.draws "mutations"'),
        (
            {
                "agent": cpb.AgentSpec(
                    name="reinforce", reinforce=cpb.ReinforceSettings(model_steps=3)
                )
            },
            "model_steps needs the search's learned predictor",
        ),
        (
            {
                "agent": cpb.AgentSpec(
                    name="reinforce", reinforce=cpb.ReinforceSettings(model_batch=1)
                ),
                "screening": cpb.Screening(score="predictor"),
            },
            "model_batch",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_settings_are_refused_naming_the_field(
    controller_addr: str, fields: dict[str, Any], words: str
) -> None:
    with ControllerClient(controller_addr) as c:
        before = len(c.list_searches())
        with pytest.raises(NasrlError) as err:
            _create(c, **fields)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert words in str(err.value)
        assert len(c.list_searches()) == before  # nothing half-created


def test_settings_round_trip_with_defaults_filled_in(controller_addr: str) -> None:
    with ControllerClient(controller_addr) as c:
        plain = _raw(c, _create(c, screening=cpb.Screening(score="predictor")))
        s = plain.spec.screening
        assert (s.score, s.factor, s.acquisition, s.cold_start_results) == (
            "predictor",
            4,
            "ucb",
            10,
        )
        assert s.HasField("kappa") and s.kappa == 0.5
        assert (s.cold_start_score, s.refit_every) == ("", 10)
        assert (plain.spec.convergence.patience, plain.spec.convergence.action) == (100, "explore")
        assert plain.ended_because == ""
        given = cpb.Screening(
            score="predictor",
            factor=3,
            acquisition="ei",
            kappa=0.0,  # set: zero, not the default 0.5
            cold_start_results=2,
            cold_start_score="synflow",
            refit_every=1,
        )
        convergence = cpb.Convergence(patience=7, action="end", draws="mutations", top=3)
        sid = _create(c, screening=given, convergence=convergence)
        back = _raw(c, sid).spec
        assert back.screening == given and back.convergence == convergence
        listed = {x.search_id: x for x in c.list_searches()}
        assert listed[sid].spec.request.screening == given
        # what the controller works with is what was asked for
        assert c.get_search(sid).spec.request.convergence == convergence


def test_ended_because_says_why_a_search_ended(controller_addr: str) -> None:
    with ControllerClient(controller_addr) as c:
        converging = _create(
            c,
            agent=cpb.AgentSpec(name="random", random=cpb.RandomSettings(layers=1)),
            convergence=cpb.Convergence(patience=3, action="end"),
            budget=20,
        )
        spent = _create(c, budget=2)
        stopped = _create(c)
        running = _create(c)
        for sid in (converging, spent):
            for _ in range(60):
                batch = c.sample(sid, 1)
                for x in batch.candidates:
                    if x.cached is None:
                        c.update(sid, x.id, outcome(x.text, _accuracy(x.text)))
                if batch.done:
                    break
            assert batch.done
        c.stop_search(stopped)
        ended = _raw(c, converging)
        assert ended.state == cpb.DONE and ended.counts.evaluated == 4  # budget 20 unspent
        assert ended.ended_because.startswith("converged: the agent's last 3 proposals")
        assert _raw(c, spent).ended_because == "budget spent"
        assert _raw(c, stopped).ended_because == "stopped"
        assert _raw(c, running).ended_because == ""
        assert {x.search_id: x.ended_because for x in _list(c)}[converging] == ended.ended_because


def _list(c: ControllerClient) -> list[cpb.Search]:
    reply = c._call("ListSearches", cpb.ListSearchesRequest())
    return list(reply.searches)
