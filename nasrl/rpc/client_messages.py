"""Client types ⇄ messages: the requests ``ControllerClient`` and ``TrainerClient`` (and
their asyncio twins) send, and the replies turned into ``client_types``' dataclasses."""

from __future__ import annotations

from dataclasses import asdict, replace

from nasrl.core import codec
from nasrl.core.agent_settings import AgentSettings, AgentSettingsError
from nasrl.core.arch import Architecture, parse
from nasrl.core.results import SettingsError, SharedTraining, TrainOutcome, TrainSettings
from nasrl.core.shapes import InputShape
from nasrl.rpc.client_types import (
    Candidate,
    Child,
    ChildStatus,
    EpochReport,
    LeaderboardEntry,
    SampleBatch,
    Search,
    SearchCounts,
    SearchSettings,
    SearchStatus,
    UpdateResult,
)
from protos import controller_pb2 as cpb
from protos import trainer_pb2

_STATES = {
    cpb.RUNNING: SearchStatus.RUNNING,
    cpb.DONE: SearchStatus.DONE,
    cpb.STOPPED: SearchStatus.STOPPED,
}

_CHILD_STATUSES = {
    cpb.CHILD_LEASED: ChildStatus.LEASED,
    cpb.CHILD_TRAINED: ChildStatus.TRAINED,
    cpb.CHILD_FAILED: ChildStatus.FAILED,
    cpb.CHILD_CACHED: ChildStatus.CACHED,
    cpb.CHILD_WAITING: ChildStatus.WAITING,
    cpb.CHILD_INVALID: ChildStatus.INVALID,
}


def _child_result(c: cpb.Child) -> TrainOutcome | None:
    if not c.HasField("result"):
        return None
    result = codec.outcome_from_proto(c.result)
    # a listing leaves the result's architecture out: it is the child's
    return result if result.architecture else replace(result, architecture=c.architecture)


def child(c: cpb.Child) -> Child:
    return Child(
        candidate_id=c.candidate_id,
        architecture=c.architecture,
        status=_CHILD_STATUSES.get(c.status, ChildStatus.UNKNOWN),
        result=_child_result(c),
        reason=c.reason,
        reward=c.reward if c.HasField("reward") else None,
        reissued=c.reissued,
        screen_score=c.screen_score if c.HasField("screen_score") else None,
        reports=tuple(
            EpochReport(r.epoch, r.validation_accuracy, r.decision == cpb.STOP) for r in c.reports
        ),
    )


def entry(e: cpb.LeaderboardEntry) -> LeaderboardEntry:
    return LeaderboardEntry(
        e.candidate_id,
        e.architecture,
        e.accuracy,
        e.test_accuracy,
        e.params,
        e.flops,
        e.seconds,
        e.reward,
        codec.evaluation_from_proto(e.evaluation),
    )


def _agent_settings(msg: cpb.AgentSpec) -> AgentSettings | None:
    try:
        return codec.agent_settings_from_proto(msg)
    except (AgentSettingsError, SettingsError):
        return None


def search(s: cpb.Search) -> Search:
    shape = s.spec.dataset_shape
    spec = SearchSettings(
        agent=s.spec.agent.name,
        agent_settings=_agent_settings(s.spec.agent),
        dataset=s.spec.dataset,
        budget=s.spec.budget,
        training=codec.settings_from_proto(s.spec.training),
        dataset_shape=(
            InputShape(shape.channels, shape.height, shape.width, shape.classes)
            if shape.classes
            else None
        ),
        early_stopping=s.spec.early_stopping.rule,
        request=s.spec,
    )
    c = s.counts
    return Search(
        search_id=s.search_id,
        name=s.name,
        spec=spec,
        state=_STATES.get(s.state, SearchStatus.UNKNOWN),
        counts=SearchCounts(c.sampled, c.in_flight, c.evaluated, c.cached, c.failed, c.reissued),
        progress=dict(s.progress),
        best=entry(s.best) if s.HasField("best") else None,
        created=s.created,
        ended_because=s.ended_because,
    )


def train_request(
    arch: Architecture | str,
    dataset: str,
    settings: TrainSettings | None,
    run_id: str,
    await_decisions: bool = False,
    shared: SharedTraining | None = None,
) -> trainer_pb2.TrainRequest:
    request = trainer_pb2.TrainRequest(
        architecture=codec.arch_to_proto(parse(arch) if isinstance(arch, str) else arch),
        dataset=dataset,
        config=codec.settings_to_proto(settings or TrainSettings()),
        run_id=run_id,
        await_decisions=await_decisions and bool(run_id),
    )
    if shared is not None:
        request.shared.CopyFrom(trainer_pb2.SharedTraining(**asdict(shared)))
    return request


def _shared(c: cpb.Candidate) -> SharedTraining | None:
    m = c.shared
    if not c.HasField("shared"):
        return None
    return SharedTraining(m.steps, m.max_kernel, m.max_filters, m.max_layers)


def sample_request(search_id: str, count: int, request_id: str, reclaim: bool) -> cpb.SampleRequest:
    return cpb.SampleRequest(
        search_id=search_id, count=count, request_id=request_id, reclaim=reclaim
    )


def sample_batch(reply: cpb.SampleResponse) -> SampleBatch:
    candidates = [
        Candidate(
            c.candidate_id,
            codec.arch_from_proto(c.architecture),
            c.text,
            c.lease_deadline,
            codec.outcome_from_proto(c.cached_result) if c.HasField("cached_result") else None,
            _shared(c),
        )
        for c in reply.candidates
    ]
    return SampleBatch(
        candidates, reply.done, reply.dataset, codec.settings_from_proto(reply.training)
    )


def report_request(
    search_id: str, candidate_id: int, epoch: int, validation_accuracy: float
) -> cpb.ReportRequest:
    return cpb.ReportRequest(
        search_id=search_id,
        candidate_id=candidate_id,
        epoch=epoch,
        validation_accuracy=validation_accuracy,
    )


def update_request(
    search_id: str, candidate_id: int, result: TrainOutcome | None, failure: str | None
) -> cpb.UpdateRequest:
    if (result is None) == (failure is None):
        raise ValueError("give exactly one of result and failure")
    request = cpb.UpdateRequest(search_id=search_id, candidate_id=candidate_id)
    if result is not None:
        request.result.CopyFrom(codec.outcome_to_proto(result))
    else:
        request.failure = failure or ""
    return request


def update_result(reply: cpb.UpdateResponse) -> UpdateResult:
    return UpdateResult(
        accepted=reply.accepted,
        reward=reply.reward,
        state=_STATES.get(reply.state, SearchStatus.UNKNOWN),
    )
