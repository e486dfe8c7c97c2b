"""Group commit of Updates: the reports that queue on a search's lock are recorded in one
transaction, each call still gets its own answer, and a bad report fails only its own call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from controller_service.searches import (
    MAX_ROUND,
    CandidateNotFound,
    ReportConflict,
    Searches,
    UpdateAck,
)
from controller_service.spec import SearchSpec
from controller_service.states import Status
from controller_service.store import Store
from tests.helpers import outcome, wait_for


class Counted:
    """Counts the store's write transactions."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self._transaction = store.transaction

        @contextmanager
        def counted() -> Iterator[None]:
            self.count += 1
            with self._transaction():
                yield

        store.transaction = counted  # type: ignore[method-assign]


def updates_while_locked(
    searches: Searches, sid: str, calls: list[tuple[int, Any]]
) -> list[UpdateAck | BaseException]:
    """Make every ``(candidate id, outcome)`` Update in its own thread while the test holds the
    search's lock, so that all of them queue; then let go and return each call's answer."""
    answers: list[UpdateAck | BaseException | None] = [None] * len(calls)

    def call(i: int, cid: int, result: Any) -> None:
        try:
            answers[i] = searches.update(sid, cid, result, None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            answers[i] = exc

    with searches._locked(sid):
        threads = [
            threading.Thread(target=call, args=(i, cid, r)) for i, (cid, r) in enumerate(calls)
        ]
        for t in threads:
            t.start()
        wait_for(lambda: searches.queued(sid) == len(calls), what="queued")
    for t in threads:
        t.join(60)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


@pytest.mark.parametrize("agent", ["random", "reinforce", "qlearning", "evolution"])
def test_queued_reports_are_recorded_in_one_transaction(tmp_path: Path, agent: str) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(SearchSpec(agent=agent, budget=50)).id
    handouts, _ = searches.sample(sid, 6)
    fresh = [h for h in handouts if h.cached is None]
    counted = Counted(searches.store)
    answers = updates_while_locked(searches, sid, [(h.id, outcome(h.text)) for h in fresh])
    assert all(isinstance(a, UpdateAck) and a.accepted for a in answers)
    assert counted.count == 1
    assert searches.store.counts(sid).get(Status.DONE, 0) == len(fresh)
    again = Searches(Store(tmp_path / "c.db"))  # what was committed is what a restart sees
    assert again.store.counts(sid).get(Status.DONE, 0) == len(fresh)


def test_a_bad_report_in_a_group_fails_only_its_own_call(tmp_path: Path) -> None:
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(SearchSpec(agent="random", budget=50)).id
    (a, b, c), _ = searches.sample(sid, 3)
    searches.update(sid, a.id, outcome(a.text, accuracy=0.5), None)
    answers = updates_while_locked(
        searches,
        sid,
        [
            (a.id, outcome(a.text, accuracy=0.9)),  # a different report for a reported one
            (999, outcome(b.text)),  # no such candidate
            (b.id, outcome(b.text)),
            (c.id, outcome(c.text)),
            (c.id, outcome(c.text)),  # the same report twice in one group
        ],
    )
    assert isinstance(answers[0], ReportConflict)
    assert isinstance(answers[1], CandidateNotFound)
    assert isinstance(answers[2], UpdateAck) and answers[2].accepted
    acks = [x for x in answers[3:] if isinstance(x, UpdateAck)]
    assert sorted(x.accepted for x in acks) == [False, True]  # recorded once, then a repeat
    assert searches.store.counts(sid).get(Status.DONE, 0) == 3


def test_a_long_sample_records_the_updates_queued_between_its_rounds(tmp_path: Path) -> None:
    """Updates queued while a Sample of several rounds holds the search's lock are recorded
    by that Sample after its first round, and their calls return before it ends."""
    searches = Searches(Store(tmp_path / "c.db"))
    sid = searches.create(SearchSpec(agent="random", budget=5000)).id
    handouts, _ = searches.sample(sid, 4)
    answers: list[UpdateAck | BaseException] = []
    threads = [
        threading.Thread(
            target=lambda h=h: answers.append(searches.update(sid, h.id, outcome(h.text), None))
        )
        for h in handouts
    ]
    with searches._locked(sid):  # this thread's Sample below re-enters the lock
        for t in threads:
            t.start()
        wait_for(lambda: searches.queued(sid) == len(handouts), what="queued")
        more, _ = searches.sample(sid, MAX_ROUND + 10)  # two rounds
        assert len(more) == MAX_ROUND + 10
        for t in threads:
            t.join(60)  # returned while this thread still holds the lock
        assert not any(t.is_alive() for t in threads)
    assert all(isinstance(a, UpdateAck) and a.accepted for a in answers)
    assert searches.store.counts(sid).get(Status.DONE, 0) == len(handouts)
