"""Hostile requests for the Katib Suggestion adapter's methods (GetSuggestions,
ValidateAlgorithmSettings), over real gRPC to an adapter with a real controller behind it:
hypothesis-built experiments and trials, valid requests mutated one field at a time, hostile
trials of a real experiment (labels, conditions, metrics), raw bytes, and the largest spaces
and counts. Every call is answered OK or with a clear status (never UNKNOWN, nor INTERNAL),
nothing is logged at ERROR or with a traceback, and the adapter still serves a valid
experiment afterwards."""

from __future__ import annotations

import itertools
import json
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from katib_adapter.plan import ARCH_PARAM
from katib_adapter.trials import CANDIDATE_LABEL
from nasrl.core.arch import parse
from protos import katib_api_pb2 as kpb

from .conftest import (
    KatibAdapter,
    Shown,
    fuzz,
    short,
    show,
    timeout_for,
    unary,
    valid_experiment,
)
from .katib_strategies import (
    bounded_mutation,
    experiments,
    request_numbers,
    trial_lists,
)
from .strategies import RAW_MESSAGES

KNOWN_NAMES = ("hostile-a", "hostile-b")  # experiments the fuzzers share (their searches exist)
_fresh = itertools.count(1)


def call(katib: KatibAdapter, method: str, req: Message, what: str) -> tuple[grpc.StatusCode, Any]:
    """One call, its status checked (see ``check_status``), and nothing logged at ERROR or
    with a traceback while it ran."""
    code, reply = unary(getattr(katib.stub, method), req, what, timeout=timeout_for(req))
    if currently_in_test_context():  # --hypothesis-show-statistics: how far inputs got
        event(f"{method} {code.name}")
    logged = katib.errors.take()
    assert not logged, f"{what}: answered {code.name} and logged {logged[:3]}"
    if code == grpc.StatusCode.OK and method == "GetSuggestions":
        _check_reply(reply, req, what)
    return code, reply


def _check_reply(reply: kpb.GetSuggestionsReply, req: Any, what: str) -> None:
    assert len(reply.parameter_assignments) <= max(req.current_request_number, 0), what
    for a in reply.parameter_assignments:
        values = {x.name: x.value for x in a.assignments}
        parse(values[ARCH_PARAM])
        assert a.labels[CANDIDATE_LABEL].isdecimal(), what
        for name in ("architecture", "nn_config"):
            if name in values:
                json.loads(values[name])


def _requests(katib: KatibAdapter) -> st.SearchStrategy[tuple[str, Shown]]:
    get = st.builds(
        kpb.GetSuggestionsRequest,
        experiment=experiments(KNOWN_NAMES),
        trials=trial_lists(),
        current_request_number=request_numbers(),
        total_request_number=request_numbers(),
    )
    validate = st.builds(kpb.ValidateAlgorithmSettingsRequest, experiment=experiments(KNOWN_NAMES))
    requests: st.SearchStrategy[tuple[str, Message]] = st.one_of(
        st.tuples(st.just("GetSuggestions"), get),
        st.tuples(st.just("ValidateAlgorithmSettings"), validate),
    )
    return requests.map(lambda t: (t[0], Shown(t[1])))


@fuzz(100)
@given(data=st.data())
def test_katib_messages(serving_katib: KatibAdapter, data: st.DataObject) -> None:
    """Hypothesis-built experiments and trials for both methods."""
    method, shown = data.draw(_requests(serving_katib), label="request")
    call(serving_katib, method, shown.msg, f"{method} {show(shown.msg)}")


def _base(which: str) -> Message:
    exp = valid_experiment(KNOWN_NAMES[which.endswith("Nas")], nas=which.endswith("Nas"))
    if which.startswith("Validate"):
        return kpb.ValidateAlgorithmSettingsRequest(experiment=exp)
    trial = kpb.Trial(name="t-1")
    trial.spec.labels[CANDIDATE_LABEL] = "1"
    trial.status.condition = kpb.TrialStatus.SUCCEEDED
    trial.status.observation.metrics.add(name="accuracy", value="0.5")
    return kpb.GetSuggestionsRequest(
        experiment=exp, trials=[trial], current_request_number=1, total_request_number=1
    )


@fuzz(100)
@given(data=st.data())
def test_mutated_katib_requests(serving_katib: KatibAdapter, data: st.DataObject) -> None:
    """Valid requests (a Zoph experiment, and one with a nasConfig) with one field made
    hostile; the mutated request is repeated, as Katib repeats a call it got no answer to."""
    which = data.draw(
        st.sampled_from(["GetSuggestions", "GetSuggestionsNas", "Validate", "ValidateNas"]),
        label="base",
    )
    shown, change = data.draw(bounded_mutation(_base(which)), label="mutation")
    method = "GetSuggestions" if which.startswith("Get") else "ValidateAlgorithmSettings"
    for attempt in ("", "repeated "):
        call(serving_katib, method, shown.msg, f"{attempt}{which} with {change}")


