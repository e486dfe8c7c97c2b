"""Controller messages ⇄ domain objects (SearchSpec, views, handouts)."""

from __future__ import annotations

from dataclasses import asdict

from controller_service.agents import AgentSettingsError
from controller_service.children import ChildRecord
from controller_service.evaluation import EvaluationMode, SearchEvaluation
from controller_service.searches import Handout, SearchView
from controller_service.spaces import MetaQNNSpace, Nb201Space, Space, ZophSpace
from controller_service.spec import (
    Constraints,
    Convergence,
    Screening,
    SearchSpec,
    SpecError,
    WarmStart,
    named_space,
)
from controller_service.states import SearchState, Status
from controller_service.stopping import Decision, StoppingSettings
from controller_service.store import ResultRow
from nasrl.core import codec
from nasrl.core.arch import ArchError, parse
from nasrl.core.shapes import InputShape
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb

__all__ = [
    "spec_from_proto",
    "space_from_proto",
    "spec_to_proto",
    "search_to_proto",
    "handout_to_proto",
    "entry_to_proto",
    "state_to_proto",
    "child_to_proto",
]

_REWARDS: dict[str, cpb.Reward.ValueType] = {"zoph": cpb.ZOPH, "accuracy": cpb.ACCURACY}
_MODES = {
    cpb.SearchEvaluation.EVALUATION_MODE_UNSPECIFIED: EvaluationMode.FULL,
    cpb.SearchEvaluation.EVALUATION_MODE_FULL: EvaluationMode.FULL,
    cpb.SearchEvaluation.EVALUATION_MODE_SHARED: EvaluationMode.SHARED,
}
_STATES: dict[str, cpb.SearchState.ValueType] = {
    SearchState.RUNNING: cpb.RUNNING,
    SearchState.DONE: cpb.DONE,
    SearchState.STOPPED: cpb.STOPPED,
}


def _zoph_from_proto(z: cpb.ZophSpace) -> ZophSpace:
    d = ZophSpace()
    return ZophSpace(
        filter_sizes=tuple(z.filter_sizes) or d.filter_sizes,
        strides=tuple(z.strides) or d.strides,
        filters=tuple(z.filters) or d.filters,
        max_layers=z.max_layers or d.max_layers,
        skip_connections=not z.no_skip_connections,
    )


def _metaqnn_from_proto(m: cpb.MetaQNNSpace) -> MetaQNNSpace:
    d = MetaQNNSpace()
    return MetaQNNSpace(
        conv_sizes=tuple(m.conv_sizes) or d.conv_sizes,
        conv_filters=tuple(m.conv_filters) or d.conv_filters,
        pools=tuple((p.size, p.stride) for p in m.pools) or d.pools,
        fc_units=tuple(m.fc_units) or d.fc_units,
        max_depth=m.max_depth or d.max_depth,
        max_fc=m.max_fc or d.max_fc,
        fc_max_size=m.fc_max_size or d.fc_max_size,
        pool_first=m.pool_first,
    )


def _nb201_from_proto(n: cpb.Nb201Space) -> Nb201Space:
    d = Nb201Space()
    try:
        ops = tuple(codec.cell_op_from_proto(op).value for op in n.ops) or d.ops
    except ArchError as exc:
        raise SpecError(f"space.nb201.ops: {exc}") from None
    return Nb201Space(ops=ops, skeleton=codec.skeleton_from_proto(n.skeleton))


def space_from_proto(msg: cpb.SearchSpace) -> Space | None:
    """The space a SearchSpace message names; None when it names none (the agent's default)."""
    kind = msg.WhichOneof("space")
    if kind == "zoph":
        return _zoph_from_proto(msg.zoph)
    if kind == "metaqnn":
        return _metaqnn_from_proto(msg.metaqnn)
    if kind == "nb201":
        return _nb201_from_proto(msg.nb201)
    if kind == "name":
        return named_space(msg.name)
    return None


def _space_to_proto(space: Space) -> cpb.SearchSpace:
    if isinstance(space, Nb201Space):
        return cpb.SearchSpace(
            nb201=cpb.Nb201Space(
                ops=[codec.cell_op_to_proto(space.cell_op(i)) for i in range(len(space.ops))],
                skeleton=codec.skeleton_to_proto(space.skeleton),
            )
        )
    if isinstance(space, MetaQNNSpace):
        return cpb.SearchSpace(
            metaqnn=cpb.MetaQNNSpace(
                conv_sizes=space.conv_sizes,
                conv_filters=space.conv_filters,
                pools=[cpb.PoolChoice(size=k, stride=st) for k, st in space.pools],
                fc_units=space.fc_units,
                max_depth=space.max_depth,
                max_fc=space.max_fc,
                fc_max_size=space.fc_max_size,
                pool_first=space.pool_first,
            )
        )
    return cpb.SearchSpace(
        zoph=cpb.ZophSpace(
            filter_sizes=space.filter_sizes,
            strides=space.strides,
            filters=space.filters,
            max_layers=space.max_layers,
            no_skip_connections=not space.skip_connections,
        )
    )


