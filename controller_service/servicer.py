"""The Controller gRPC servicer: messages in and out, domain errors to status codes."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from controller_service import codec
from controller_service.children import list_children
from controller_service.searches import (
    BadReport,
    BadRequest,
    CandidateNotFound,
    NoQTable,
    ReportConflict,
    Searches,
    SearchNotFound,
)
from controller_service.spec import SpecError
from controller_service.stopping import Decision
from controller_service.store import StoreError
from nasrl.core import codec as nasrl_codec
from nasrl.core.results import SettingsError
from nasrl.rpc import rpc
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc

__all__ = ["ControllerServicer", "REQUEST_LIMITS"]

log = logging.getLogger(__name__)

R = TypeVar("R")
_SERVICE = "/nasrl.v1.Controller/"
KIB = 1024
#: request sizes each RPC needs (results are small: a 1,000-epoch curve is ~40 KB); bigger
#: requests are refused before they are parsed
REQUEST_LIMITS = {
    _SERVICE + "CreateSearch": 4096 * KIB,  # up to 1,000 warm-start networks in text
    _SERVICE + "Update": 1024 * KIB,
    **{
        _SERVICE + m: 64 * KIB
        for m in (
            "Sample",
            "Report",
            "GetSearch",
            "ListSearches",
            "Leaderboard",
            "StopSearch",
            "ExportQTable",
            "ListChildren",
        )
    },
}
MAX_ID = 64
MAX_TOP = 1000


class Busy(RuntimeError):
    """More Controller calls are in progress than the controller admits at once."""


def _status(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, Busy):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, (SearchNotFound, CandidateNotFound)):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, (SpecError, SettingsError, BadRequest)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, (ReportConflict, NoQTable)):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, StoreError):
        return grpc.StatusCode.UNAVAILABLE
    return None


def rpc_errors(method: Callable[..., R]) -> Callable[..., R]:
    """Admission control, then domain errors to status codes with the error's sentence."""

    @functools.wraps(method)
    def wrapper(self: ControllerServicer, request: Any, context: grpc.ServicerContext) -> R:
        try:
            with self.admit(str(getattr(request, "search_id", ""))):
                return method(self, request, context)
        except Exception as exc:
            code = _status(exc)
            if code is None:
                log.exception("%s failed", method.__name__)
                rpc.abort(context, grpc.StatusCode.INTERNAL, f"{method.__name__} failed: {exc}")
            rpc.abort(context, code, str(exc))

    return wrapper


def _search_id(value: str) -> str:
    if not value:
        raise BadRequest("search_id is required")
    if len(value) > MAX_ID:
        raise SearchNotFound(f"no search with id {value[:MAX_ID]!r}...; ids are short")
    return value


