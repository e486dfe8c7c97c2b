"""A Katib experiment as a nasrl search: which CreateSearchRequest it becomes, and what each
assignment carries. Pure translation between the two APIs' messages (no calls).

Algorithm settings (``algorithmSettings`` in the Experiment): ``agent`` (reinforce, qlearning,
random, evolution; default reinforce), ``space`` (zoph, metaqnn), ``dataset`` (default
digits), ``epochs`` (default 3), ``seed`` (0), ``max_layers`` (Zoph space depth), and for a
user's dataset without ``nasConfig``: ``input_shape`` ("C,H,W") and ``classes``. With
``nasConfig`` the space is a Zoph space built from its ``convolution`` operation
(``filter_size``, ``num_filter``, ``stride`` lists; ``num_layers`` layers) and the input from
``input_sizes`` (H, W, C) and ``output_sizes`` (classes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nasrl.core.agent_settings import AGENT_SETTINGS
from nasrl.core.datasets import DATASET_SHAPES
from protos import controller_pb2 as cpb
from protos import katib_api_pb2 as kpb
from protos import trainer_pb2 as tpb

__all__ = ["ALGORITHM", "ARCH_PARAM", "KatibError", "Plan", "plan", "search_name"]

ALGORITHM = "nasrl"
ARCH_PARAM = "nasrl_architecture"  # the assignment with nasrl's text form
ENAS_PARAMS = ("architecture", "nn_config")
AGENTS = tuple(AGENT_SETTINGS)  # every agent the controller has
SETTINGS = ("agent", "space", "dataset", "epochs", "seed", "max_layers", "input_shape", "classes")
LEASE_SECONDS = 7 * 86400.0  # Katib reports every trial; a lease never needs to expire
DEFAULT_BUDGET = 1000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_VALUES = 64  # values of one nasConfig parameter (the controller's limit per choice list)
# nn_config's embedding lists every convolution (~115 bytes of JSON each) in every assignment:
# 1,000 keep a reply of MAX_SUGGESTIONS assignments within gRPC's 16 MiB
MAX_EMBEDDING = 1000


class KatibError(ValueError):
    """An experiment nasrl cannot run; the message says which setting and why."""


@dataclass(frozen=True)
class Plan:
    """How one Katib experiment maps onto one nasrl search."""

    request: cpb.CreateSearchRequest
    nas: bool  # the experiment has a nasConfig: assignments carry ENAS-style JSON too
    metric: str  # the objective metric's name


def search_name(experiment: str) -> str:
    """The nasrl search name that keys an experiment (the adapter keeps no state)."""
    return f"katib:{experiment}"


def request_id(experiment: str, total: int, count: int, attempt: int) -> str:
    """Sample's idempotency key for one GetSuggestions call: a retry of the same call (the
    adapter restarted before Katib got the answer) gets the same candidates. ``count``, the
    number asked for, is part of it: a Sample repeated with its request id answers the first
    batch whatever the count, and a call for fewer must not get that batch."""
    key = f"{experiment}\0{total}\0{count}\0{attempt}".encode()
    return "katib-" + hashlib.sha256(key).hexdigest()[:40]


def _quoted(text: str, n: int = 60) -> str:
    """``text`` for an error sentence: quoted, cut to ``n`` characters."""
    return repr(text) if len(text) <= n else f"{text[:n]!r}... ({len(text):,} characters)"


def _listed(names: list[str], n: int = 5) -> str:
    """Names for an error sentence, the first ``n`` of them, each cut to 60 characters."""
    shown = ", ".join(name if len(name) <= 60 else f"{name[:60]}..." for name in names[:n])
    return shown + (f" and {len(names) - n:,} more" if len(names) > n else "")


def _settings(spec: kpb.AlgorithmSpec) -> dict[str, str]:
    if spec.algorithm_name != ALGORITHM:
        raise KatibError(
            f"algorithm {_quoted(spec.algorithm_name)} is not served here: set "
            f"algorithm.algorithmName: {ALGORITHM}"
        )
    out: dict[str, str] = {}
    for s in spec.algorithm_settings:
        if s.name not in SETTINGS:
            raise KatibError(
                f"unknown algorithm setting {_quoted(s.name)}; nasrl takes {', '.join(SETTINGS)}"
            )
        out[s.name] = s.value.strip()
    agent = out.get("agent", "reinforce")
    if agent not in AGENTS:
        raise KatibError(
            f"algorithm setting agent={_quoted(agent)}; use one of {', '.join(AGENTS)}"
        )
    if out.get("space", "zoph") not in ("zoph", "metaqnn"):
        raise KatibError(f"algorithm setting space={_quoted(out['space'])}; use zoph or metaqnn")
    return out


def _int(settings: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = settings.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise KatibError(
            f"algorithm setting {name}={_quoted(text)} is not a whole number"
        ) from None
    if not low <= value <= high:
        raise KatibError(f"algorithm setting {name} must be between {low} and {high}, got {value}")
    return value


def _shape(settings: dict[str, str], dataset: str) -> cpb.DatasetShape | None:
    text = settings.get("input_shape")
    if text is None:
        if dataset in DATASET_SHAPES:
            return None
        raise KatibError(
            f"dataset {_quoted(dataset)} is not built in: give the algorithm settings "
            "input_shape (C,H,W) and classes, or a nasConfig with input_sizes "
            "and output_sizes"
        )
    try:
        c, h, w = (int(v) for v in text.split(","))
    except ValueError:
        c = h = w = 0
    if not all(1 <= v <= INT32_MAX for v in (c, h, w)):
        raise KatibError(
            f"algorithm setting input_shape={_quoted(text)} is not C,H,W (three whole "
            f"numbers from 1 to {INT32_MAX:,}: channels, height, width)"
        )
    return cpb.DatasetShape(
        channels=c, height=h, width=w, classes=_int(settings, "classes", 0, 2, 100_000)
    )


def _ints(spec: kpb.ParameterSpec) -> list[int]:
    space = spec.feasible_space
    try:
        if space.list:
            values = {int(float(v)) for v in space.list}
        else:
            span = range(int(space.min), int(space.max) + 1, int(space.step or 1))
            if len(span) > MAX_VALUES:  # before the list is made: min 0, max 1e18 is a range
                raise KatibError(
                    f"nasConfig parameter {_quoted(spec.name)} spans {len(span):,} values (min "
                    f"{_quoted(space.min)}, max {_quoted(space.max)}, step "
                    f"{_quoted(space.step or '1')}); at most {MAX_VALUES}"
                )
            values = set(span)
    except (ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise KatibError(
            f"nasConfig parameter {_quoted(spec.name)} must list whole numbers (or give min, max and "
            "step as whole numbers, step not 0)"
        ) from None
    if len(values) > MAX_VALUES or not all(INT32_MIN <= v <= INT32_MAX for v in values):
        raise KatibError(
            f"nasConfig parameter {_quoted(spec.name)} lists {len(values):,} values from "
            f"{min(values):,} to {max(values):,}; at most {MAX_VALUES}, each a 32-bit whole number"
        )
    return sorted(values)


def _nas_space(nas: kpb.NasConfig) -> tuple[cpb.ZophSpace, cpb.DatasetShape]:
    ops = list(nas.operations.operation)
    other = sorted({o.operation_type for o in ops} - {"convolution"})
    if other or not ops:
        raise KatibError(
            "nasrl's Zoph space is made of convolutions: nasConfig.operations may only be "
            f"operationType: convolution (got {_listed(other) or 'none'}); pooling and "
            "skip connections are chosen by the agent"
        )
    values: dict[str, set[int]] = {"filter_size": set(), "num_filter": set(), "stride": set()}
    for op in ops:
        for p in op.parameter_specs.parameters:
            if p.name not in values:
                raise KatibError(
                    f"convolution parameter {_quoted(p.name)} is not one nasrl knows; "
                    "use filter_size, num_filter and stride"
                )
            values[p.name] |= set(_ints(p))
    graph = nas.graph_config
    if len(graph.input_sizes) != 3 or len(graph.output_sizes) != 1:
        raise KatibError(
            "nasConfig.graphConfig needs inputSizes [height, width, channels] and "
            "outputSizes [classes]"
        )
    h, w, c = graph.input_sizes
    combinations = (
        len(values["filter_size"]) ** 2 * len(values["stride"]) ** 2 * len(values["num_filter"])
    )
    if combinations > MAX_EMBEDDING:
        raise KatibError(
            f"nasConfig's convolution has {len(values['filter_size'])} filter_size, "
            f"{len(values['stride'])} stride and {len(values['num_filter'])} num_filter values: "
            f"{combinations:,} (filter_size² × stride² × num_filter) convolutions, more than "
            f"the {MAX_EMBEDDING:,} nn_config's embedding may list; give fewer values"
        )
    space = cpb.ZophSpace(
        filter_sizes=sorted(values["filter_size"]),
        strides=sorted(values["stride"]),
        filters=sorted(values["num_filter"]),
        max_layers=graph.num_layers,
    )
    return space, cpb.DatasetShape(channels=c, height=h, width=w, classes=graph.output_sizes[0])


def _check_parameters(spec: kpb.ExperimentSpec, nas: bool) -> None:
    names = {p.name for p in spec.parameter_specs.parameters}
    allowed = {ARCH_PARAM, *(ENAS_PARAMS if nas else ())}
    extra = sorted(names - allowed)
    if extra:
        raise KatibError(
            f"nasrl proposes architectures only: parameter(s) {_listed(extra)} "
            f"cannot be assigned; declare {ARCH_PARAM} (a categorical parameter "
            "whose list is ignored) and use it in the trial template"
        )
    if not nas and ARCH_PARAM not in names:
        raise KatibError(
            f"declare a parameter {ARCH_PARAM!r} (categorical, list ['nasrl']): "
            "each trial gets its architecture in it"
        )


def plan(experiment: kpb.Experiment) -> Plan:
    """The nasrl search an experiment becomes; raises KatibError naming a bad setting."""
    spec = experiment.spec
    if not experiment.name:
        raise KatibError("the experiment has no name")
    if spec.objective.type == kpb.MINIMIZE:
        raise KatibError(
            "nasrl maximises the objective (a validation accuracy in [0, 1]); "
            "set objective.type: maximize"
        )
    if not spec.objective.objective_metric_name:
        raise KatibError("objective.objectiveMetricName is empty")
    settings = _settings(spec.algorithm)
    nas = spec.HasField("nas_config") and bool(spec.nas_config.operations.operation)
    _check_parameters(spec, nas)
    dataset = settings.get("dataset", "digits")
    request = cpb.CreateSearchRequest(
        agent=cpb.AgentSpec(name=settings.get("agent", "reinforce")),
        dataset=dataset,
        training=tpb.TrainingConfig(epochs=_int(settings, "epochs", 3, 1, 1000)),
        budget=spec.max_trial_count or DEFAULT_BUDGET,
        seed=_int(settings, "seed", 0, 0, 2**62),
        lease_seconds=LEASE_SECONDS,
        name=search_name(experiment.name),
    )
    if nas:
        space, shape = _nas_space(spec.nas_config)
        request.space.zoph.CopyFrom(space)
        if dataset not in DATASET_SHAPES or shape != _builtin(dataset):
            request.dataset_shape.CopyFrom(shape)
    else:
        shape_or_none = _shape(settings, dataset)
        if shape_or_none is not None:
            request.dataset_shape.CopyFrom(shape_or_none)
        if "space" in settings:
            request.space.name = settings["space"]
        layers = _int(settings, "max_layers", 0, 1, 64)
        if layers and settings.get("space", "zoph") == "zoph":
            request.space.zoph.CopyFrom(cpb.ZophSpace(max_layers=layers))
    return Plan(request, nas, spec.objective.objective_metric_name)


def _builtin(dataset: str) -> cpb.DatasetShape:
    s = DATASET_SHAPES[dataset]
    return cpb.DatasetShape(channels=s.channels, height=s.height, width=s.width, classes=s.classes)