def spec_from_proto(req: cpb.CreateSearchRequest) -> SearchSpec:
    """Raises SpecError (or SettingsError) naming a bad field; defaults are filled by
    ``SearchSpec.validate``. Agent settings are copied by name (``nasrl.core.codec``): only those
    set in the message, so that unset ones take their defaults."""
    try:
        name, settings = codec.agent_spec_from_proto(req.agent)
    except AgentSettingsError as exc:
        raise SpecError(str(exc)) from exc
    reward = {cpb.ZOPH: "zoph", cpb.ACCURACY: "accuracy"}.get(req.reward, "")
    if req.reward not in (cpb.REWARD_UNSPECIFIED, cpb.ZOPH, cpb.ACCURACY):
        raise SpecError(f"unknown reward {req.reward}; use ZOPH or ACCURACY")
    return SearchSpec(
        agent=name,
        agent_settings=settings,
        space=space_from_proto(req.space),
        dataset=req.dataset or "digits",
        training=codec.settings_from_proto(req.training),
        reward=reward,
        budget=req.budget or 100,
        seed=req.seed,
        lease_seconds=req.lease_seconds or 3600.0,
        name=req.name,
        early_stopping=_stopping_from_proto(req.early_stopping),
        warm_start=_warm_from_proto(req.warm_start),
        constraints=_constraints_from_proto(req.constraints),
        screening=_screening_from_proto(req.screening),
        convergence=Convergence(
            patience=req.convergence.patience or Convergence().patience,
            action=req.convergence.action or Convergence().action,
            draws=req.convergence.draws or Convergence().draws,
            top=req.convergence.top or Convergence().top,
        ),
        input=_shape_from_proto(req.dataset_shape) if req.HasField("dataset_shape") else None,
        evaluation=_evaluation_from_proto(req.evaluation),
    )


def _evaluation_from_proto(m: cpb.SearchEvaluation) -> SearchEvaluation:
    if m.mode not in _MODES:
        raise SpecError(f"unknown evaluation.mode {m.mode}; use FULL or SHARED")
    return SearchEvaluation(_MODES[m.mode], m.steps, m.warmup_children, m.top_k)


def _evaluation_to_proto(e: SearchEvaluation) -> cpb.SearchEvaluation:
    mode = {v: k for k, v in _MODES.items() if k}[EvaluationMode(e.mode)]
    return cpb.SearchEvaluation(
        mode=mode, steps=e.steps, warmup_children=e.warmup_children, top_k=e.top_k
    )


def _shape_from_proto(m: cpb.DatasetShape) -> InputShape:
    return InputShape(channels=m.channels, height=m.height, width=m.width, classes=m.classes)


def _warm_from_proto(m: cpb.WarmStart) -> WarmStart:
    d = WarmStart()
    return WarmStart(
        architectures=tuple(m.architectures),
        search_id=m.search_id,
        top=m.top if m.HasField("top") else d.top,
        pretrain_steps=m.pretrain_steps if m.HasField("pretrain_steps") else d.pretrain_steps,
        pretrain_learning_rate=m.pretrain_learning_rate or d.pretrain_learning_rate,
    )


def _screening_from_proto(m: cpb.Screening) -> Screening:
    d = Screening()
    return Screening(
        score=m.score,
        factor=m.factor or d.factor,
        acquisition=m.acquisition or d.acquisition,
        kappa=m.kappa if m.HasField("kappa") else d.kappa,
        cold_start_results=m.cold_start_results or d.cold_start_results,
        cold_start_score=m.cold_start_score,
        refit_every=m.refit_every or d.refit_every,
    )


def _constraints_from_proto(m: cpb.Constraints) -> Constraints:
    d = Constraints()
    return Constraints(
        max_params=m.max_params,
        max_flops=m.max_flops,
        cost_metric=m.cost_metric,
        cost_target=m.cost_target,
        cost_weight=m.cost_weight if m.HasField("cost_weight") else d.cost_weight,
    )


