"""Bytes and sizes at the transport: random and malformed protobuf bytes for every method,
unknown methods, messages over grpc's limit, long values an error sentence quotes, and hostile
calls from many threads at once."""

from __future__ import annotations

import threading

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb

from .conftest import (
    DEADLINE,
    LARGE_DEADLINE,
    TINY_ARCH,
    Controller,
    Trainer,
    fuzz,
    short,
    show,
    stream,
    unary,
)
from .strategies import MB, RAW_MESSAGES, ld

CONTROLLER_METHODS = (
    "CreateSearch",
    "Sample",
    "Update",
    "GetSearch",
    "ListSearches",
    "Leaderboard",
    "StopSearch",
    "ExportQTable",
)


@fuzz(60)
@given(method=st.sampled_from(CONTROLLER_METHODS), data=RAW_MESSAGES)
def test_controller_raw_bytes(serving_ctl: Controller, method: str, data: bytes) -> None:
    """Random and malformed protobuf bytes as the request of every Controller method."""
    unary(
        serving_ctl.raw(method),
        data,
        f"{method} raw {short(repr(data), 80)}",
        raw=True,
    )


@fuzz(30)
@given(data=RAW_MESSAGES)
def test_trainer_raw_bytes(serving_sim: Trainer, data: bytes) -> None:
    """Random and malformed protobuf bytes as a Train request."""
    stream(
        serving_sim.train_raw,
        data,
        f"Train raw {short(repr(data), 80)}",
        raw=True,
    )


def test_raw_bytes_for_unknown_methods(serving_ctl: Controller, serving_sim: Trainer) -> None:
    for channel, name in (
        (serving_ctl.channel, "/nasrl.v1.Controller/Nope"),
        (serving_sim.channel, "/nasrl.v1.Trainer/Nope"),
        (serving_ctl.channel, "/nasrl.v1.Nope/Train"),
    ):
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            name, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as err:
            call(b"\x08\x01", timeout=DEADLINE)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_messages_over_16_mib_are_refused_by_grpc(
    serving_ctl: Controller, serving_sim: Trainer
) -> None:
    """Over the servers' 16 MiB limit grpc itself answers RESOURCE_EXHAUSTED."""
    big = ld(9, b"n" * (16 * MB + 1))  # CreateSearchRequest.name
    code, _ = unary(
        serving_ctl.raw("CreateSearch"),
        big,
        "CreateSearch 16 MiB name",
        timeout=LARGE_DEADLINE,
        raw=True,
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    arch = apb.Architecture(layers=[apb.Layer(gap=apb.GAP(), inputs=[-1] * 1_700_000)])
    assert arch.ByteSize() > 16 * MB
    code, _ = stream(
        serving_sim.stub.Train,
        tpb.TrainRequest(architecture=arch, dataset="digits"),
        "Train 16 MiB skip list",
        timeout=LARGE_DEADLINE,
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


ECHOED = {
    # id: (service, method, request) with a field whose value an error sentence may quote
    "dataset-1MB": ("controller", "CreateSearch", cpb.CreateSearchRequest(dataset="x" * MB)),
    "dataset-5000-emoji": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(dataset="\U0001f600" * 5000),
    ),
    "agent-1MB": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="a" * MB)),
    ),
    "space-name-20k": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(space=cpb.SearchSpace(name="z" * 20_000)),
    ),
    "zoph-filters-10k": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(space=cpb.SearchSpace(zoph=cpb.ZophSpace(filters=[1] * 10_000))),
    ),
    "name-1MB": ("controller", "CreateSearch", cpb.CreateSearchRequest(name="n" * MB)),
    "sample-id-1MB": ("controller", "Sample", cpb.SampleRequest(search_id="s" * MB, count=1)),
    "request-id-1MB": (
        "controller",
        "Sample",
        cpb.SampleRequest(search_id="abc", count=1, request_id="r" * MB),
    ),
    "update-id-1MB": (
        "controller",
        "Update",
        cpb.UpdateRequest(search_id="u" * MB, candidate_id=1, failure="f"),
    ),
    "leaderboard-id-1MB": ("controller", "Leaderboard", cpb.LeaderboardRequest(search_id="l" * MB)),
    "train-dataset-1MB": (
        "trainer",
        "Train",
        tpb.TrainRequest(dataset="x" * MB, architecture=TINY_ARCH),
    ),
    "train-10k-inputs": (
        "trainer",
        "Train",
        tpb.TrainRequest(
            dataset="digits",
            architecture=apb.Architecture(
                layers=[apb.Layer(gap=apb.GAP(), inputs=list(range(10_000)))]
            ),
        ),
    ),
    "train-3k-duplicate-inputs": (
        "trainer",
        "Train",
        tpb.TrainRequest(
            dataset="digits",
            architecture=apb.Architecture(layers=[apb.Layer(gap=apb.GAP(), inputs=[0] * 3_000)]),
        ),
    ),
}


@pytest.mark.parametrize("case", list(ECHOED))
def test_long_values_get_the_servers_own_status(
    serving_ctl: Controller, serving_sim: Trainer, case: str
) -> None:
    """A long or repeated value the error sentence quotes: the caller still gets the server's
    status and sentence, not grpc's 'metadata size exceeds hard limit' (which also turns
    INVALID_ARGUMENT into RESOURCE_EXHAUSTED, the code for 'retry later')."""
    service, method, request_msg = ECHOED[case]
    what = f"{method} {show(request_msg, 100)}"
    if service == "trainer":
        code, _ = stream(serving_sim.stub.Train, request_msg, what, timeout=LARGE_DEADLINE)
    else:
        code, _ = unary(
            getattr(serving_ctl.stub, method),
            request_msg,
            what,
            timeout=LARGE_DEADLINE,
        )
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), what


def test_concurrent_hostile_calls(serving_ctl: Controller, serving_sim: Trainer) -> None:
    """Hostile calls from eight threads at once, on both services; every one is answered."""
    sids = list(serving_ctl.sid.values())
    junk: list[tuple[str, Message]] = [
        ("CreateSearch", cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="é" * 50), budget=-1)),
        ("Sample", cpb.SampleRequest(search_id=sids[0], count=-5, request_id="x" * 65)),
        ("Update", cpb.UpdateRequest(search_id=sids[1], candidate_id=-1, failure="\x00")),
        ("Leaderboard", cpb.LeaderboardRequest(search_id=sids[2], top=2**31 - 1)),
        ("ExportQTable", cpb.ExportQTableRequest(search_id=sids[0])),
        ("GetSearch", cpb.GetSearchRequest(search_id="\u202e" * 64)),
        ("StopSearch", cpb.StopSearchRequest(search_id="nope")),
        (
            "Train",
            tpb.TrainRequest(
                dataset="digits",
                architecture=apb.Architecture(
                    layers=[apb.Layer(pool=apb.Pool(kernel=-1, stride=2**31 - 1))]
                ),
            ),
        ),
    ]
    errors: list[str] = []

    def worker(offset: int) -> None:
        for i in range(len(junk)):
            method, req = junk[(i + offset) % len(junk)]
            try:
                if method == "Train":
                    stream(serving_sim.stub.Train, req, "concurrent Train")
                else:
                    unary(
                        getattr(serving_ctl.stub, method),
                        req,
                        f"concurrent {method}",
                    )
            except AssertionError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