@fuzz(50)
@given(data=st.data(), nas=st.booleans())
def test_hostile_trials_of_a_real_experiment(
    serving_katib: KatibAdapter, data: st.DataObject, nas: bool
) -> None:
    """A fresh experiment hands out three candidates; its trials come back with hostile labels,
    conditions and metrics. Then a valid report of another candidate still reaches the search."""
    exp = valid_experiment(f"hostile-trials-{next(_fresh)}", nas=nas, budget=50)
    code, first = call(
        serving_katib,
        "GetSuggestions",
        kpb.GetSuggestionsRequest(experiment=exp, current_request_number=3, total_request_number=3),
        "GetSuggestions for a fresh experiment",
    )
    assert code == grpc.StatusCode.OK and len(first.parameter_assignments) == 3
    ids = tuple(int(a.labels[CANDIDATE_LABEL]) for a in first.parameter_assignments)
    hostile = data.draw(trial_lists(ids[:2]), label="trials")
    req = kpb.GetSuggestionsRequest(
        experiment=exp,
        trials=hostile,
        current_request_number=data.draw(st.sampled_from([0, 1, 2]), label="count"),
        total_request_number=4,
    )
    what = f"GetSuggestions with {show(req)}"
    taken, _ = call(serving_katib, "GetSuggestions", req, what)
    valid = kpb.Trial(name="the valid one")
    valid.spec.labels[CANDIDATE_LABEL] = str(ids[2])
    valid.status.condition = kpb.TrialStatus.SUCCEEDED
    valid.status.observation.metrics.add(name="accuracy", value="0.75")
    code, _ = call(
        serving_katib,
        "GetSuggestions",
        kpb.GetSuggestionsRequest(experiment=exp, trials=[valid], total_request_number=5),
        "a valid report after the hostile trials",
    )
    assert code == grpc.StatusCode.OK
    (search,) = [s for s in serving_katib.client.list_searches() if s.name == f"katib:{exp.name}"]
    board = {e.candidate_id: e for e in serving_katib.client.leaderboard(search.search_id, top=10)}
    assert board.get(ids[2]) is not None, "the valid report did not reach the search"
    for entry in board.values():
        assert 0 <= entry.accuracy <= 1 and entry.params >= 0 and entry.flops >= 0, board
    if taken == grpc.StatusCode.OK:  # the hostile trials were taken: their results are there
        for cid, accuracy in _results(hostile, ids[:2]).items():
            got = board[cid].accuracy if cid in board else None
            assert got == pytest.approx(accuracy), f"candidate {cid}: {got} after {what}"


_FINISHED = {
    kpb.TrialStatus.SUCCEEDED,
    kpb.TrialStatus.EARLYSTOPPED,
    kpb.TrialStatus.FAILED,
    kpb.TrialStatus.KILLED,
    kpb.TrialStatus.METRICSUNAVAILABLE,
}


def _results(trials: list[kpb.Trial], ids: tuple[int, ...]) -> dict[int, float | None]:
    """The accuracy each candidate should have on the leaderboard after ``trials`` (None:
    not there), from the first finished trial labelled with it (Katib's view: a succeeded or
    early-stopped trial with an accuracy in [0, 1] is a result, any other a failure)."""
    out: dict[int, float | None] = {}
    for t in trials:
        label = t.spec.labels.get(CANDIDATE_LABEL, "")
        if not (label.isascii() and label.isdigit()) or int(label) not in ids:
            continue
        cid = int(label)
        if cid in out or t.status.condition not in _FINISHED:
            continue
        out[cid] = None
        text = {m.name: m.value for m in t.status.observation.metrics}.get("accuracy")
        if t.status.condition in (kpb.TrialStatus.SUCCEEDED, kpb.TrialStatus.EARLYSTOPPED):
            try:
                value = float(text) if text is not None else None
            except ValueError:
                value = None
            if value is not None and 0 <= value <= 1:
                out[cid] = value
    return out


@fuzz(40)
@given(method=st.sampled_from(["GetSuggestions", "ValidateAlgorithmSettings"]), data=RAW_MESSAGES)
def test_katib_raw_bytes(serving_katib: KatibAdapter, method: str, data: bytes) -> None:
    """Random and malformed protobuf bytes as the request of both methods."""
    unary(serving_katib.raw(method), data, f"{method} raw {short(repr(data), 80)}", raw=True)
    logged = serving_katib.errors.take()
    assert not logged, f"{method} raw {short(repr(data), 80)}: logged {logged[:3]}"


@pytest.mark.parametrize(
    "label", [str(10**30), str(2**63), "²", "٣", "9" * 4301, "-1", "1.0", " 1", ""]
)
def test_a_label_no_candidate_id_can_be_is_invalid_argument(
    serving_katib: KatibAdapter, label: str
) -> None:
    """A finished trial whose nasrl-candidate label is not a candidate id (a whole number
    from 0 to 2**63 - 1): INVALID_ARGUMENT naming the trial and the label."""
    trial = kpb.Trial(name="trial-with-a-bad-label")
    trial.spec.labels[CANDIDATE_LABEL] = label
    trial.status.condition = kpb.TrialStatus.SUCCEEDED
    trial.status.observation.metrics.add(name="accuracy", value="0.5")
    req = kpb.GetSuggestionsRequest(
        experiment=valid_experiment(KNOWN_NAMES[0]), trials=[trial], current_request_number=1
    )
    code, _ = call(serving_katib, "GetSuggestions", req, f"label {short(label, 40)!r}")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
