"""The controller over real gRPC on loopback: create/sample/update, idempotence, dedup,
leases, budget, errors, concurrency, end to end with a trainer."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import ControllerClient, NasrlError, SearchStatus, TrainerClient
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb
from tests.helpers import FakeClock

SMALL = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=3, filters=[8, 16]))


def outcome(text: str, acc: float = 0.5) -> TrainOutcome:
    return TrainOutcome(acc, acc, acc - 0.01, 1000, 20000, 1.5, "cpu", text)


def create(
    c: ControllerClient,
    agent: str = "random",
    budget: int = 10,
    space: cpb.SearchSpace = SMALL,
    **kw: Any,
) -> str:
    search = c.create_search(
        agent=cpb.AgentSpec(name=agent), dataset="digits", budget=budget, space=space, **kw
    )
    return search.search_id


def test_sample_update_and_search_views(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = create(c, "reinforce", budget=4, name="first")
        batch = c.sample(sid, 3)
        assert len(batch.candidates) == 3 and not batch.done
        assert batch.dataset == "digits" and batch.training == TrainSettings()
        for i, cand in enumerate(batch.candidates):
            assert cand.cached is None and cand.lease_deadline > time.time()
            ack = c.update(sid, cand.id, outcome(cand.text, 0.5 + i / 10))
            assert ack.accepted and ack.reward == pytest.approx((0.5 + i / 10) ** 3, rel=1e-5)
        s = c.get_search(sid)
        assert s.name == "first" and s.state == SearchStatus.RUNNING
        assert s.counts.evaluated == 3 and s.counts.in_flight == 0
        assert s.spec.request.agent.reinforce.hidden == 35  # defaults filled in
        assert s.spec.request.reward == cpb.ZOPH
        assert s.progress["curriculum_layers"] == 3  # start 6, capped by max_layers 3
        assert s.best is not None and s.best.accuracy == pytest.approx(0.7)
        board = c.leaderboard(sid, top=2)
        assert [round(e.accuracy, 2) for e in board] == [0.7, 0.6]
        assert board[0].architecture == batch.candidates[2].text
        assert sid in [x.search_id for x in c.list_searches()]


def test_update_is_idempotent_and_conflicts_are_refused(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = create(c)
        cand = c.sample(sid, 1).candidates[0]
        first = c.update(sid, cand.id, outcome(cand.text, 0.8))
        again = c.update(sid, cand.id, outcome(cand.text, 0.8))
        assert first.accepted and not again.accepted and again.reward == first.reward
        assert c.get_search(sid).counts.evaluated == 1
        with pytest.raises(NasrlError) as info:
            c.update(sid, cand.id, outcome(cand.text, 0.3))
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(NasrlError) as info:
            c.update(sid, cand.id, failure="trainer crashed")
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_failure_reports_count_and_repeat(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = create(c, "reinforce")
        cand = c.sample(sid, 1).candidates[0]
        assert c.update(sid, cand.id, failure="CUDA out of memory").accepted
        assert not c.update(sid, cand.id, failure="CUDA out of memory").accepted
        assert c.get_search(sid).counts.failed == 1


def test_errors_name_the_problem(controller: str) -> None:
    with ControllerClient(controller) as c:

        def code_of(fn, *args, **kw) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(NasrlError) as info:
                fn(*args, **kw)
            return info.value.code, str(info.value)

        assert code_of(c.get_search, "nope")[0] == grpc.StatusCode.NOT_FOUND
        assert code_of(c.sample, "nope", 1)[0] == grpc.StatusCode.NOT_FOUND
        code, msg = code_of(c.create_search, agent=cpb.AgentSpec(name="genetic"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown agent 'genetic'" in msg
        code, msg = code_of(
            c.create_search,
            agent=cpb.AgentSpec(name="reinforce", reinforce=cpb.ReinforceSettings(hidden=-4)),
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "hidden" in msg
        code, msg = code_of(
            c.create_search,
            agent=cpb.AgentSpec(name="random", reinforce=cpb.ReinforceSettings(hidden=4)),
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "agent.reinforce" in msg
        code, msg = code_of(c.create_search, dataset="imagenet")
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown dataset" in msg
        code, msg = code_of(c.create_search, budget=-1)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "budget" in msg
        code, msg = code_of(c.create_search, space=cpb.SearchSpace(zoph=cpb.ZophSpace(strides=[0])))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "strides" in msg
        code, msg = code_of(c.create_search, training=tpb.TrainingConfig(epochs=99999))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "epochs" in msg

        sid, other = create(c), create(c)
        cand = c.sample(sid, 1).candidates[0]
        code, msg = code_of(c.update, other, cand.id + 100, outcome(cand.text))
        assert code == grpc.StatusCode.NOT_FOUND and "no candidate" in msg
        code, msg = code_of(c.update, sid, cand.id, outcome(cand.text, float("nan")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "validation_accuracy" in msg
        code, _ = code_of(c.sample, sid, 5000)
        assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_dedup_returns_stored_result_and_spends_no_budget(controller: str) -> None:
    # A space with exactly one network: every sample after the first is a duplicate.
    one = cpb.SearchSpace(
        zoph=cpb.ZophSpace(filter_sizes=[3], strides=[1], filters=[8], max_layers=1)
    )
    with ControllerClient(controller) as c:
        sid = create(c, "random", budget=3, space=one)
        first = c.sample(sid, 1).candidates
        assert len(first) == 1 and first[0].cached is None
        # While it is in flight, the same network is not handed out again.
        assert c.sample(sid, 2).candidates == []
        c.update(sid, first[0].id, outcome(first[0].text, 0.9))
        again = c.sample(sid, 2).candidates
        assert len(again) == 2 and all(x.cached is not None for x in again)
        assert again[0].text == first[0].text
        cached = again[0].cached
        assert cached is not None and cached.validation_accuracy == pytest.approx(0.9)
        s = c.get_search(sid)
        assert s.counts.evaluated == 1 and s.counts.cached >= 2 and s.progress["updates"] >= 3


def test_a_network_proposed_twice_in_one_sample_is_handed_out_once(controller: str) -> None:
    # The second proposal of the same new network in one call must see the first one's
    # lease (recorded in that call after both were prepared) and wait for it.
    one = cpb.SearchSpace(
        zoph=cpb.ZophSpace(filter_sizes=[3], strides=[1], filters=[8], max_layers=1)
    )
    with ControllerClient(controller) as c:
        for screening in (None, cpb.Screening(score="params", factor=3)):
            sid = create(c, "random", budget=3, space=one, screening=screening)
            first = c.sample(sid, 3).candidates
            assert len(first) == 1 and first[0].cached is None
            c.update(sid, first[0].id, outcome(first[0].text, 0.9))
            s = c.get_search(sid)
            assert s.counts.evaluated == 1 and s.counts.in_flight == 0 and s.counts.cached >= 1


def test_expired_lease_is_handed_out_again(clocked_controller: str, clock: FakeClock) -> None:
    with ControllerClient(clocked_controller) as c:
        sid = create(c, budget=2, lease_seconds=1)
        a = c.sample(sid, 2).candidates
        assert all(x.lease_deadline == clock() + 1 for x in a)
        assert len(a) == 2 and c.sample(sid, 1).candidates == []  # budget in flight
        clock.advance(0.5)
        assert c.sample(sid, 1).candidates == []  # the leases still run
        clock.advance(0.7)
        b = c.sample(sid, 2).candidates
        assert sorted(x.id for x in b) == sorted(x.id for x in a)
        assert c.get_search(sid).counts.reissued == 2
        for x in b:
            c.update(sid, x.id, outcome(x.text))
        last = c.sample(sid, 1)
        assert last.done and last.candidates == []
        assert c.get_search(sid).state == SearchStatus.DONE


def test_stop_search(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = create(c)
        cand = c.sample(sid, 1).candidates[0]
        assert c.stop_search(sid).state == SearchStatus.STOPPED
        assert c.sample(sid, 1).done
        assert c.update(sid, cand.id, outcome(cand.text)).accepted  # late reports still count


def test_concurrent_sample_update_from_many_clients(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = create(c, "reinforce", budget=64)
    errors: list[BaseException] = []
    reported: list[int] = []
    # Nothing to hand out while the whole budget is leased: a worker that got nothing waits
    # for another's report (which frees the search to finish) instead of asking again at once.
    reports = threading.Condition()

    def worker() -> None:
        try:
            with ControllerClient(controller) as w:
                while True:
                    with reports:
                        seen = len(reported)
                    batch = w.sample(sid, 1)
                    if batch.done:
                        return
                    for cand in batch.candidates:
                        if cand.cached is None:
                            w.update(sid, cand.id, outcome(cand.text, 0.5))
                            with reports:
                                reported.append(cand.id)
                                reports.notify_all()
                    if not batch.candidates:
                        with reports:
                            reports.wait_for(lambda: len(reported) != seen, timeout=60)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(reported) == len(set(reported)) == 64
    with ControllerClient(controller) as c:
        s = c.get_search(sid)
    assert s.state == SearchStatus.DONE and s.counts.evaluated == 64 and s.counts.in_flight == 0


def test_searches_are_isolated(controller: str) -> None:
    with ControllerClient(controller) as c:
        a, b = create(c, budget=2), create(c, budget=2)
        for x in c.sample(a, 2).candidates:
            c.update(a, x.id, outcome(x.text))
        assert c.get_search(a).state == SearchStatus.DONE
        assert c.get_search(b).counts.sampled == 0 and c.get_search(b).state == SearchStatus.RUNNING


def test_end_to_end_reinforce_on_digits(controller: str, trainer: str) -> None:
    with ControllerClient(controller) as c, TrainerClient(trainer) as t:
        sid = c.create_search(
            agent=cpb.AgentSpec(name="reinforce"),
            dataset="digits",
            budget=6,
            training=tpb.TrainingConfig(epochs=1),
            space=cpb.SearchSpace(zoph=cpb.ZophSpace(filters=[8, 16])),
        ).search_id
        trained = 0
        while True:
            batch = c.sample(sid, 2)
            if batch.done:
                break
            for cand in batch.candidates:
                if cand.cached is None:
                    r = t.train(cand.arch, batch.dataset, batch.training)
                    c.update(sid, cand.id, r)
                    trained += 1
        s = c.get_search(sid)
        board = c.leaderboard(sid)
    assert trained == 6 and s.counts.evaluated == 6 and s.state == SearchStatus.DONE
    assert len(board) == 6 and board[0].accuracy >= board[-1].accuracy > 0
    assert all(e.params > 0 and e.flops > 0 for e in board)
