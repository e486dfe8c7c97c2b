"""ListChildren over real gRPC: every candidate of a search in order with its status, result,
failure reason, reported epochs and decisions; paging; detail; errors."""

from __future__ import annotations

import grpc
import pytest

from nasrl.core import codec
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc.client import ChildStatus, ControllerClient, NasrlError
from protos import controller_pb2 as cpb

SMALL = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=2, filters=[8, 16]))
EPOCHS = 9


def _create(c: ControllerClient, budget: int = 20, rule: str = "asha") -> str:
    return c.create_search(
        agent=cpb.AgentSpec(name="random"),
        dataset="digits",
        budget=budget,
        space=SMALL,
        training=codec.settings_to_proto(TrainSettings(epochs=EPOCHS)),
        early_stopping=cpb.EarlyStopping(rule=rule),
    ).search_id


def _outcome(text: str, curve: list[float]) -> TrainOutcome:
    records = tuple(
        EpochRecord(i + 1, EPOCHS, 1.0, v, v, float(i + 1)) for i, v in enumerate(curve)
    )
    return TrainOutcome(
        max(curve),
        max(curve[-5:]),
        0.5,
        100,
        1000,
        float(len(curve)),
        "cpu",
        text,
        records,
        stopped_early=len(curve) < EPOCHS,
        weights_id="ab" * 16,
    )


def test_children_show_results_failures_reports_and_decisions(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c)
        a, b, d = c.sample(sid, 3).candidates
        assert c.report(sid, a.id, 1, 0.50)
        assert not c.report(sid, b.id, 1, 0.40)  # asha: below the first at the rung
        c.update(sid, a.id, _outcome(a.text, [0.5, 0.6, 0.7]))
        c.update(sid, b.id, _outcome(b.text, [0.4]))
        c.update(sid, d.id, failure="CUDA out of memory")

        children, more = c.list_children(sid, detail=True)
        assert not more
        by_id = {ch.candidate_id: ch for ch in children}
        assert [ch.candidate_id for ch in children] == sorted(by_id)
        assert {a.id, b.id, d.id} <= set(by_id)

        first, stopped, failed = by_id[a.id], by_id[b.id], by_id[d.id]
        assert first.status is ChildStatus.TRAINED and first.architecture == a.text
        assert first.result is not None and first.result.validation_accuracy == pytest.approx(0.7)
        assert [e.validation_accuracy for e in first.result.curve] == pytest.approx([0.5, 0.6, 0.7])
        assert first.result.weights_id == "ab" * 16
        assert [(r.epoch, r.stop) for r in first.reports] == [(1, False)]
        assert first.reward == pytest.approx(0.7)

        assert stopped.result is not None and stopped.result.stopped_early
        assert [(r.epoch, r.stop) for r in stopped.reports] == [(1, True)]
        assert stopped.reports[0].validation_accuracy == pytest.approx(0.4)
        assert failed.status is ChildStatus.FAILED and failed.result is None
        assert failed.reason == "CUDA out of memory"

        # without detail: the same rows, no curves and no reports
        rows, _ = c.list_children(sid)
        plain = {ch.candidate_id: ch for ch in rows}
        listed = plain[a.id].result
        assert listed is not None and listed.curve == ()
        assert plain[a.id].reports == ()
        assert listed.validation_accuracy == pytest.approx(0.7)
        assert listed.architecture == a.text  # the child's, sent once


def test_children_page_in_candidate_order(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c, budget=12, rule="none")
        handed = c.sample(sid, 7).candidates
        for i, cand in enumerate(handed):
            c.update(sid, cand.id, _outcome(cand.text, [0.1 + 0.1 * i]))
        seen: list[int] = []
        after, more = 0, True
        while more:
            page, more = c.list_children(sid, after=after, limit=3)
            assert len(page) <= 3
            seen += [ch.candidate_id for ch in page]
            after = page[-1].candidate_id
        every, _ = c.list_children(sid, limit=10_000)
        assert seen == [ch.candidate_id for ch in every] == sorted(seen)
        assert {h.id for h in handed} <= set(seen)
        leased = c.sample(sid, 1).candidates[0]
        tail, _ = c.list_children(sid, after=max(h.id for h in handed))
        assert [ch.status for ch in tail if ch.candidate_id == leased.id] == [ChildStatus.LEASED]


@pytest.mark.parametrize(
    ("limit", "detail", "words"),
    [(10_001, False, "between 1 and 10,000"), (101, True, "between 1 and 100 with detail")],
)
def test_bad_limits_are_invalid_argument(
    controller: str, limit: int, detail: bool, words: str
) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c)
        with pytest.raises(NasrlError) as err:
            c.list_children(sid, limit=limit, detail=detail)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in str(err.value)


def test_unknown_search_is_not_found(controller: str) -> None:
    with ControllerClient(controller) as c, pytest.raises(NasrlError) as err:
        c.list_children("nosuchsearch")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
