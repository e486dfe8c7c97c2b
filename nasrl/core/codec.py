"""Conversion between the wire messages (protos/) and nasrl's plain types. The only module
of the core that imports generated code, so domain code never has to."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from nasrl.core.agent_settings import (
    AGENT_SETTINGS,
    AgentSettings,
    AgentSettingsError,
    settings_class,
)
from nasrl.core.arch import FC, GAP, ArchError, Architecture, Conv, Layer, Op, Pool
from nasrl.core.cell import CELL_OPS, DEFAULT_SKELETON, EDGES, Cell, CellOp, Skeleton
from nasrl.core.presets import preset_settings
from nasrl.core.results import (
    EpochRecord,
    Evaluation,
    SettingsError,
    TrainOutcome,
    TrainSettings,
)
from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb

__all__ = [
    "arch_to_proto",
    "arch_from_proto",
    "settings_to_proto",
    "settings_from_proto",
    "epoch_to_proto",
    "epoch_from_proto",
    "outcome_to_proto",
    "outcome_from_proto",
    "evaluation_to_proto",
    "evaluation_from_proto",
    "agent_spec_to_proto",
    "agent_spec_from_proto",
    "agent_settings_from_proto",
    "cell_op_to_proto",
    "cell_op_from_proto",
    "skeleton_to_proto",
    "skeleton_from_proto",
]

DEFAULT_AGENT = "reinforce"

_OPTIMIZERS: dict[str, tpb.Optimizer.ValueType] = {"sgd": tpb.SGD_NESTEROV, "adam": tpb.ADAM}
_SCHEDULES: dict[str, tpb.Schedule.ValueType] = {
    "cosine": tpb.COSINE,
    "step": tpb.STEP,
    "constant": tpb.CONSTANT,
}


def _op_to_proto(op: Op, layer: apb.Layer) -> None:
    if isinstance(op, Conv):
        layer.conv.CopyFrom(
            apb.Conv(
                filters=op.filters,
                kernel_h=op.kernel_h,
                kernel_w=op.kernel_w,
                stride_h=op.stride_h,
                stride_w=op.stride_w,
            )
        )
    elif isinstance(op, Pool):
        layer.pool.CopyFrom(apb.Pool(kernel=op.kernel, stride=op.stride))
    elif isinstance(op, FC):
        layer.fc.CopyFrom(apb.FC(units=op.units))
    elif isinstance(op, GAP):
        layer.gap.SetInParent()
    else:
        raise TypeError(f"not a layer operation: {op!r}")


# CellOp <-> apb.CellOp: CELL_OP_NONE is 1, ... in CELL_OPS order (0 is unspecified)
_CELL_OP_NUMBERS: dict[CellOp, apb.CellOp.ValueType] = {
    op: apb.CellOp.Value("CELL_OP_" + op.name) for op in CELL_OPS
}
_CELL_OPS_BY_NUMBER = {number: op for op, number in _CELL_OP_NUMBERS.items()}


def cell_op_to_proto(op: CellOp) -> apb.CellOp.ValueType:
    return _CELL_OP_NUMBERS[op]


def cell_op_from_proto(number: int, where: str = "an edge") -> CellOp:
    """The operation of a wire number; ArchError names the valid ones for 0 or unknown."""
    if number not in _CELL_OPS_BY_NUMBER:
        names = ", ".join(apb.CellOp.Name(n) for n in _CELL_OP_NUMBERS.values())
        raise ArchError(f"{where} has no operation ({number}); use one of {names}")
    return _CELL_OPS_BY_NUMBER[apb.CellOp.ValueType(number)]


def skeleton_to_proto(s: Skeleton) -> apb.Skeleton:
    return apb.Skeleton(channels=s.channels, cells_per_stage=s.cells_per_stage, stages=s.stages)


def skeleton_from_proto(s: apb.Skeleton) -> Skeleton:
    """Zero fields take NAS-Bench-201's values."""
    d = DEFAULT_SKELETON
    return Skeleton(
        s.channels or d.channels, s.cells_per_stage or d.cells_per_stage, s.stages or d.stages
    )


def _cell_to_proto(cell: Cell) -> apb.Cell:
    return apb.Cell(
        ops=[_CELL_OP_NUMBERS[op] for op in cell.ops], skeleton=skeleton_to_proto(cell.skeleton)
    )


def _cell_from_proto(msg: apb.Cell) -> Cell:
    if len(msg.ops) != len(EDGES):
        raise ArchError(
            f"a cell has {len(EDGES)} edges (0->1, 0->2, 1->2, 0->3, 1->3, 2->3), so "
            f"cell.ops needs {len(EDGES)} operations; got {len(msg.ops)}"
        )
    ops = [cell_op_from_proto(n, f"edge {j}->{i}") for (j, i), n in zip(EDGES, msg.ops)]
    return Cell(tuple(ops), skeleton_from_proto(msg.skeleton))


