"""Hostile requests for the Controller's other methods (Sample, Update, GetSearch,
Leaderboard, StopSearch, ExportQTable), aimed at real searches, and a valid Sample/Update round
with one request mutated; the search still takes a valid report afterwards."""

from __future__ import annotations

import math
from typing import Any

import grpc
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from protos import controller_pb2 as cpb

from .conftest import (
    LARGE_DEADLINE,
    SMALL_METAQNN,
    SMALL_ZOPH,
    Controller,
    Shown,
    fuzz,
    show,
    timeout_for,
    unary,
    valid_result,
    valid_round,
)
from .strategies import int32s, mutation, search_ids, texts, update_requests

SAFE_COUNT = 5  # larger counts go to unknown ids: the shared searches' budgets are not spent


def _ctl_requests(ctl: Controller) -> st.SearchStrategy[tuple[str, Shown]]:
    sids = list(ctl.sid.values())
    sid = search_ids(sids)
    requests: st.SearchStrategy[tuple[str, Message]] = st.one_of(
        st.tuples(
            st.just("Sample"),
            st.builds(
                cpb.SampleRequest,
                search_id=sid,
                count=st.one_of(st.sampled_from([0, 1, 2, 1000, 1001, -1]), int32s()),
                request_id=texts(),
                reclaim=st.booleans(),
            ),
        ),
        st.tuples(st.just("Update"), update_requests(sids)),
        st.tuples(st.just("GetSearch"), st.builds(cpb.GetSearchRequest, search_id=sid)),
        st.tuples(
            st.just("Leaderboard"),
            st.builds(
                cpb.LeaderboardRequest,
                search_id=sid,
                top=st.one_of(st.sampled_from([0, 1, -1, 1000, 1001]), int32s()),
            ),
        ),
        st.tuples(st.just("ExportQTable"), st.builds(cpb.ExportQTableRequest, search_id=sid)),
        st.tuples(st.just("ListSearches"), st.just(cpb.ListSearchesRequest())),
        # StopSearch on anything but the shared searches (they must keep running).
        st.tuples(st.just("StopSearch"), st.builds(cpb.StopSearchRequest, search_id=texts())),
    )
    return requests.map(lambda t: (t[0], Shown(t[1])))


@fuzz(120)
@given(data=st.data())
def test_controller_messages(serving_ctl: Controller, data: st.DataObject) -> None:
    """Hypothesis-built requests of every other Controller method, aimed at real searches."""
    method, shown = data.draw(_ctl_requests(serving_ctl), label="request")
    req: Any = shown.msg
    if method == "Sample" and req.count > SAFE_COUNT and req.search_id in serving_ctl.sid.values():
        req.search_id += "-x"
    if method == "StopSearch" and req.search_id in serving_ctl.sid.values():
        req.search_id += "-x"
    what = f"{method} {show(req)}"
    code, response = unary(getattr(serving_ctl.stub, method), req, what, timeout=timeout_for(req))
    if code == grpc.StatusCode.OK and method == "Leaderboard":
        assert len(response.entries) <= (req.top or 10), what


def test_sample_with_the_largest_count(serving_ctl: Controller) -> None:
    """count 1,000 (the maximum) with a 64-character unicode request id, twice."""
    for agent, space in (("random", SMALL_ZOPH), ("qlearning", SMALL_METAQNN)):
        code, search = unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(
                agent=cpb.AgentSpec(name=agent),
                space=space,
                budget=1_000,
                seed=2**63 - 1,
                name="\U0001f600" * 200,
            ),
            f"CreateSearch {agent}",
        )
        assert code == grpc.StatusCode.OK
        first = None
        for _ in range(2):
            code, batch = unary(
                serving_ctl.stub.Sample,
                cpb.SampleRequest(search_id=search.search_id, count=1000, request_id="é" * 64),
                f"Sample 1000 {agent}",
                timeout=LARGE_DEADLINE,
            )
            assert code == grpc.StatusCode.OK
            ids = [c.candidate_id for c in batch.candidates]
            assert first is None or ids == first, "a retried request id handed out new candidates"
            first = ids
        unary(
            serving_ctl.stub.StopSearch,
            cpb.StopSearchRequest(search_id=search.search_id),
            f"StopSearch {agent}",
        )


