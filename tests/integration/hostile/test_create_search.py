"""Hostile CreateSearch requests: hypothesis-built ones, valid ones mutated one field at a
time, duplicate choices; a search that is created must then work."""

from __future__ import annotations

import math

import grpc
from hypothesis import example, given
from hypothesis import strategies as st

from protos import controller_pb2 as cpb

from .conftest import (
    VALID_CREATE,
    VALID_CREATE_Q,
    Controller,
    Shown,
    fuzz,
    show,
    timeout_for,
    unary,
)
from .strategies import create_requests, mutation


@fuzz(80)
@given(req=create_requests().map(Shown))
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(name="qlearning"),
            budget=3,
            space=cpb.SearchSpace(
                metaqnn=cpb.MetaQNNSpace(pools=[cpb.PoolChoice(size=2, stride=2)] * 100_000)
            ),
        )
    )
)
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            space=cpb.SearchSpace(zoph=cpb.ZophSpace(filters=list(range(1, 100_001))))
        )
    )
)
@example(req=Shown(cpb.CreateSearchRequest(lease_seconds=math.nan, seed=-1, budget=-(2**31))))
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(
                name="qlearning",
                qlearning=cpb.QLearningSettings(discount=math.nan, replay=2**31 - 1),
            )
        )
    )
)
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(
                name="reinforce",
                reinforce=cpb.ReinforceSettings(hidden=2**31 - 1, lstm_layers=2**31 - 1),
            )
        )
    )
)
def test_create_search_messages(serving_ctl: Controller, req: Shown) -> None:
    """Hypothesis-built CreateSearch requests; a search that is created must then work."""
    what = f"CreateSearch {show(req.msg)}"
    timeout = timeout_for(req.msg)
    code, search = unary(serving_ctl.stub.CreateSearch, req.msg, what, timeout=timeout)
    if code == grpc.StatusCode.OK:
        assert search.search_id and search.state == cpb.RUNNING, what
        unary(
            serving_ctl.stub.GetSearch,
            cpb.GetSearchRequest(search_id=search.search_id),
            f"GetSearch after {what}",
            timeout=timeout,
        )
        unary(
            serving_ctl.stub.Sample,
            cpb.SampleRequest(search_id=search.search_id, count=2),
            f"Sample after {what}",
            timeout=timeout,
        )
        unary(
            serving_ctl.stub.StopSearch,
            cpb.StopSearchRequest(search_id=search.search_id),
            f"StopSearch after {what}",
            timeout=timeout,
        )


@fuzz(60)
@given(data=st.data())
def test_mutated_create_search(serving_ctl: Controller, data: st.DataObject) -> None:
    """Valid CreateSearch requests with one field made hostile; a created search works."""
    base = data.draw(st.sampled_from([VALID_CREATE, VALID_CREATE_Q]), label="base")
    shown, change = data.draw(mutation(base), label="mutation")
    req = shown.msg
    timeout = timeout_for(req)
    code, search = unary(
        serving_ctl.stub.CreateSearch,
        req,
        f"CreateSearch with {change}",
        timeout=timeout,
    )
    if code == grpc.StatusCode.OK:
        unary(
            serving_ctl.stub.Sample,
            cpb.SampleRequest(search_id=search.search_id, count=3),
            f"Sample after CreateSearch with {change}",
            timeout=timeout,
        )


def test_duplicate_choices_are_refused_in_every_list(serving_ctl: Controller) -> None:
    """Every choice list refuses duplicates, pools included: without the check a 6 MB request
    with 1,000,000 copies of one pool is accepted, costs ~14 s under the controller's lock,
    and every later call that reads the search pays for it again."""
    pool = cpb.PoolChoice(size=2, stride=2)
    for field, space in (
        ("conv_sizes", cpb.MetaQNNSpace(conv_sizes=[3, 3])),
        ("conv_filters", cpb.MetaQNNSpace(conv_filters=[8, 8])),
        ("fc_units", cpb.MetaQNNSpace(fc_units=[16, 16])),
        ("pools", cpb.MetaQNNSpace(pools=[pool, pool])),
    ):
        code, _ = unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(
                agent=cpb.AgentSpec(name="qlearning"), space=cpb.SearchSpace(metaqnn=space)
            ),
            f"CreateSearch with duplicate {field}",
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"duplicate {field}: {code.name}"