def arch_to_proto(arch: Architecture) -> apb.Architecture:
    msg = apb.Architecture(classes=arch.classes or 0)
    if arch.cell is not None:
        msg.cell.CopyFrom(_cell_to_proto(arch.cell))
    for layer in arch.layers:
        out = msg.layers.add()
        _op_to_proto(layer.op, out)
        out.inputs.extend(layer.inputs)
    return msg


def _op_from_proto(layer: apb.Layer, index: int) -> Op:
    kind = layer.WhichOneof("op")
    if kind == "conv":
        c = layer.conv
        return Conv(c.filters, c.kernel_h, c.kernel_w, c.stride_h, c.stride_w)
    if kind == "pool":
        return Pool(layer.pool.kernel, layer.pool.stride)
    if kind == "fc":
        return FC(layer.fc.units)
    if kind == "gap":
        return GAP()
    raise ArchError(f"layer {index} has no operation: set one of conv, pool, fc, gap")


def _check_classes(classes: int) -> None:
    if classes < 0:
        raise ArchError(f"classes must be positive (or 0 for the dataset's), got {classes}")


def arch_from_proto(msg: apb.Architecture) -> Architecture:
    """Typed form to spec; raises ArchError for a layer without an operation, for a cell
    without 6 known operations, and unless exactly one of ``layers`` and ``cell`` is set.
    Sizes are checked later by ``nasrl.core.shapes.analyze``."""
    if msg.HasField("cell"):
        if msg.layers:
            raise ArchError("an architecture has layers or a cell, not both: clear one of them")
        cell = _cell_from_proto(msg.cell)
        _check_classes(msg.classes)
        return Architecture(cell=cell, classes=msg.classes or None)
    if not msg.layers:
        raise ArchError("an architecture needs at least one layer, or a cell: set one")
    layers = tuple(
        Layer(_op_from_proto(layer, i), tuple(layer.inputs))
        for i, layer in enumerate(msg.layers, start=1)
    )
    _check_classes(msg.classes)
    return Architecture(layers, msg.classes or None)


def settings_to_proto(s: TrainSettings) -> tpb.TrainingConfig:
    return tpb.TrainingConfig(
        epochs=s.epochs,
        batch_size=s.batch_size,
        optimizer=_OPTIMIZERS[s.optimizer],
        learning_rate=s.learning_rate or 0.0,
        momentum=s.momentum if s.momentum > 0 else -1.0,
        weight_decay=s.weight_decay if s.weight_decay > 0 else -1.0,
        schedule=_SCHEDULES[s.schedule],
        seed=s.seed,
        max_seconds=s.max_seconds or 0.0,
        grad_clip_norm=s.grad_clip if s.grad_clip > 0 else -1.0,
    )


def _enum_name(
    table: Mapping[str, int], value: int, field: str, default: str, spelled: Callable[[Any], str]
) -> str:
    """The settings name of enum ``value``; an unknown number is answered with the enum's
    names as the proto spells them (``SGD_NESTEROV``, ``ADAM``)."""
    if value == 0:
        return default
    for name, number in table.items():
        if number == value:
            return name
    *rest, last = [spelled(number) for number in table.values()]
    names = f"{', '.join(rest)} or {last}" if rest else last
    raise SettingsError(f"unknown {field} {value}; use {names}")


def _zero_default(value: float, default: float) -> float:
    """Proto3 floats: 0 means the default, a negative value means none (0)."""
    if value == 0:
        return default
    return 0.0 if value < 0 else value


def settings_from_proto(msg: tpb.TrainingConfig) -> TrainSettings:
    """Zero fields take the defaults; raises SettingsError (a ValueError) naming a bad field."""
    d = TrainSettings()
    optimizer = _enum_name(_OPTIMIZERS, msg.optimizer, "optimizer", d.optimizer, tpb.Optimizer.Name)
    return TrainSettings(
        epochs=msg.epochs or d.epochs,
        batch_size=msg.batch_size or d.batch_size,
        optimizer=optimizer,
        learning_rate=msg.learning_rate or None,
        momentum=_zero_default(msg.momentum, d.momentum),
        weight_decay=_zero_default(msg.weight_decay, d.weight_decay),
        schedule=_enum_name(_SCHEDULES, msg.schedule, "schedule", d.schedule, tpb.Schedule.Name),
        seed=msg.seed,
        max_seconds=msg.max_seconds or None,
        grad_clip=_zero_default(msg.grad_clip_norm, d.grad_clip),
    ).validate()


def _settings_message_names() -> tuple[str, ...]:
    return tuple(f.name for f in cpb.AgentSpec.DESCRIPTOR.oneofs_by_name["settings"].fields)


def agent_spec_to_proto(
    agent: str, settings: AgentSettings | Mapping[str, Any] | None = None, preset: str = ""
) -> cpb.AgentSpec:
    """An AgentSpec naming ``agent`` (and ``preset``), with ``settings`` copied into the
    agent's settings message field by field, by name: a settings dataclass sets every field, a
    mapping only the names it holds (the preset's values, then the controller's defaults fill
    the rest)."""
    if isinstance(settings, AgentSettings) and settings.agent != agent:
        raise AgentSettingsError(f"{type(settings).__name__} given for agent {agent!r}")
    values = settings.to_dict() if isinstance(settings, AgentSettings) else dict(settings or {})
    msg = cpb.AgentSpec(name=agent, preset=preset)
    if agent not in _settings_message_names():
        if values:
            raise AgentSettingsError(f"AgentSpec has no settings message for agent {agent!r}")
        return msg
    target = getattr(msg, agent)
    target.SetInParent()
    known = target.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        if name not in known:
            raise AgentSettingsError(
                f"unknown setting {name!r} for agent {agent!r}; known: {list(known)}"
            )
        setattr(target, name, value)
    return msg