@fuzz(60)
@given(data=st.data())
def test_mutated_sample_update_round(serving_ctl: Controller, data: st.DataObject) -> None:
    """A valid CreateSearch -> Sample -> Update round with one request mutated one field at a
    time; the hostile request is repeated (idempotence), then the search still takes a valid
    report and its leaderboard holds only sane values."""
    sid, batch = valid_round(serving_ctl)
    cand = batch.candidates[0]
    which = data.draw(
        st.sampled_from(
            [
                "Sample",
                "Update",
                "UpdateFailure",
                "Leaderboard",
                "GetSearch",
                "StopSearch",
                "ExportQTable",
            ]
        ),
        label="rpc",
    )
    base: Message
    if which == "Sample":
        base = cpb.SampleRequest(search_id=sid, count=1, request_id="second")
    elif which == "Update":
        base = cpb.UpdateRequest(
            search_id=sid, candidate_id=cand.candidate_id, result=valid_result(cand.text)
        )
    elif which == "UpdateFailure":
        base = cpb.UpdateRequest(
            search_id=sid, candidate_id=cand.candidate_id, failure="out of memory"
        )
    elif which == "Leaderboard":
        base = cpb.LeaderboardRequest(search_id=sid, top=5)
    elif which == "GetSearch":
        base = cpb.GetSearchRequest(search_id=sid)
    elif which == "StopSearch":
        base = cpb.StopSearchRequest(search_id=sid)
    else:
        base = cpb.ExportQTableRequest(search_id=sid)
    shown, change = data.draw(mutation(base), label="mutation")
    req = shown.msg
    method = "Update" if which.startswith("Update") else which
    timeout = timeout_for(req)
    what = f"{which} with {change}"
    for attempt in ("", "repeated ") if method in ("Update", "Sample") else ("",):
        unary(getattr(serving_ctl.stub, method), req, attempt + what, timeout=timeout)
    other = batch.candidates[1]
    code, ack = unary(
        serving_ctl.stub.Update,
        cpb.UpdateRequest(
            search_id=sid, candidate_id=other.candidate_id, result=valid_result(other.text, 0.7)
        ),
        f"valid Update after {what}",
    )
    assert code == grpc.StatusCode.OK and ack.accepted, f"valid Update after {what}: {code}"
    code, board = unary(
        serving_ctl.stub.Leaderboard,
        cpb.LeaderboardRequest(search_id=sid, top=10),
        f"Leaderboard after {what}",
    )
    assert code == grpc.StatusCode.OK and board.entries
    for entry in board.entries:
        assert 0 <= entry.accuracy <= 1 and math.isfinite(entry.reward), what


def test_identical_hostile_reports_stay_idempotent(serving_ctl: Controller) -> None:
    """A report whose curve holds NaN and inf (kept as they came) repeated verbatim is
    acknowledged as a repeat, not refused as a different report."""
    sid, batch = valid_round(serving_ctl)
    cand = batch.candidates[0]
    result = valid_result(cand.text)
    result.curve[0].train_loss = math.nan
    result.curve[0].seconds = math.inf
    req = cpb.UpdateRequest(search_id=sid, candidate_id=cand.candidate_id, result=result)
    code, first = unary(serving_ctl.stub.Update, req, "Update with NaN loss in the curve")
    assert code == grpc.StatusCode.OK and first.accepted
    code, again = unary(serving_ctl.stub.Update, req, "the same Update repeated")
    assert code == grpc.StatusCode.OK, f"a verbatim repeat was refused with {code.name}"
    assert not again.accepted
