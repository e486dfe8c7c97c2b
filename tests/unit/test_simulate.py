"""The simulated trainer's sleep (``trainer_service.simulate``): with a ``wake`` event a slot
sleeps without polling and still ends at once when cancelled, and an early finish asked for
before the first epoch still gives that epoch and the result."""

from __future__ import annotations

import threading

import pytest

from nasrl.core.arch import parse
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape
from trainer_service.simulate import simulate
from trainer_service.train import Cancelled

ARCH = parse("C(8,3,1) C(8,3,1)")
DIGITS = InputShape(1, 8, 8, 10)


def test_a_cancelled_child_ends_when_woken_not_after_its_time() -> None:
    stopped, wake = threading.Event(), threading.Event()
    events = simulate(ARCH, DIGITS, TrainSettings(epochs=2), 3600.0, stopped.is_set, wake=wake)
    raised: list[BaseException] = []

    def drain() -> None:
        try:
            list(events)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            raised.append(exc)

    worker = threading.Thread(target=drain)
    worker.start()
    stopped.set()
    wake.set()  # what the trainer does when the call is cancelled
    worker.join(60)  # a guard against a hang: the child's own time is an hour
    assert not worker.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], Cancelled)


@pytest.mark.parametrize("with_wake", [True, False])
def test_finish_asked_before_the_first_epoch_gives_one_epoch_and_the_result(
    with_wake: bool,
) -> None:
    finish, wake = threading.Event(), threading.Event()
    finish.set()
    wake.set()  # FinishEarly sets both
    events = list(
        simulate(
            ARCH,
            DIGITS,
            TrainSettings(epochs=5),
            0.2,
            lambda: False,
            finish.is_set,
            wake if with_wake else None,
        )
    )
    assert [type(e) for e in events] == [EpochRecord, TrainOutcome]
    assert isinstance(events[0], EpochRecord) and events[0].epoch == 1


def test_a_cell_network_gets_a_surrogate_without_a_depth_term() -> None:
    from trainer_service.simulate import surrogate_accuracy

    cell = parse("[N=1]|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|none~2|")
    events = list(simulate(cell, DIGITS, TrainSettings(epochs=1), 0.0, lambda: False))
    outcome = events[-1]
    assert isinstance(outcome, TrainOutcome)
    assert outcome.architecture == str(cell) and outcome.device == "simulated"
    # capacity and noise only: within 0.55 + 0.35 * capacity +- 0.02
    assert 0.55 <= outcome.validation_accuracy <= 0.92
    assert outcome.validation_accuracy == surrogate_accuracy(cell, DIGITS)
