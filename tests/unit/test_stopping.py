"""Early-stopping rules on scripted learning curves: who stops, and when."""

from __future__ import annotations

import pytest

from controller_service.stopping import Decision, StoppingSettings, make_rule

C, S = Decision.CONTINUE, Decision.STOP


def test_none_never_stops() -> None:
    rule = make_rule(StoppingSettings("none"), epochs=9)
    for child in range(20):
        for epoch in range(1, 10):
            assert rule.decide(child, epoch, 0.01 * child) is C


def test_asha_rungs_are_r_times_powers_of_eta_below_the_planned_epochs() -> None:
    assert make_rule(StoppingSettings("asha", eta=3, min_epochs=1), 27).rung_epochs() == [1, 3, 9]
    assert make_rule(StoppingSettings("asha", eta=3, min_epochs=1), 3).rung_epochs() == [1]
    assert make_rule(StoppingSettings("asha", eta=2, min_epochs=2), 20).rung_epochs() == [
        2,
        4,
        8,
        16,
    ]
    assert make_rule(StoppingSettings("asha", eta=3, min_epochs=3), 3).rung_epochs() == []


def test_asha_keeps_the_top_third_at_each_rung() -> None:
    rule = make_rule(StoppingSettings("asha", eta=3), epochs=9)  # rungs 1, 3
    # the first child at a rung always continues
    assert rule.decide(0, 1, 0.50) is C
    # 0.40 < the 2/3 quantile of [0.50]
    assert rule.decide(1, 1, 0.40) is S
    # 0.60 >= quantile(2/3) of [0.50, 0.40] = 0.4667
    assert rule.decide(2, 1, 0.60) is C
    # recorded [0.50, 0.40, 0.60]: cutoff 0.5333 -> 0.52 stops, 0.55 continues
    assert rule.decide(3, 1, 0.52) is S
    assert rule.decide(4, 1, 0.55) is C
    # epochs between rungs always continue, the next rung compares only what reached it
    assert rule.decide(0, 2, 0.10) is C
    assert rule.decide(0, 3, 0.70) is C  # first at rung 3
    assert rule.decide(2, 2, 0.65) is C
    assert rule.decide(2, 3, 0.69) is S  # below the cutoff of [0.70]
    # the last planned epoch is never a stop
    for e in range(4, 10):
        assert rule.decide(0, e, 0.0) is C


def test_median_stops_below_the_median_of_running_means() -> None:
    rule = make_rule(StoppingSettings("median", grace=2, min_children=3), epochs=5)
    curves = {0: [0.5, 0.7, 0.8], 1: [0.4, 0.6, 0.7], 2: [0.6, 0.8, 0.9]}
    for child, curve in curves.items():
        for e, v in enumerate(curve, start=1):
            assert rule.decide(child, e, v) is C  # fewer than 3 others at every epoch
    # epoch 1 is inside the grace period
    assert rule.decide(3, 1, 0.1) is C
    # running means at epoch 2: 0.6, 0.5, 0.7 (and child 3 itself is left out): median 0.6
    assert rule.decide(3, 2, 0.59) is S
    rule2 = make_rule(StoppingSettings("median", grace=2, min_children=3), epochs=5)
    rule2.replay([(c, e, v) for c, cv in curves.items() for e, v in enumerate(cv, start=1)])
    rule2.decide(3, 1, 0.1)
    assert rule2.decide(3, 2, 0.61) is C  # its best so far is above the median


def test_replaying_reports_rebuilds_the_same_decisions() -> None:
    reports = [(c, e, ((c * 7 + e * 3) % 10) / 10) for c in range(12) for e in range(1, 4)]
    a = make_rule(StoppingSettings("asha"), epochs=9)
    decisions = [a.decide(*r) for r in reports]
    b = make_rule(StoppingSettings("asha"), epochs=9)
    b.replay(reports[:20])
    assert [b.decide(*r) for r in reports[20:]] == decisions[20:]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (StoppingSettings("sometimes"), "none, median, asha"),
        (StoppingSettings("asha", eta=1), "eta"),
        (StoppingSettings("median", min_children=0), "min_children"),
    ],
)
def test_bad_settings_are_named(settings: StoppingSettings, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        settings.validate()


def test_out_of_order_epochs_are_refused() -> None:
    rule = make_rule(StoppingSettings("asha"), epochs=9)
    rule.decide(0, 1, 0.5)
    with pytest.raises(ValueError, match="epoch 3 reported after 1"):
        rule.decide(0, 3, 0.5)
