"""A search's evaluation setting (FULL or SHARED with warm-up and top-k): its checks, its JSON
and proto round trips, and a SHARED search's stages through the real ``Searches`` on a
database file, a restart included."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from controller_service import codec
from controller_service.evaluation import SearchEvaluation, shared_training
from controller_service.searches import BadReport, Handout, Searches
from controller_service.spaces import MetaQNNSpace, Nb201Space, ZophSpace
from controller_service.spec import SearchSpec, SpecError
from controller_service.store import Store
from nasrl.core.cell import Skeleton
from nasrl.core.results import Evaluation, SharedTraining
from tests.helpers import outcome, through_bytes

SPACE = ZophSpace(filter_sizes=(1, 3), strides=(1,), filters=(4, 8), max_layers=2)
SHARED = SearchEvaluation("shared", steps=5, warmup_children=2, top_k=2)


def spec(**kw: object) -> SearchSpec:
    base = SearchSpec(agent="random", space=SPACE, budget=6, seed=3, evaluation=SHARED)
    return replace(base, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- settings


def test_the_default_is_full_and_a_stored_spec_without_it_loads_as_full() -> None:
    data = SearchSpec(agent="random", space=SPACE).validate().to_json()
    assert data["evaluation"]["mode"] == "full"
    del data["evaluation"]  # as stored before the setting existed
    assert SearchSpec.from_json(data).evaluation == SearchEvaluation()


def test_a_shared_setting_round_trips_through_json_and_proto() -> None:
    s = spec().validate()
    assert SearchSpec.from_json(through_bytes(s.to_json())).evaluation == SHARED
    back = codec.spec_from_proto(codec.spec_to_proto(s)).validate()
    assert back.evaluation == SHARED and back == s


@pytest.mark.parametrize(
    ("evaluation", "space", "says"),
    [
        (SearchEvaluation("bogus"), SPACE, "must be FULL or SHARED"),
        (SearchEvaluation("full", top_k=2), SPACE, "only applies to SHARED"),
        (SearchEvaluation("shared", steps=-1), SPACE, "evaluation.steps must be between"),
        (SearchEvaluation("shared", steps=100_001), SPACE, "evaluation.steps must be between"),
        (SearchEvaluation("shared", warmup_children=7), SPACE, "budget (6)"),
        (SearchEvaluation("shared", top_k=-1), SPACE, "evaluation.top_k must be between"),
        (SearchEvaluation("shared"), MetaQNNSpace(), "set its max_fc to 0"),
    ],
)
def test_bad_settings_say_what_to_change(
    evaluation: SearchEvaluation, space: object, says: str
) -> None:
    agent = "qlearning" if isinstance(space, MetaQNNSpace) else "random"
    with pytest.raises(SpecError, match=says.replace("(", r"\(").replace(")", r"\)")):
        spec(evaluation=evaluation, space=space, agent=agent).validate()


def test_each_space_with_a_supernet_names_its_maxima() -> None:
    assert shared_training(SHARED, SPACE) == SharedTraining(5, 3, 8, 2)
    assert shared_training(SHARED, Nb201Space()) == SharedTraining(5)
    metaqnn = MetaQNNSpace(conv_sizes=(3, 5), conv_filters=(8, 16), max_depth=4, max_fc=0)
    assert shared_training(SHARED, metaqnn) == SharedTraining(5, 5, 16, 5)
    cells = Nb201Space(skeleton=Skeleton(8, 1, 3))
    assert spec(space=cells).validate().evaluation.shared


# ---------------------------------------------------------------- stages


def shared_result(h: Handout, accuracy: float) -> object:
    return replace(outcome(h.text, accuracy), evaluation=Evaluation.SHARED, shared_steps=5)


def accuracy_of(text: str) -> float:
    return round(0.1 + (sum(map(ord, text)) % 80) / 100, 2)


def run_shared_stage(searches: Searches, sid: str) -> list[Handout]:
    """Sample and report every shared child; the handouts to train."""
    trained: list[Handout] = []
    while True:
        handouts, done = searches.sample(sid, 2)
        fresh = [h for h in handouts if h.cached is None]
        if not fresh or any(h.shared is None for h in fresh):
            return fresh
        for h in fresh:
            assert h.shared == SharedTraining(5, 3, 8, 2)
            searches.update(sid, h.id, shared_result(h, accuracy_of(h.text)), None)  # type: ignore[arg-type]
            trained.append(h)
        assert not done


def test_a_shared_search_warms_up_then_hands_out_its_top_k_for_full_training(
    tmp_path: Path,
) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(spec()).id
    final = run_shared_stage(searches, sid)
    store = searches.store
    rows = store.candidates_after(sid, 0, 100)
    cands = [store.candidate(sid, r.id) for r in rows]
    assert [bool(c.decisions.get("warmup")) for c in cands][:2] == [True, True]  # type: ignore[union-attr]
    assert not any(c.decisions.get("warmup") for c in cands[2:])  # type: ignore[union-attr]
    assert [c.id for c in cands if c.final] == [h.id for h in final]  # type: ignore[union-attr]
    # the agent learnt from its own children only, not from the warm-up's or the top-k's
    assert searches.view(sid).progress["updates"] == len(rows) - 2 - 2
    # the top-k stage: the two best shared scores, handed out without `shared`
    shared_board = searches.leaderboard(sid, 10)
    assert [h.text for h in final] == [r.arch for r in shared_board[:2]]
    assert searches.sample(sid, 5)[0] == []  # both are out already
    restarted = Searches(Store(tmp_path / "c.db"))  # a restart keeps the stage
    searches.store.close()
    a, b = final
    restarted.update(sid, a.id, outcome(a.text, 0.2), None)
    with pytest.raises(BadReport, match="handed out for full training"):
        restarted.update(sid, b.id, shared_result(b, 0.9), None)  # type: ignore[arg-type]
    ack = restarted.update(sid, b.id, outcome(b.text, 0.1), None)
    assert ack.state == "done"
    board = restarted.leaderboard(sid, 10)
    kinds = [r.outcome.evaluation for r in board]
    assert kinds[:2] == [Evaluation.FULL, Evaluation.FULL]  # trained first, though lower
    assert [r.accuracy for r in board[:2]] == pytest.approx([0.2, 0.1])
    assert set(kinds[2:]) == {Evaluation.SHARED}
    assert len(board) == len({r.arch for r in board})  # one entry per network
    assert restarted.view(sid).best.outcome.evaluation is Evaluation.FULL  # type: ignore[union-attr]
    restarted.store.close()


def test_a_shared_child_must_be_reported_as_shared_and_a_full_one_as_trained(
    tmp_path: Path,
) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(spec()).id
    (h,), _ = searches.sample(sid, 1)
    with pytest.raises(BadReport, match="--supernet trainer"):
        searches.update(sid, h.id, outcome(h.text, 0.5), None)
    assert searches.update(sid, h.id, None, "it broke").accepted  # a failure fits either
    full = searches.create(replace(spec(), evaluation=SearchEvaluation())).id
    (f,), _ = searches.sample(full, 1)
    assert f.shared is None
    with pytest.raises(BadReport, match="without --supernet"):
        searches.update(full, f.id, shared_result(f, 0.5), None)  # type: ignore[arg-type]
    searches.store.close()


def test_without_a_top_k_stage_a_shared_search_ends_with_its_budget(tmp_path: Path) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(spec(evaluation=replace(SHARED, top_k=0))).id
    assert run_shared_stage(searches, sid) == []
    assert searches.view(sid).state == "done"
    assert searches.view(sid).counts["done"] == 6
    searches.store.close()