def _stopping_from_proto(m: cpb.EarlyStopping) -> StoppingSettings:
    d = StoppingSettings()
    return StoppingSettings(
        rule=m.rule or d.rule,
        eta=m.eta or d.eta,
        min_epochs=m.min_epochs or d.min_epochs,
        grace=m.grace or d.grace,
        min_children=m.min_children or d.min_children,
    )


def spec_to_proto(spec: SearchSpec) -> cpb.CreateSearchRequest:
    """The spec with every agent setting filled in."""
    return cpb.CreateSearchRequest(
        agent=codec.agent_spec_to_proto(spec.agent, spec.settings()),
        space=_space_to_proto(spec.bound_space()),
        dataset=spec.dataset,
        training=codec.settings_to_proto(spec.training),
        reward=_REWARDS[spec.reward],
        budget=spec.budget,
        seed=spec.seed,
        lease_seconds=spec.lease_seconds,
        name=spec.name,
        early_stopping=cpb.EarlyStopping(**asdict(spec.early_stopping)),
        warm_start=cpb.WarmStart(**asdict(spec.warm_start)),
        constraints=cpb.Constraints(**asdict(spec.constraints)),
        screening=cpb.Screening(**asdict(spec.screening)),
        convergence=cpb.Convergence(**asdict(spec.convergence)),
        dataset_shape=cpb.DatasetShape(**asdict(spec.image())),
        evaluation=_evaluation_to_proto(spec.evaluation),
    )


def state_to_proto(state: str) -> cpb.SearchState.ValueType:
    return _STATES[state]


def entry_to_proto(r: ResultRow) -> cpb.LeaderboardEntry:
    return cpb.LeaderboardEntry(
        candidate_id=r.candidate_id,
        architecture=r.arch,
        accuracy=r.accuracy,
        test_accuracy=r.test_accuracy,
        params=r.params,
        flops=r.flops,
        seconds=r.seconds,
        reward=r.reward,
        evaluation=codec.evaluation_to_proto(r.outcome.evaluation),
    )


def search_to_proto(v: SearchView) -> cpb.Search:
    c = v.counts
    msg = cpb.Search(
        search_id=v.id,
        name=v.name,
        spec=spec_to_proto(v.spec),
        state=state_to_proto(v.state),
        created=v.created,
        progress=v.progress,
        ended_because=v.ended_because,
        counts=cpb.SearchCounts(
            sampled=sum(
                n for k, n in c.items() if k not in ("reissued", Status.INVALID, Status.WAITING)
            ),
            in_flight=c.get(Status.LEASED, 0),
            evaluated=c.get(Status.DONE, 0),
            cached=c.get(Status.CACHED, 0),
            failed=c.get(Status.FAILED, 0),
            reissued=c.get("reissued", 0),
        ),
    )
    if v.best is not None:
        msg.best.CopyFrom(entry_to_proto(v.best))
    return msg


def handout_to_proto(h: Handout) -> cpb.Candidate:
    msg = cpb.Candidate(
        candidate_id=h.id,
        architecture=codec.arch_to_proto(parse(h.text)),
        text=h.text,
        lease_deadline=h.lease_deadline,
    )
    if h.cached is not None:
        msg.cached_result.CopyFrom(codec.outcome_to_proto(h.cached))
    if h.shared is not None:
        msg.shared.CopyFrom(tpb.SharedTraining(**asdict(h.shared)))
    return msg


_CHILD_STATUS: dict[Status, cpb.ChildStatus.ValueType] = {
    Status.LEASED: cpb.CHILD_LEASED,
    Status.DONE: cpb.CHILD_TRAINED,
    Status.FAILED: cpb.CHILD_FAILED,
    Status.CACHED: cpb.CHILD_CACHED,
    Status.WAITING: cpb.CHILD_WAITING,
    Status.INVALID: cpb.CHILD_INVALID,
}


def child_to_proto(c: ChildRecord) -> cpb.Child:
    msg = cpb.Child(
        candidate_id=c.candidate_id,
        architecture=c.architecture,
        status=_CHILD_STATUS[c.status],
        reason=c.reason,
        reissued=c.reissued,
        reports=[
            cpb.EpochReport(
                epoch=r.epoch,
                validation_accuracy=r.accuracy,
                decision=cpb.STOP if r.decision is Decision.STOP else cpb.CONTINUE,
            )
            for r in c.reports
        ],
    )
    if c.outcome is not None:
        msg.result.CopyFrom(codec.outcome_to_proto(c.outcome))
    if c.reward is not None:
        msg.reward = c.reward
    if c.screen_score is not None:
        msg.screen_score = c.screen_score
    return msg
