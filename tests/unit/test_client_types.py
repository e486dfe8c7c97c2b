"""ControllerClient answers with frozen dataclasses, not protos (a stub stands in for the
controller; no server runs)."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import pytest

from nasrl.core import codec
from nasrl.core.results import TrainSettings
from nasrl.core.shapes import InputShape
from nasrl.rpc.client import (
    ControllerClient,
    LeaderboardEntry,
    Search,
    SearchStatus,
    UpdateResult,
)
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc

SETTINGS = TrainSettings(epochs=2, optimizer="adam", seed=7)
ENTRY = cpb.LeaderboardEntry(
    candidate_id=3,
    architecture="C(8,3,1) GAP",
    accuracy=0.5,
    test_accuracy=0.25,
    params=1234,
    flops=5678,
    seconds=1.5,
    reward=0.75,
)
SEARCH = cpb.Search(
    search_id="s1",
    name="first",
    spec=cpb.CreateSearchRequest(
        agent=cpb.AgentSpec(name="reinforce", reinforce=cpb.ReinforceSettings(hidden=35)),
        dataset="bands",
        budget=6,
        training=codec.settings_to_proto(SETTINGS),
        early_stopping=cpb.EarlyStopping(rule="asha"),
        dataset_shape=cpb.DatasetShape(channels=3, height=16, width=16, classes=4),
    ),
    state=cpb.DONE,
    counts=cpb.SearchCounts(sampled=7, in_flight=0, evaluated=5, cached=1, failed=1, reissued=2),
    progress={"updates": 5.0},
    best=ENTRY,
    created=1700000000.0,
)


class Stub:
    def __init__(self, **replies: Any) -> None:
        self.replies = replies

    def __getattr__(self, method: str) -> Any:
        return lambda request, timeout: self.replies[method]


@pytest.fixture
def client() -> ControllerClient:
    c = ControllerClient("127.0.0.1:1")  # never connects: the stub answers
    stub = Stub(
        GetSearch=SEARCH,
        CreateSearch=SEARCH,
        StopSearch=cpb.Search(search_id="s2", state=cpb.STOPPED),
        ListSearches=cpb.ListSearchesResponse(searches=[SEARCH, cpb.Search(search_id="s3")]),
        Leaderboard=cpb.LeaderboardResponse(entries=[ENTRY]),
        Update=cpb.UpdateResponse(accepted=True, reward=0.125, state=cpb.DONE),
    )
    c._stub = cast(controller_pb2_grpc.ControllerStub, stub)  # answers as the real one would
    return c


def test_a_search_is_a_frozen_dataclass(client: ControllerClient) -> None:
    s = client.get_search("s1")
    assert isinstance(s, Search) and s == client.create_search(dataset="bands")
    assert (s.search_id, s.name, s.state, s.created) == ("s1", "first", SearchStatus.DONE, 1.7e9)
    assert dataclasses.astuple(s.counts) == (7, 0, 5, 1, 1, 2)
    assert s.progress == {"updates": 5.0}
    assert s.best == LeaderboardEntry(3, "C(8,3,1) GAP", 0.5, 0.25, 1234, 5678, 1.5, 0.75)
    spec = s.spec
    assert (spec.agent, spec.dataset, spec.budget, spec.early_stopping) == (
        "reinforce",
        "bands",
        6,
        "asha",
    )
    assert spec.training == SETTINGS
    assert spec.dataset_shape == InputShape(3, 16, 16, 4)
    assert spec.request.agent.reinforce.hidden == 35  # everything else, as stored
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "renamed"  # type: ignore[misc]


def test_unset_parts_are_none(client: ControllerClient) -> None:
    stopped = client.stop_search("s2")
    assert stopped.state == SearchStatus.STOPPED and str(stopped.state) == "stopped"
    assert stopped.best is None and stopped.spec.dataset_shape is None
    assert [s.search_id for s in client.list_searches()] == ["s1", "s3"]
    assert client.list_searches()[1].state == SearchStatus.UNKNOWN


def test_leaderboard_entries(client: ControllerClient) -> None:
    (entry,) = client.leaderboard("s1")
    assert isinstance(entry, LeaderboardEntry) and entry.architecture == "C(8,3,1) GAP"
    assert (entry.params, entry.flops, entry.reward) == (1234, 5678, 0.75)


def test_an_update_answers_with_a_dataclass(client: ControllerClient) -> None:
    ack = client.update("s1", 3, failure="out of memory")
    assert ack == UpdateResult(accepted=True, reward=0.125, state=SearchStatus.DONE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ack.accepted = False  # type: ignore[misc]