def _float32(value: float) -> float:
    """A float32 field's value as the shortest decimal that is the same float32 (0.0006, not
    0.0006000000284984708): what the sender most likely wrote."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        shorter = float(f"{value:.{digits}g}")
        try:
            if struct.pack("<f", shorter) == packed:
                return shorter
        except OverflowError:
            break
    return value


def agent_spec_from_proto(msg: cpb.AgentSpec) -> tuple[str, dict[str, Any]]:
    """The agent's name (default reinforce) and its settings by name, unchecked: the preset's
    (``preset_settings``), overridden by those set in its message. Raises AgentSettingsError
    when the message is another agent's or the preset unknown."""
    name = msg.name or DEFAULT_AGENT
    # an unknown agent is refused by name where the search is made
    values = preset_settings(name, msg.preset) if name in AGENT_SETTINGS else {}
    chosen = msg.WhichOneof("settings")
    if chosen is None:
        return name, values
    if chosen != name:
        raise AgentSettingsError(f"agent.{chosen} settings were given for agent {name!r}")
    return name, values | {
        f.name: _float32(value) if f.type == FieldDescriptor.TYPE_FLOAT else value
        for f, value in getattr(msg, chosen).ListFields()
    }


def agent_settings_from_proto(msg: cpb.AgentSpec) -> AgentSettings:
    """The agent's settings, defaults filled in and checked (AgentSettingsError names a bad
    one)."""
    name, values = agent_spec_from_proto(msg)
    return settings_class(name).from_dict(values)


_EVALUATION_TO_PROTO = {
    Evaluation.FULL: tpb.EVALUATION_FULL,
    Evaluation.TABLE: tpb.EVALUATION_TABLE,
    Evaluation.SIMULATED: tpb.EVALUATION_SIMULATED,
    Evaluation.SHARED: tpb.EVALUATION_SHARED,
}


def epoch_to_proto(e: EpochRecord) -> tpb.EpochProgress:
    return tpb.EpochProgress(
        epoch=e.epoch,
        epochs=e.epochs,
        train_loss=e.train_loss,
        train_accuracy=e.train_accuracy,
        validation_accuracy=e.validation_accuracy,
        seconds=e.seconds,
    )


def epoch_from_proto(m: tpb.EpochProgress) -> EpochRecord:
    return EpochRecord(
        m.epoch, m.epochs, m.train_loss, m.train_accuracy, m.validation_accuracy, m.seconds
    )


def outcome_to_proto(o: TrainOutcome) -> tpb.TrainResult:
    return tpb.TrainResult(
        validation_accuracy=o.validation_accuracy,
        validation_accuracy_last5=o.validation_accuracy_last5,
        test_accuracy=o.test_accuracy,
        params=o.params,
        flops=o.flops,
        seconds=o.seconds,
        device=o.device,
        curve=[epoch_to_proto(e) for e in o.curve],
        architecture=o.architecture,
        stopped_early=o.stopped_early,
        train_examples=o.train_examples,
        validation_examples=o.validation_examples,
        test_examples=o.test_examples,
        weights_id=o.weights_id,
        evaluation=_EVALUATION_TO_PROTO[o.evaluation],
        supernet_step=o.supernet_step,
        shared_steps=o.shared_steps,
    )


def evaluation_to_proto(e: Evaluation) -> tpb.Evaluation.ValueType:
    return _EVALUATION_TO_PROTO[e]


def evaluation_from_proto(value: tpb.Evaluation.ValueType, device: str = "") -> Evaluation:
    if value == tpb.EVALUATION_UNSPECIFIED:  # an older trainer: its device tells
        return Evaluation.of_device(device)
    return {v: k for k, v in _EVALUATION_TO_PROTO.items()}.get(value, Evaluation.FULL)


def outcome_from_proto(m: tpb.TrainResult) -> TrainOutcome:
    return TrainOutcome(
        validation_accuracy=m.validation_accuracy,
        validation_accuracy_last5=m.validation_accuracy_last5,
        test_accuracy=m.test_accuracy,
        params=m.params,
        flops=m.flops,
        seconds=m.seconds,
        device=m.device,
        architecture=m.architecture,
        curve=tuple(epoch_from_proto(e) for e in m.curve),
        stopped_early=m.stopped_early,
        train_examples=m.train_examples,
        validation_examples=m.validation_examples,
        test_examples=m.test_examples,
        weights_id=m.weights_id,
        evaluation=evaluation_from_proto(m.evaluation, m.device),
        supernet_step=m.supernet_step,
        shared_steps=m.shared_steps,
    )
