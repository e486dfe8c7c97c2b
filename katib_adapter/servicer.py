"""The Katib Suggestion servicer: Katib's messages in, nasrl controller calls out, status codes
for what goes wrong. Each GetSuggestions call (1) finds the experiment's search, creating it on
the first call, (2) reports every newly finished trial with Update, (3) samples new
candidates. Nothing is kept but caches: a restarted adapter finds the search by name, repeats
Updates (idempotent on the controller) and, for a repeated call, gets the same candidates
(Sample's request id is derived from the call)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from katib_adapter import enas
from katib_adapter.plan import ARCH_PARAM, KatibError, Plan, plan, request_id
from katib_adapter.trials import CANDIDATE_LABEL, updates
from nasrl.core import codec
from nasrl.rpc.client import ControllerClient, NasrlError, Search
from nasrl.rpc.rpc import abort
from protos import controller_pb2 as cpb
from protos import katib_api_pb2 as kpb
from protos import katib_api_pb2_grpc as kpb_grpc

__all__ = ["SuggestionServicer"]

log = logging.getLogger(__name__)

MAX_SAMPLES = 200  # Sample calls per GetSuggestions before answering with fewer
MAX_SUGGESTIONS = 100  # per reply; Katib asks again for the rest (see plan.MAX_EMBEDDING)
_PASS_ON = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)  # a busy controller: Katib retries the call


class SuggestionServicer(kpb_grpc.SuggestionServicer):
    def __init__(
        self, controller: ControllerClient, answer_within: float = 50.0, update_threads: int = 8
    ) -> None:
        self.c = controller
        self.answer_within = answer_within  # Katib gives GetSuggestions 60 s
        self._pool = ThreadPoolExecutor(update_threads, thread_name_prefix="update")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._searches: dict[str, str] = {}  # experiment -> search id (a cache)
        self._reported: dict[str, set[int]] = {}  # search id -> candidates reported (a cache)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def ValidateAlgorithmSettings(
        self, request: kpb.ValidateAlgorithmSettingsRequest, context: grpc.ServicerContext
    ) -> kpb.ValidateAlgorithmSettingsReply:
        try:
            plan(request.experiment)
        except KatibError as exc:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return kpb.ValidateAlgorithmSettingsReply()

    def GetSuggestions(
        self, request: kpb.GetSuggestionsRequest, context: grpc.ServicerContext
    ) -> kpb.GetSuggestionsReply:
        began = time.monotonic()
        try:
            p = plan(request.experiment)
            finished = updates(request.trials, p.metric)
            if request.current_request_number < 0:
                raise KatibError(
                    f"current_request_number is {request.current_request_number}; "
                    "the number of trials to suggest cannot be negative"
                )
        except KatibError as exc:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            with self._lock(request.experiment.name):
                search = self._search(p)
                self._report(search.search_id, finished)
                reply = self._suggest(search, p, request, began)
        except NasrlError as exc:
            code = exc.code if exc.code in _PASS_ON else grpc.StatusCode.INTERNAL
            abort(context, code, f"nasrl controller {self.c.target}: {exc.args[0]}")
        except KatibError as exc:  # the search found by name cannot serve this experiment
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        log.info(
            "%s: %d trial(s) in, %d suggestion(s) out in %.3fs",
            request.experiment.name[:100],
            len(request.trials),
            len(reply.parameter_assignments),
            time.monotonic() - began,
        )
        return reply

    def _lock(self, experiment: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(experiment, threading.Lock())

    def _search(self, p: Plan) -> Search:
        """The experiment's search: cached, found by name, or created now."""
        sid = self._searches.get(p.request.name)
        if sid is None:
            named = [s for s in self.c.list_searches() if s.name == p.request.name]
            if named:
                sid = min(named, key=lambda s: s.created).search_id
            else:
                sid = self.c.create_search(p.request).search_id
                log.info("created search %s for %s", sid, p.request.name)
            self._searches[p.request.name] = sid
        search = self.c.get_search(sid)
        space = search.spec.request.space.WhichOneof("space")
        if p.nas and space != "zoph":
            raise KatibError(
                f"the experiment has a nasConfig (a Zoph space), but the nasrl search named "
                f"{p.request.name!r} ({sid}) has a {space} space: an earlier experiment of "
                "the same name created it; give this experiment a new name"
            )
        return search

    def _report(self, search_id: str, finished: dict[int, cpb.UpdateRequest]) -> None:
        """Update every finished trial not reported yet (in parallel)."""
        done = self._reported.setdefault(search_id, set())
        todo = [(cid, u) for cid, u in finished.items() if cid not in done]
        for _, u in todo:
            u.search_id = search_id
        for cid, error in zip(
            [cid for cid, _ in todo], self._pool.map(self._update, [u for _, u in todo])
        ):
            if error is not None and error.code in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise error  # the controller is away: Katib calls again
            if error is not None:  # a report the controller refuses will not improve
                log.warning("trial of candidate %d not reported: %s", cid, error)
            done.add(cid)

    def _update(self, request: cpb.UpdateRequest) -> NasrlError | None:
        try:
            if request.HasField("result"):
                self.c.update(
                    request.search_id,
                    request.candidate_id,
                    result=codec.outcome_from_proto(request.result),
                )
            else:
                self.c.update(request.search_id, request.candidate_id, failure=request.failure)
        except NasrlError as exc:
            return exc
        return None

    def _suggest(
        self, search: Search, p: Plan, request: kpb.GetSuggestionsRequest, began: float
    ) -> kpb.GetSuggestionsReply:
        """``current_request_number`` new networks: candidates the search already trained
        (cached) are skipped, so Katib never runs an architecture twice."""
        need = min(request.current_request_number, MAX_SUGGESTIONS)  # 0: only report trials
        reply = kpb.GetSuggestionsReply()
        for attempt in range(MAX_SAMPLES):
            if len(reply.parameter_assignments) >= need:
                break
            if time.monotonic() - began > self.answer_within:
                log.warning(
                    "answering with %d of %d suggestions to stay within Katib's deadline",
                    len(reply.parameter_assignments),
                    need,
                )
                break
            batch = self.c.sample(
                search.search_id,
                need - len(reply.parameter_assignments),
                request_id=request_id(
                    request.experiment.name, request.total_request_number, need, attempt
                ),
            )
            for cand in batch.candidates:
                if cand.cached is None:
                    reply.parameter_assignments.append(
                        self._assignment(search, p, cand.id, cand.text)
                    )
            if batch.done:
                break
        return reply

    def _assignment(
        self, search: Search, p: Plan, candidate: int, text: str
    ) -> kpb.GetSuggestionsReply.ParameterAssignments:
        values = {ARCH_PARAM: text}
        if p.nas:
            values.update(
                enas.assignments(
                    text, search.spec.request.space.zoph, search.spec.request.dataset_shape
                )
            )
        return kpb.GetSuggestionsReply.ParameterAssignments(
            assignments=[kpb.ParameterAssignment(name=k, value=v) for k, v in values.items()],
            labels={CANDIDATE_LABEL: str(candidate), "nasrl-search": search.search_id},
        )
