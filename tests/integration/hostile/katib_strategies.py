"""Hypothesis strategies for the Katib adapter's requests: experiments (algorithm settings,
parameters, objective, nasConfig) and trials (labels, conditions, metrics) built field by
field from hostile values, above all the numbers Katib carries as strings."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from katib_adapter.plan import AGENTS, ARCH_PARAM, ENAS_PARAMS, SETTINGS
from katib_adapter.trials import CANDIDATE_LABEL
from protos import katib_api_pb2 as kpb

from .conftest import Shown, short
from .strategies import (
    DATASETS,
    MB,
    enums,
    field_paths,
    floats,
    int32s,
    int64s,
    scalar_values,
    texts,
)

T = TypeVar("T")
METRICS = ("accuracy", "test_accuracy", "params", "flops", "seconds")
NAS_PARAMS = ("filter_size", "num_filter", "stride")

# Numbers as Katib sends them: text, from what a user typed or a metrics collector parsed.
EDGE_NUMBERS = [
    "0",
    "1",
    "3",
    "-1",
    "-0",
    "0.5",
    "1.0",
    "1e-9",
    "1e30",
    "-1e30",
    "1e400",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    " 7 ",
    "+3",
    "3.",
    ".5",
    "1_000",
    "0x10",
    "0b11",
    "²",  # a digit to str.isdigit, not to int()
    "٣",  # ARABIC-INDIC THREE: int() takes it
    "３",  # FULLWIDTH THREE
    "\u00a03",
    "3\x00",
    str(2**31),
    str(2**31 - 1),
    str(-(2**31) - 1),
    str(2**63 - 1),
    str(2**63),
    str(2**64),
    str(10**30),
    "9" * 4301,  # over Python's int() digit limit
    "1" * 100_000,
]


def short_texts() -> st.SearchStrategy[str]:
    """Unicode up to 40 characters: for what a message repeats thousands of times (a 1 MB
    string 10,000 times is a message no client can send)."""
    return st.text(st.characters(codec="utf-8"), max_size=40)


def numbers(small: bool = False) -> st.SearchStrategy[str]:
    """Text that may or may not read as a number (or the number Katib meant); ``small``:
    none longer than 40 characters."""
    edge = [n for n in EDGE_NUMBERS if not small or len(n) <= 40]
    return st.one_of(
        st.sampled_from(edge),
        int64s().map(str),
        st.integers(-(10**40), 10**40).map(str),
        floats().map(repr),
        st.integers(-3, 70).map(str),
        short_texts() if small else texts(),
    )


VALID_SETTINGS: dict[str, tuple[str, ...]] = {
    "agent": ("random", "evolution", "random"),
    "space": ("zoph", "metaqnn"),
    "dataset": ("digits", "imagenet"),
    "epochs": ("1", "3"),
    "seed": ("0", "7"),
    "max_layers": ("1", "3", "64"),
    "input_shape": ("1,8,8", "3,32,32"),
    "classes": ("10", "2"),
}


def often(valid: st.SearchStrategy[T], hostile: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """A valid value four times in five, so that a hostile one in another field reaches deep
    code (``st.one_of`` flattens nested ``one_of``s: one valid branch beside texts()'s seven
    would come up an eighth of the time)."""
    return st.integers(0, 4).flatmap(lambda k: hostile if k == 4 else valid)  # shrinks to valid


def setting_values(name: str) -> st.SearchStrategy[str]:
    known: dict[str, tuple[str, ...]] = {
        "agent": AGENTS,
        "space": ("zoph", "metaqnn"),
        "dataset": DATASETS,
    }
    if name in known:
        hostile = texts(known[name])
    elif name == "input_shape":
        hostile = st.one_of(
            st.tuples(numbers(), numbers(), numbers()).map(",".join),
            st.sampled_from(["1,8", "1,8,8,8", ",,", "1,,8", "0,8,8", "1,-8,8"]),
            texts(),
        )
    else:
        hostile = numbers()
    return often(st.sampled_from(VALID_SETTINGS.get(name, ("1",))), hostile)


@st.composite
def algorithm_settings(draw: st.DrawFn) -> list[kpb.AlgorithmSetting]:
    if draw(st.integers(0, 9)) == 0:  # many settings: the same one repeated
        name = draw(st.sampled_from(SETTINGS))
        value = draw(st.one_of(numbers(small=True), st.sampled_from(AGENTS)))
        return [kpb.AlgorithmSetting(name=name, value=value)] * draw(st.sampled_from([100, 10_000]))
    out = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(often(st.sampled_from(SETTINGS), texts(SETTINGS)))
        out.append(kpb.AlgorithmSetting(name=name, value=draw(setting_values(name))))
    return out


@st.composite
def feasible_spaces(draw: st.DrawFn) -> kpb.FeasibleSpace:
    space = kpb.FeasibleSpace()
    kind = draw(st.sampled_from(["list", "list", "range", "both", "none"]))
    if kind in ("list", "both"):
        space.list.extend(
            draw(
                st.one_of(
                    st.lists(numbers(), max_size=8),
                    st.lists(st.integers(-3, 20).map(str), max_size=8),
                    st.sampled_from([[str(i) for i in range(1_000)], ["3"] * 100_000]),
                )
            )
        )
    if kind in ("range", "both"):
        space.min = draw(st.one_of(st.sampled_from(["1", "0", "-5"]), numbers()))
        space.max = draw(st.one_of(st.sampled_from(["5", "64", "100000", "1e18"]), numbers()))
        space.step = draw(st.one_of(st.sampled_from(["", "1", "2", "0", "-1"]), numbers()))
    return space


@st.composite
def parameter_specs(draw: st.DrawFn, names: tuple[str, ...]) -> kpb.ParameterSpec:
    return kpb.ParameterSpec(
        name=draw(texts(names)),
        parameter_type=cast("kpb.ParameterType.ValueType", draw(enums(4))),
        feasible_space=draw(feasible_spaces()),
    )


def _nas(sizes: list[int], values: dict[str, list[str]]) -> kpb.NasConfig:
    nas = kpb.NasConfig(
        graph_config=kpb.GraphConfig(num_layers=3, input_sizes=sizes, output_sizes=[10])
    )
    op = nas.operations.operation.add(operation_type="convolution")
    for name, listed in values.items():
        op.parameter_specs.parameters.add(name=name, feasible_space=kpb.FeasibleSpace(list=listed))
    return nas


VALID_NAS = [
    _nas([8, 8, 1], {"filter_size": ["1", "3"], "num_filter": ["4", "8"], "stride": ["1"]}),
    _nas([32, 32, 3], {"filter_size": ["3"], "num_filter": ["16"], "stride": ["1", "2"]}),
    # the largest embedding the adapter takes: 5 x 5 x 2 x 2 x 10 = 1,000 convolutions
    _nas(
        [8, 8, 1],
        {
            "filter_size": ["1", "3", "5", "7", "9"],
            "num_filter": [str(n) for n in range(1, 11)],
            "stride": ["1", "2"],
        },
    ),
]


@st.composite
def nas_configs(draw: st.DrawFn) -> kpb.NasConfig:
    def sizes() -> st.SearchStrategy[list[int]]:
        return st.one_of(
            st.sampled_from([[8, 8, 1], [10], [32, 32, 3], [], [8, 8], [8, 8, 1, 1]]),
            st.lists(int32s(), max_size=4),
        )

    nas = kpb.NasConfig(
        graph_config=kpb.GraphConfig(
            num_layers=draw(st.one_of(st.integers(-1, 70), int32s())),
            input_sizes=draw(sizes()),
            output_sizes=draw(sizes()),
        )
    )
    for _ in range(draw(st.integers(0, 3))):
        op = nas.operations.operation.add(operation_type=draw(texts(("convolution",))))
        op.parameter_specs.parameters.extend(
            draw(st.lists(parameter_specs(NAS_PARAMS), max_size=4))
        )
    return nas


# The part of an experiment a hypothesis example makes hostile: one (the others valid, so that
# it reaches the code past them), none, or all of them.
PARTS = ("none", "name", "objective", "algorithm", "settings", "parameters", "nas", "counts", "all")


@st.composite
def valid_settings(draw: st.DrawFn, nas: bool) -> list[kpb.AlgorithmSetting]:
    chosen = {
        "agent": draw(st.sampled_from(["random", "evolution", "random"])),
        "dataset": "digits",
        "epochs": draw(st.sampled_from(["1", "2"])),
        "seed": draw(st.sampled_from(["0", "7", str(2**62)])),
    }
    if not nas:
        chosen["max_layers"] = draw(st.sampled_from(["1", "3"]))
        if draw(st.booleans()):
            chosen["space"] = draw(st.sampled_from(["zoph", "metaqnn"]))
    keep = draw(st.lists(st.sampled_from(sorted(chosen)), unique=True))
    return [kpb.AlgorithmSetting(name=k, value=chosen[k]) for k in keep]


@st.composite
def experiments(draw: st.DrawFn, names: tuple[str, ...] = ()) -> kpb.Experiment:
    """Experiments valid but for one part (``PARTS``), or wholly valid, or wholly hostile."""
    part = draw(st.sampled_from(PARTS))

    def pick(name: str, valid: st.SearchStrategy[T], hostile: st.SearchStrategy[T]) -> T:
        return draw(hostile if part in (name, "all") else valid)

    nas = draw(st.booleans())
    params = (ARCH_PARAM, *ENAS_PARAMS) if nas else (ARCH_PARAM,)
    spec = kpb.ExperimentSpec(
        objective=kpb.ObjectiveSpec(
            type=cast(
                "kpb.ObjectiveType.ValueType",
                pick("objective", st.sampled_from([kpb.MAXIMIZE, kpb.UNKNOWN]), enums(2)),
            ),
            goal=draw(floats()),
            objective_metric_name=pick("objective", st.just("accuracy"), texts(METRICS)),
            additional_metric_names=draw(st.lists(texts(METRICS), max_size=3)),
        ),
        algorithm=kpb.AlgorithmSpec(
            algorithm_name=pick("algorithm", st.just("nasrl"), texts(("nasrl",))),
            algorithm_settings=pick("settings", valid_settings(nas), algorithm_settings()),
        ),
        parallel_trial_count=pick("counts", st.integers(1, 3), int32s()),
        max_trial_count=pick(
            "counts",
            st.sampled_from([0, 1_000_000]),
            st.one_of(st.sampled_from([0, 1, 3, 1_000_000, 1_000_001]), int32s()),
        ),
    )
    spec.parameter_specs.parameters.extend(
        pick(
            "parameters",
            st.just([kpb.ParameterSpec(name=n) for n in params]),
            st.lists(parameter_specs((ARCH_PARAM, *ENAS_PARAMS)), max_size=4),
        )
    )
    if nas:
        spec.nas_config.CopyFrom(pick("nas", st.sampled_from(VALID_NAS), nas_configs()))
    name = pick("name", st.sampled_from(names or ("hostile",)), texts(names))
    return kpb.Experiment(name=name, spec=spec)


def labels(candidates: tuple[int, ...] = (), small: bool = False) -> st.SearchStrategy[str]:
    """``nasrl-candidate`` values: real candidate ids (or small numbers, which may be some),
    near misses of them, and junk."""
    known = st.sampled_from(candidates) if candidates else st.integers(0, 50)
    hostile = st.one_of(
        numbers(small),
        known.map(lambda c: f" {c}"),
        known.map(lambda c: f"0{c}"),
        known.map(lambda c: f"{c}.0"),
        known.map(lambda c: f"-{c}"),
        known.map(lambda c: f"{c + 2**64}"),
    )
    return often(known.map(str), hostile)


@st.composite
def trials(draw: st.DrawFn, candidates: tuple[int, ...] = (), small: bool = False) -> kpb.Trial:
    """A trial with hostile fields; ``small``: no string longer than 40 characters."""
    text = short_texts() if small else texts()
    trial = kpb.Trial(name=draw(text))
    if draw(st.integers(0, 4)):
        trial.spec.labels[CANDIDATE_LABEL] = draw(labels(candidates, small))
    if draw(st.booleans()):
        trial.spec.labels[draw(text)] = draw(text)
    if draw(st.booleans()):
        trial.spec.parameter_assignments.assignments.add(name=ARCH_PARAM, value=draw(text))
    trial.status.condition = cast(
        "kpb.TrialStatus.TrialConditionType.ValueType",
        draw(st.one_of(st.sampled_from([2, 2, 3, 4, 5, 6]), enums(7))),
    )
    for _ in range(draw(st.integers(0, 6))):
        trial.status.observation.metrics.add(
            name=draw(st.one_of(st.sampled_from(METRICS), text)), value=draw(numbers(small))
        )
    return trial


@st.composite
def trial_lists(draw: st.DrawFn, candidates: tuple[int, ...] = ()) -> list[kpb.Trial]:
    """A few trials, or one repeated thousands of times (Katib sends every trial each call)."""
    if draw(st.integers(0, 7)):
        return draw(st.lists(trials(candidates), max_size=5))
    return [draw(trials(candidates, small=True))] * draw(st.sampled_from([1_000, 10_000]))


def request_numbers() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([0, 1, 2, 3, -1, 1000, 1001]), int32s())


# ----------------------------------------------------------------------------- mutation

MUTATION_BYTES = 12 * MB  # a mutated message stays under the servers' 16 MiB (and in memory)


@st.composite
def bounded_mutated(draw: st.DrawFn, base: Message) -> tuple[Message, str]:
    """``strategies.mutated`` for messages whose repeated fields hold strings, or messages with
    strings (trials, settings, parameters): ``base`` with one field (or nested field) set to a
    hostile value, a repeated field emptied, filled or made 10,000 or 100,000 long, a message
    cleared or emptied; but a long repeated field repeats a value only as often as fits in
    ``MUTATION_BYTES`` (100,000 trials each with a 1 MB name are 100 GB, which no client
    can send)."""
    msg = type(base)()
    msg.CopyFrom(base)
    desc = cast(_descriptor.Descriptor, msg.DESCRIPTOR)
    path = draw(st.sampled_from(field_paths(desc)), label="field")
    where = ".".join(path)
    parent: Any = msg
    for name in path[:-1]:
        parent = getattr(parent, name)
    f = parent.DESCRIPTOR.fields_by_name[path[-1]]
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        return msg, f"{where} (a map: untouched)"
    if f.message_type is not None and not f.is_repeated:
        action = draw(st.sampled_from(["cleared", "emptied"]))
        parent.ClearField(f.name)
        if action == "emptied":
            getattr(parent, f.name).SetInParent()
        return msg, f"{where} {action}"
    if not f.is_repeated:
        value = draw(scalar_values(f), label=where)
        setattr(parent, f.name, value)
        return msg, f"{where} = {short(repr(value), 60)}"
    container = getattr(parent, f.name)
    n = draw(st.sampled_from([0, 1, 20, 10_000, 100_000]))
    if f.message_type is not None:
        element: Any = type(container.add())()
        if n and element.DESCRIPTOR.fields and draw(st.booleans()):
            element, _ = draw(bounded_mutated(element))
        size = element.ByteSize()
    else:
        element = draw(scalar_values(f), label=where)
        size = len(element.encode()) if isinstance(element, str) else 8
    n = min(n, MUTATION_BYTES // (size + 4))
    del container[:]
    container.extend([element] * n)
    shown = Shown(element) if isinstance(element, Message) else element
    return msg, f"{where} = {n} x {short(repr(shown), 80)}"


def bounded_mutation(base: Message) -> st.SearchStrategy[tuple[Shown, str]]:
    return bounded_mutated(base).map(lambda t: (Shown(t[0]), t[1]))
