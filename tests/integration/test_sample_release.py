"""A Sample whose caller left before the answer (its deadline passed, or it cancelled) leaves
no lease behind: the candidates go to the next Sample at once, as expired leases do, instead
of sitting idle for ``lease_seconds``. Over a real controller server on loopback; the server
is made slow deterministically: its store holds the first Sample until grpc has ended the
call on the server's side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from controller_service.reports import Result
from controller_service.searches import Searches
from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
from controller_service.states import Status
from controller_service.store import CandidateRow, Store
from nasrl.rpc import rpc
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc
from tests.helpers import FakeClock, outcome

SMALL = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=3, filters=[8, 16]))
LEASE = 3600


class HeldStore(Store):
    """A store whose first ``expired_leases`` (early in a Sample, under the search's lock)
    waits until ``ended`` is set: the test sets it when grpc has ended that call."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.ended = threading.Event()
        self.entered = threading.Event()
        self.waited = False

    def expired_leases(self, search_id: str, before: float, limit: int) -> list[CandidateRow]:
        if not self.entered.is_set():
            self.entered.set()
            self.waited = self.ended.wait(60)
        return super().expired_leases(search_id, before, limit)


class WatchedServicer(ControllerServicer):
    """Sets ``store.ended`` once grpc has ended a Sample call (deadline, cancel or answer)."""

    def __init__(self, searches: Searches, store: HeldStore) -> None:
        super().__init__(searches)
        self.store = store

    def Sample(
        self, request: cpb.SampleRequest, context: grpc.ServicerContext
    ) -> cpb.SampleResponse:
        context.add_callback(self.store.ended.set)
        return super().Sample(request, context)


@dataclass
class Controller:
    stub: controller_pb2_grpc.ControllerStub
    store: HeldStore
    clock: FakeClock


@pytest.fixture()
def controller(tmp_path) -> Iterator[Controller]:
    store = HeldStore(str(tmp_path / "controller.db"))
    clock = FakeClock()
    # a timer that stands still: the held Sample still proposes its whole count afterwards
    searches = Searches(store, clock=clock, timer=FakeClock())
    servicer = WatchedServicer(searches, store)
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        ["nasrl.v1.Controller"],
        request_limits=REQUEST_LIMITS,
    )
    handle.set_serving(True)
    ch = rpc.channel(f"127.0.0.1:{handle.port}")
    yield Controller(controller_pb2_grpc.ControllerStub(ch), store, clock)
    ch.close()
    handle.stop(None)
    store.close()


def _create(c: Controller) -> str:
    search = c.stub.CreateSearch(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(name="random"),
            dataset="digits",
            budget=20,
            space=SMALL,
            lease_seconds=LEASE,
        ),
        timeout=30,
    )
    return str(search.search_id)


def _left_before_the_answer(c: Controller, sid: str, how: str, request_id: str = "") -> None:
    """A Sample of 3 whose caller is gone before the server answers."""
    call = c.stub.Sample.future(
        cpb.SampleRequest(search_id=sid, count=3, request_id=request_id),
        timeout=0.3 if how == "deadline" else 60,
    )
    assert c.store.entered.wait(60)  # the server is in the Sample, holding the search's lock
    if how == "cancel":
        assert call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
    else:
        assert call.exception() is not None  # waits for the client's deadline
        assert call.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def _ids(reply: cpb.SampleResponse) -> list[int]:
    return [cand.candidate_id for cand in reply.candidates]


@pytest.mark.parametrize("how", ["deadline", "cancel"])
def test_a_sample_nobody_received_leaves_no_lease(controller: Controller, how: str) -> None:
    c = controller
    sid = _create(c)
    _left_before_the_answer(c, sid, how)
    # waits for the search's lock, which the abandoned Sample holds until it is done
    reply = c.stub.Sample(cpb.SampleRequest(search_id=sid, count=3), timeout=60)
    assert c.store.waited
    assert _ids(reply) == [1, 2, 3]  # the abandoned Sample's candidates, not new ones
    assert all(cand.lease_deadline == c.clock() + LEASE for cand in reply.candidates)
    counts = c.stub.GetSearch(cpb.GetSearchRequest(search_id=sid), timeout=30).counts
    assert (counts.sampled, counts.in_flight, counts.reissued) == (3, 3, 3)
    # now they are leased to a caller that got them: the next Sample gets new ones
    assert _ids(c.stub.Sample(cpb.SampleRequest(search_id=sid, count=2), timeout=60)) == [4, 5]


def test_a_retry_with_the_request_id_gets_the_released_candidates(controller: Controller) -> None:
    c = controller
    sid = _create(c)
    _left_before_the_answer(c, sid, "deadline", request_id="r1")
    retry = c.stub.Sample(cpb.SampleRequest(search_id=sid, count=3, request_id="r1"), timeout=60)
    assert c.store.waited
    assert _ids(retry) == [1, 2, 3]
    # the retry's answer is the one its request id stands for from now on
    again = c.stub.Sample(cpb.SampleRequest(search_id=sid, count=3, request_id="r1"), timeout=60)
    assert _ids(again) == [1, 2, 3]
    assert [x.lease_deadline for x in again.candidates] == [
        x.lease_deadline for x in retry.candidates
    ]
    other = c.stub.Sample(cpb.SampleRequest(search_id=sid, count=3, request_id="r2"), timeout=60)
    assert _ids(other) == [4, 5, 6]


def test_release_keeps_reported_and_re_leased_candidates(tmp_path) -> None:
    """The store's guard: only a lease still held with exactly the deadline handed out ends."""
    store = Store(tmp_path / "c.db")
    try:
        store.add_search("s", "", {})
        reported, renewed, kept = (
            store.add_candidate("s", f"C({n},3,1)", f"h{n}", {}, Status.LEASED, 100.0)
            for n in (1, 2, 3)
        )
        store.set_request("s", kept, "r1")
        store.finish_candidate("s", reported, Status.DONE, Result(outcome("C(1,3,1)")), 0.5)
        store.renew_lease("s", renewed, 200.0, None)
        assert not store.release_lease("s", reported, 100.0)
        assert not store.release_lease("s", renewed, 100.0)
        assert store.release_lease("s", kept, 100.0)
        assert [x.id for x in store.expired_leases("s", 1.0, 10)] == [kept]
        assert store.by_request("s", "r1") == []
        row = store.candidate("s", reported)
        assert row is not None and row.status == Status.DONE
    finally:
        store.close()
