"""The largest things the services accept: the largest search spaces and counts (a Sample
on them stops at its time budget, and other searches are answered meanwhile), a result of
megabytes, searches whose spaces list a million choices."""

from __future__ import annotations

import threading

import grpc
import pytest

from controller_service.searches import MAX_SAMPLE_SECONDS
from protos import controller_pb2 as cpb

from .conftest import (
    DEADLINE,
    HEAVY,
    LARGE_DEADLINE,
    Controller,
    unary,
    valid_result,
)
from .strategies import MB

LARGEST_METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(
        conv_sizes=range(1, 16),
        conv_filters=range(1, 2049),
        fc_units=range(1, 16385),
        pools=[cpb.PoolChoice(size=k, stride=s) for k in range(1, 16) for s in range(1, 9)],
        max_depth=64,
        max_fc=8,
        fc_max_size=4096,
    )
)
LARGEST_ZOPH = cpb.SearchSpace(
    zoph=cpb.ZophSpace(
        filter_sizes=range(1, 16), strides=range(1, 9), filters=range(1, 2049), max_layers=64
    )
)


def sample_while_reading(
    ctl: Controller, create: cpb.CreateSearchRequest, count: int, deadline: float
) -> list[str]:
    """CreateSearch; if it is accepted, Sample(count) on it. While that Sample is held in its
    proposing loop (by ``ctl.timer``, with its search's lock), a GetSearch of another search
    must be answered; then the Sample's time budget runs out, and it must stop proposing
    instead of going on to ``count`` candidates. The failures: none when the space is
    refused clearly, or when both calls are answered and the Sample stopped."""
    timer = ctl.timer
    assert timer is not None, "a controller with a HoldingTimer (own_ctl)"
    label = f"{create.agent.name} on {create.dataset}, space of {create.space.ByteSize():,} bytes"
    code, search = unary(
        ctl.stub.CreateSearch, create, f"CreateSearch {label}", timeout=LARGE_DEADLINE
    )
    if code != grpc.StatusCode.OK:
        return []  # refused with a clear status: a bounded space is a fix too
    failures: list[str] = []
    answers: list[cpb.SampleResponse] = []
    proposing = threading.Event()  # the Sample is held in its proposing loop, or it is over
    timer.on_hold = proposing.set

    def big() -> None:
        try:
            _, answer = unary(
                ctl.stub.Sample,
                cpb.SampleRequest(search_id=search.search_id, count=count),
                f"Sample(count={count}) {label}",
                timeout=deadline,
            )
            if answer is not None:
                answers.append(answer)
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            proposing.set()

    sampler = threading.Thread(target=big)
    sampler.start()
    proposing.wait()
    try:  # the Sample holds its own search only
        ctl.stub.GetSearch(cpb.GetSearchRequest(search_id=ctl.sid["random"]), timeout=DEADLINE)
    except grpc.RpcError as err:
        failures.append(
            f"GetSearch of another search while Sample(count={count}) {label} "
            f"proposes: {err.code().name}"
        )
    timer.release(MAX_SAMPLE_SECONDS)  # the Sample's time budget is spent
    sampler.join()
    if timer.held and answers and len(answers[0].candidates) >= count:
        failures.append(
            f"Sample(count={count}) {label} went on proposing after its time budget was spent"
        )
    return failures


@pytest.mark.parametrize(
    "agent, space, dataset, count",
    [
        ("random", LARGEST_METAQNN, "cifar10", 30),
        ("reinforce", None, "digits", 1000),  # the default search, the documented maximum count
        ("qlearning", LARGEST_METAQNN, "cifar10", 5),
        ("evolution", LARGEST_METAQNN, "cifar10", 50),
        ("reinforce", LARGEST_ZOPH, "cifar10", 20),
    ],
    ids=[
        "random-largest-metaqnn-30",
        "reinforce-default-1000",
        "qlearning-largest-metaqnn-5",
        "evolution-largest-metaqnn-50",
        "reinforce-largest-zoph-20",
    ],
)
def test_a_big_sample_gives_way_to_other_calls(
    own_ctl: Controller,
    agent: str,
    space: cpb.SearchSpace | None,
    dataset: str,
    count: int,
) -> None:
    """The largest spaces (every value in every list, depth 64; CreateSearch may refuse them
    clearly instead) and the largest count: a GetSearch of another search is answered while
    the Sample proposes, the Sample stops proposing when its time budget is spent and is
    answered, and the database stays intact. (The time budget is a fake clock's: how long
    real proposals take is the benchmarks' business.)"""
    create = cpb.CreateSearchRequest(
        agent=cpb.AgentSpec(name=agent), dataset=dataset, budget=1_000_000
    )
    if space is not None:
        create.space.CopyFrom(space)
    failures = sample_while_reading(own_ctl, create, count, LARGE_DEADLINE)
    # a call answered once the controller is done with anything still running
    own_ctl.stub.GetSearch(cpb.GetSearchRequest(search_id=own_ctl.sid["random"]), timeout=900)
    assert own_ctl.searches.store.integrity_check() == "ok"
    assert not failures, "\n".join(failures)


def test_an_oversized_result_does_not_break_later_samples(serving_ctl: Controller) -> None:
    """A result whose strings hold megabytes (a request under 16 MiB) is refused, or it is
    kept in a way that later Samples can still send: a network already evaluated is handed
    out again with its stored result, so each cached copy carries it."""
    one_network = cpb.SearchSpace(
        zoph=cpb.ZophSpace(max_layers=1, filter_sizes=[1], strides=[1], filters=[4])
    )
    search = serving_ctl.stub.CreateSearch(
        cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="random"), space=one_network, budget=10),
        timeout=DEADLINE,
    )
    cand = serving_ctl.stub.Sample(
        cpb.SampleRequest(search_id=search.search_id, count=1), timeout=DEADLINE
    ).candidates[0]
    result = valid_result(cand.text)
    result.device = "d" * (5 * MB)
    code, _ = unary(
        serving_ctl.stub.Update,
        cpb.UpdateRequest(
            search_id=search.search_id, candidate_id=cand.candidate_id, result=result
        ),
        "Update with a 5 MB device name",
        timeout=LARGE_DEADLINE,
    )
    if code != grpc.StatusCode.OK:
        return  # refused clearly
    code, batch = unary(
        serving_ctl.stub.Sample,
        cpb.SampleRequest(search_id=search.search_id, count=4, request_id="after a 5 MB result"),
        "Sample(count=4) after a 5 MB result",
        timeout=LARGE_DEADLINE,
    )
    assert code == grpc.StatusCode.OK, f"Sample after a 5 MB result: {code.name}"
    assert batch.candidates


@pytest.mark.skipif(not HEAVY, reason="heavy: NASRL_HOSTILE_EXAMPLES=N enables it")
def test_list_searches_survives_searches_with_huge_spaces(serving_ctl: Controller) -> None:
    """Four searches whose MetaQNN space lists 1,000,000 pool choices each (6 MB requests,
    under the 16 MiB limit): ListSearches must still answer."""
    space = cpb.SearchSpace(
        metaqnn=cpb.MetaQNNSpace(pools=[cpb.PoolChoice(size=2, stride=2)] * 1_000_000)
    )
    for _ in range(4):
        unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="random"), space=space, budget=5),
            "CreateSearch with 1,000,000 pools",
            timeout=120,
        )
    code, _ = unary(
        serving_ctl.stub.ListSearches,
        cpb.ListSearchesRequest(),
        "ListSearches after huge spaces",
        timeout=120,
    )
    assert code == grpc.StatusCode.OK