def _gone(context: grpc.ServicerContext) -> bool:
    """The caller will not receive the answer: it cancelled, or its deadline has passed."""
    left = context.time_remaining()
    return not context.is_active() or (left is not None and left <= 0)


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    """``max_active`` bounds the Controller calls served at once, and half of it the
    calls on any one search (calls on a search run one at a time, so more would only wait);
    one more is refused at once with RESOURCE_EXHAUSTED instead of waiting for a thread, so
    that a burst never queues ahead of health checks (which the same server answers on
    threads left free) and a busy search never takes every thread from the others."""

    def __init__(self, searches: Searches, max_active: int | None = None) -> None:
        self.searches = searches
        self.max_active = max_active
        self.per_search = max(1, max_active // 2) if max_active else None
        self._active = 0
        self._per_search: dict[str, int] = {}
        self._admission = threading.Lock()

    @contextlib.contextmanager
    def admit(self, search_id: str = "") -> Iterator[None]:
        if self.max_active is None or self.per_search is None:
            yield
            return
        with self._admission:
            if self._active >= self.max_active:
                raise Busy(
                    f"the controller is serving {self.max_active} calls already; retry "
                    "with backoff (nasrl's runner does)"
                )
            if search_id and self._per_search.get(search_id, 0) >= self.per_search:
                raise Busy(
                    f"search {search_id[:64]} has {self.per_search} calls in progress already "
                    "(they run one at a time); retry with backoff (nasrl's runner does)"
                )
            self._active += 1
            if search_id:
                self._per_search[search_id] = self._per_search.get(search_id, 0) + 1
        try:
            yield
        finally:
            with self._admission:
                self._active -= 1
                if search_id:
                    left = self._per_search[search_id] - 1
                    if left:
                        self._per_search[search_id] = left
                    else:
                        del self._per_search[search_id]

    def _search(self, search_id: str) -> cpb.Search:
        view = self.searches.view(search_id)
        return codec.search_to_proto(view)

    @rpc_errors
    def CreateSearch(
        self, request: cpb.CreateSearchRequest, context: grpc.ServicerContext
    ) -> cpb.Search:
        view = self.searches.create(codec.spec_from_proto(request))
        return codec.search_to_proto(view)

    @rpc_errors
    def Sample(
        self, request: cpb.SampleRequest, context: grpc.ServicerContext
    ) -> cpb.SampleResponse:
        search_id = _search_id(request.search_id)
        left = context.time_remaining()
        budget = None if left is None else max(0.1, left - 0.5)  # answer within the deadline
        handouts, done = self.searches.sample(
            search_id,
            request.count or 1,
            request.request_id,
            request.reclaim,
            budget,
            abandoned=lambda: _gone(context),
        )
        spec = self.searches.spec(search_id)  # dataset and training, not the whole view
        return cpb.SampleResponse(
            candidates=[codec.handout_to_proto(h) for h in handouts],
            done=done,
            dataset=spec.dataset,
            training=nasrl_codec.settings_to_proto(spec.training),
        )

    @rpc_errors
    def Report(
        self, request: cpb.ReportRequest, context: grpc.ServicerContext
    ) -> cpb.ReportResponse:
        decision = self.searches.report(
            _search_id(request.search_id),
            request.candidate_id,
            request.epoch,
            request.validation_accuracy,
        )
        return cpb.ReportResponse(decision=cpb.STOP if decision is Decision.STOP else cpb.CONTINUE)

    @rpc_errors
    def Update(
        self, request: cpb.UpdateRequest, context: grpc.ServicerContext
    ) -> cpb.UpdateResponse:
        search_id = _search_id(request.search_id)
        kind = request.WhichOneof("outcome")
        if kind is None:
            raise BadReport("an Update needs either result or failure")
        outcome = nasrl_codec.outcome_from_proto(request.result) if kind == "result" else None
        ack = self.searches.update(
            search_id, request.candidate_id, outcome, request.failure if kind == "failure" else None
        )
        return cpb.UpdateResponse(
            accepted=ack.accepted, reward=ack.reward or 0.0, state=codec.state_to_proto(ack.state)
        )

    @rpc_errors
    def GetSearch(self, request: cpb.GetSearchRequest, context: grpc.ServicerContext) -> cpb.Search:
        return self._search(_search_id(request.search_id))

    @rpc_errors
    def ListSearches(
        self, request: cpb.ListSearchesRequest, context: grpc.ServicerContext
    ) -> cpb.ListSearchesResponse:
        return cpb.ListSearchesResponse(
            searches=[codec.search_to_proto(v) for v in self.searches.all()]
        )

    @rpc_errors
    def Leaderboard(
        self, request: cpb.LeaderboardRequest, context: grpc.ServicerContext
    ) -> cpb.LeaderboardResponse:
        top = request.top or 10
        if not 1 <= top <= MAX_TOP:
            raise BadRequest(f"top must be between 1 and {MAX_TOP}, got {top}")
        rows = self.searches.leaderboard(_search_id(request.search_id), top, request.pareto)
        return cpb.LeaderboardResponse(entries=[codec.entry_to_proto(r) for r in rows])

    @rpc_errors
    def ExportQTable(
        self, request: cpb.ExportQTableRequest, context: grpc.ServicerContext
    ) -> cpb.QTable:
        rows, q_init = self.searches.q_table(_search_id(request.search_id))
        return cpb.QTable(
            values=[cpb.QValue(state=s, action=a, value=v) for s, a, v in rows], q_init=q_init
        )

    @rpc_errors
    def StopSearch(
        self, request: cpb.StopSearchRequest, context: grpc.ServicerContext
    ) -> cpb.Search:
        view = self.searches.stop(_search_id(request.search_id))
        return codec.search_to_proto(view)

    @rpc_errors
    def ListChildren(
        self, request: cpb.ListChildrenRequest, context: grpc.ServicerContext
    ) -> cpb.ListChildrenResponse:
        children, more = list_children(
            self.searches,
            _search_id(request.search_id),
            request.after_candidate_id,
            request.limit,
            request.detail,
        )
        return cpb.ListChildrenResponse(
            children=[codec.child_to_proto(c) for c in children], more=more
        )
