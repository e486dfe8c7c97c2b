"""TrainerPool's view of trainers that are down, on a fake clock: a lost trainer gets no work
until a health check finds it serving, is checked ever less often while it keeps failing, and
the pool says when every trainer has been down for how long."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nasrl.runner import TrainerPool
from tests.helpers import FakeClock

A, B = "127.0.0.1:50061", "127.0.0.1:50062"


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def pool(clock: FakeClock) -> Iterator[TrainerPool]:
    p = TrainerPool(f"{A},{B}", clock=clock)
    yield p
    p.close()


def test_a_lost_trainer_gets_no_work_until_a_check_finds_it_serving(
    pool: TrainerPool, clock: FakeClock
) -> None:
    pool.lost(A, "UNAVAILABLE: cannot reach it")
    assert pool.take() == B
    assert pool.take() is None  # B is busy and A is down: nothing, not A
    assert pool.probes_due() == []
    clock.advance(1.0)
    assert pool.probes_due() == [A]
    pool.probed(A, serving=False)  # still down: checked again a second later
    assert pool.probes_due() == [] and pool.take() is None
    clock.advance(1.0)
    assert pool.probes_due() == [A]
    pool.probed(A, serving=True)
    assert pool.probes_due() == [] and pool.take() == A


def test_each_loss_in_a_row_waits_longer_for_the_next_check(
    pool: TrainerPool, clock: FakeClock
) -> None:
    waits = []
    for _ in range(7):
        pool.lost(A, "UNAVAILABLE")
        pool.lost(A, "UNAVAILABLE")  # a second call running when it died: the same loss
        waited = 0
        while A not in pool.probes_due():
            clock.advance(1.0)
            waited += 1
        waits.append(waited)
        pool.probed(A, serving=True)  # says SERVING, and its next call fails again
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    pool.answered(A)  # a call was answered: up, and the next loss starts again at 1 s
    pool.lost(A, "UNAVAILABLE")
    clock.advance(1.0)
    assert pool.probes_due() == [A]


def test_unreachable_only_once_every_trainer_is_down(pool: TrainerPool, clock: FakeClock) -> None:
    pool.lost(A, "UNAVAILABLE: a")
    clock.advance(10.0)
    assert pool.unreachable() is None  # B may still get work
    pool.lost(B, "UNAVAILABLE: b")
    clock.advance(4.0)
    assert pool.unreachable() == (4.0, f"{B}: UNAVAILABLE: b")  # since the last one was lost
    clock.advance(1.0)
    pool.probed(B, serving=True)
    assert pool.unreachable() is None  # B serves again: it may get work
    pool.lost(B, "UNAVAILABLE: b again")  # it did not take it: still down since before
    assert pool.unreachable() == (5.0, f"{B}: UNAVAILABLE: b again")
    pool.answered(A)
    assert pool.unreachable() is None
