"""Hypothesis strategies for hostile requests: edge values, messages built field by field,
protobuf wire data written by hand, and valid requests mutated one field at a time."""

from __future__ import annotations

import math
import struct
from typing import Any, Literal, cast

from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb

from .conftest import SMALL_METAQNN, SMALL_ZOPH, Shown, short

# ----------------------------------------------------------------------------- strategies

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
EDGE_INT32 = [
    0,
    1,
    -1,
    2,
    3,
    7,
    8,
    15,
    16,
    63,
    64,
    65,
    1000,
    2048,
    2049,
    16384,
    16385,
    2**31 - 1,
    -(2**31),
    2**30,
    -(2**30),
]
EDGE_INT64 = [*EDGE_INT32, 2**63 - 1, -(2**63), 2**53 + 1, 2**32, -(2**32)]
EDGE_FLOAT = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    -1.0,
    1.0,
    1.0000001,
    0.9999999,
    2.0,
    1e-45,
    5e-324,
    1e38,
    3.4028234663852886e38,
    1.7976931348623157e308,
    -1e308,
]
MB = 1024 * 1024
HUGE_TEXT = [
    "x" * MB,
    "é" * (MB // 2),
    "\U0001f600" * (MB // 4),
    "\x00" * 20_000,
    "digits" + " " * 100_000,
]


def int32s() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGE_INT32), st.integers(*INT32), st.integers(-3, 70))


def int64s() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGE_INT64), st.integers(*INT64))


def floats(width: Literal[32, 64] = 64) -> st.SearchStrategy[float]:
    edge = [x for x in EDGE_FLOAT if width == 64 or not math.isfinite(x) or abs(x) < 3.5e38]
    return st.one_of(st.sampled_from(edge), st.floats(width=width), st.floats(-2, 2, width=width))


def texts(names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Names a service knows, unicode, control characters, empty, long and 1 MB strings."""
    parts: list[st.SearchStrategy[str]] = [
        st.text(st.characters(codec="utf-8"), max_size=40),
        st.text(
            st.characters(codec="utf-8", categories=("Lo", "So", "Mn", "Zs", "Cc", "Cf")),
            min_size=1,
            max_size=20,
        ),
        st.sampled_from(
            [
                "",
                " ",
                "\x00",
                "\u202e",
                "\ufeff",
                "NaN",
                "-1",
                "'; DROP TABLE x;--",
                "%s%n",
                "../../etc/passwd",
                "DIGITS",
                "digits\x00",
                "zoph\n",
            ]
        ),
        st.integers(65, 5000).map(lambda n: "a" * n),
        st.sampled_from(HUGE_TEXT),
    ]
    if names:
        parts.insert(0, st.sampled_from(names))
        parts.append(st.sampled_from(names).map(lambda s: s + "\u0301"))
    return st.one_of(*parts)


DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn")
AGENTS = ("reinforce", "qlearning", "random", "evolution")


def enums(valid: int) -> st.SearchStrategy[int]:
    """Valid values 0..valid and unknown ones (open proto3 enums take any int32)."""
    return st.one_of(
        st.integers(0, valid), st.sampled_from([-1, valid + 1, 99, 2**31 - 1, -(2**31)])
    )


def int_lists(max_size: int = 30) -> st.SearchStrategy[list[int]]:
    """Short lists of hostile ints, and huge ones (100,000 entries, built, not drawn)."""
    return st.one_of(
        st.lists(int32s(), max_size=max_size),
        st.tuples(int32s(), st.sampled_from([1_000, 10_000, 100_000])).map(lambda t: [t[0]] * t[1]),
        st.sampled_from([list(range(100_000)), list(range(-50_000, 50_000))]),
    )


@st.composite
def layers(draw: st.DrawFn, index: int = 1, huge_inputs: bool = True) -> apb.Layer:
    layer = apb.Layer()
    op = draw(st.sampled_from(["conv", "pool", "fc", "gap", None]))
    if op == "conv":
        layer.conv.CopyFrom(
            apb.Conv(
                filters=draw(int32s()),
                kernel_h=draw(int32s()),
                kernel_w=draw(int32s()),
                stride_h=draw(int32s()),
                stride_w=draw(int32s()),
            )
        )
    elif op == "pool":
        layer.pool.CopyFrom(apb.Pool(kernel=draw(int32s()), stride=draw(int32s())))
    elif op == "fc":
        layer.fc.CopyFrom(apb.FC(units=draw(int32s())))
    elif op == "gap":
        layer.gap.SetInParent()
    kinds = [
        st.just([]),
        st.lists(st.integers(-2, index + 2), max_size=8),
        st.lists(int32s(), max_size=8),
    ]
    if huge_inputs:
        kinds += [
            st.integers(0, 10_000).map(lambda n: list(range(n))),
            st.integers(0, 10_000).map(lambda n: [0] * n),
            st.sampled_from(
                [[2**31 - 1] * 10_000, [-(2**31)] * 10_000, list(range(-5_000, 5_000))]
            ),
        ]
    layer.inputs.extend(draw(st.one_of(*kinds)))
    return layer


@st.composite
def architectures(draw: st.DrawFn, max_layers: int = 300) -> apb.Architecture:
    n = draw(
        st.one_of(
            st.integers(0, 6), st.integers(0, max_layers), st.sampled_from([64, 65, max_layers])
        )
    )
    arch = apb.Architecture(classes=draw(st.one_of(st.sampled_from([0, 10, 2]), int32s())))
    if n > 12:
        # Many layers: a few drawn ones repeated (drawing 300 layers each is slow).
        proto = [draw(layers(i + 1, huge_inputs=False)) for i in range(3)]
        arch.layers.extend(proto[i % 3] for i in range(n))
    else:
        arch.layers.extend(draw(layers(i + 1)) for i in range(n))
    return arch


@st.composite
def sane_layers(draw: st.DrawFn, index: int) -> apb.Layer:
    """Layers that mostly validate on digits (8x8) and are cheap to train for real."""
    layer = apb.Layer()
    op = draw(st.sampled_from(["conv", "conv", "pool", "fc", "gap"]))
    if op == "conv":
        layer.conv.CopyFrom(
            apb.Conv(
                filters=draw(st.integers(1, 8)),
                kernel_h=draw(st.integers(1, 5)),
                kernel_w=draw(st.integers(1, 5)),
                stride_h=draw(st.integers(1, 3)),
                stride_w=draw(st.integers(1, 3)),
            )
        )
    elif op == "pool":
        layer.pool.CopyFrom(
            apb.Pool(kernel=draw(st.integers(1, 3)), stride=draw(st.integers(1, 3)))
        )
    elif op == "fc":
        layer.fc.CopyFrom(apb.FC(units=draw(st.integers(1, 16))))
    else:
        layer.gap.SetInParent()
    if draw(st.booleans()):
        layer.inputs.extend(draw(st.lists(st.integers(0, index - 1), unique=True, max_size=3)))
    return layer


@st.composite
def sane_architectures(draw: st.DrawFn) -> apb.Architecture:
    n = draw(st.integers(1, 4))
    return apb.Architecture(layers=[draw(sane_layers(i + 1)) for i in range(n)])


@st.composite
def training_configs(
    draw: st.DrawFn, epochs: st.SearchStrategy[int] | None = None
) -> tpb.TrainingConfig:
    cfg = tpb.TrainingConfig()
    for name in (
        "epochs",
        "batch_size",
        "seed",
        "optimizer",
        "schedule",
        "learning_rate",
        "momentum",
        "weight_decay",
        "max_seconds",
    ):
        if not draw(st.booleans()):
            continue
        if name == "epochs":
            cfg.epochs = draw(
                epochs if epochs is not None else st.one_of(int32s(), st.sampled_from([1000, 1001]))
            )
        elif name == "batch_size":
            cfg.batch_size = draw(st.one_of(int32s(), st.sampled_from([1, 2, 4096, 4097])))
        elif name == "seed":
            cfg.seed = draw(int64s())
        elif name in ("optimizer", "schedule"):
            setattr(cfg, name, draw(enums(2 if name == "optimizer" else 3)))
        else:
            setattr(cfg, name, draw(floats()))
    return cfg


@st.composite
def train_requests(draw: st.DrawFn) -> tpb.TrainRequest:
    req = tpb.TrainRequest(dataset=draw(texts(DATASETS)))
    if draw(st.integers(0, 9)):
        req.architecture.CopyFrom(draw(st.one_of(architectures(), sane_architectures())))
    if draw(st.booleans()):
        req.config.CopyFrom(draw(training_configs()))
    return req


# ----------------------------------------------------------------------------- wire format


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


@st.composite
def wire_fields(draw: st.DrawFn, depth: int = 0) -> bytes:
    """One protobuf field, well-formed or not: known and unknown numbers, every wire type,
    values that overflow the declared type, overlong varints, lying length prefixes, nested
    messages and groups."""
    field = draw(
        st.one_of(
            st.integers(1, 13), st.sampled_from([0, 19000, 2**29 - 1]), st.integers(14, 2**29 - 1)
        )
    )
    wire = draw(st.sampled_from([0, 0, 1, 2, 2, 2, 3, 5, 6, 7]))
    if wire == 0:
        value = draw(
            st.one_of(
                st.integers(0, 2**64 - 1),
                st.sampled_from([2**32, 2**31, 2**63, 2**64 - 1, 2**40 + 5]),
            )
        )
        body = varint(value)
        if draw(st.integers(0, 5)) == 0:  # overlong / unterminated varint
            body = b"\xff" * draw(st.integers(1, 12)) + draw(
                st.sampled_from([b"", b"\x00", b"\x01"])
            )
        return tag(field, 0) + body
    if wire == 1:
        return tag(field, 1) + draw(
            st.one_of(
                st.floats().map(lambda x: struct.pack("<d", x)), st.binary(min_size=0, max_size=8)
            )
        )
    if wire == 5:
        return tag(field, 5) + draw(
            st.one_of(
                st.floats(width=32).map(lambda x: struct.pack("<f", x)), st.binary(max_size=4)
            )
        )
    if wire == 3:  # a group, nested deeply or left open
        n = draw(st.sampled_from([1, 5, 50, 99, 100, 101, 5000]))
        close = draw(st.booleans())
        return tag(field, 3) * n + (tag(field, 4) * n if close else b"")
    if wire == 2:
        if depth < 3 and draw(st.booleans()):
            payload = b"".join(draw(st.lists(wire_fields(depth + 1), max_size=4)))
        else:
            payload = draw(
                st.one_of(
                    st.binary(max_size=64),
                    st.text(max_size=20).map(lambda s: s.encode()),
                    st.sampled_from([b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"digits"]),
                )
            )
        length = len(payload)
        lie = draw(st.sampled_from([0, 0, 0, 1, -1, 2**31, 2**63]))
        return tag(field, 2) + varint(max(0, length + lie)) + payload
    return tag(field, wire)  # 6, 7: invalid wire types


def deep_nesting(depth: int) -> bytes:
    """A length-delimited field nested ``depth`` times (Architecture.layers -> Layer ...)."""
    inner = b""
    for _ in range(depth):
        inner = ld(1, inner)
    return inner


RAW_MESSAGES = st.one_of(
    st.binary(max_size=512),
    st.lists(wire_fields(), max_size=12).map(b"".join),
    st.sampled_from(
        [
            b"",
            b"\x00",
            b"\xff" * 11,
            b"\x0a\xff\xff\xff\xff\x0f",
            deep_nesting(200),
            deep_nesting(10_000),
            b"\x0b" * 10_000,
            b"\x08" + b"\x80" * 9 + b"\x02",
        ]
    ),
)


# ----------------------------------------------------------------------------- controller


@st.composite
def zoph_spaces(draw: st.DrawFn) -> cpb.ZophSpace:
    return cpb.ZophSpace(
        filter_sizes=draw(st.one_of(st.just([]), st.just([1, 3]), int_lists())),
        strides=draw(st.one_of(st.just([]), st.just([1]), int_lists())),
        filters=draw(st.one_of(st.just([]), st.just([4, 8]), int_lists())),
        max_layers=draw(st.one_of(st.sampled_from([0, 1, 3, 65]), int32s())),
        no_skip_connections=draw(st.booleans()),
    )


@st.composite
def pool_lists(draw: st.DrawFn) -> list[cpb.PoolChoice]:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return []
    if kind == 1:
        return [
            cpb.PoolChoice(size=draw(int32s()), stride=draw(int32s()))
            for _ in range(draw(st.integers(1, 5)))
        ]
    n = draw(st.sampled_from([1_000, 100_000]))
    return [
        cpb.PoolChoice(
            size=draw(st.sampled_from([0, -1, 16])), stride=draw(st.sampled_from([2, 0, 2**31 - 1]))
        )
    ] * n


@st.composite
def metaqnn_spaces(draw: st.DrawFn) -> cpb.MetaQNNSpace:
    return cpb.MetaQNNSpace(
        conv_sizes=draw(st.one_of(st.just([]), st.just([1, 3]), int_lists())),
        conv_filters=draw(st.one_of(st.just([]), st.just([4, 8]), int_lists())),
        pools=draw(pool_lists()),
        fc_units=draw(st.one_of(st.just([]), st.just([16]), int_lists())),
        max_depth=draw(st.one_of(st.sampled_from([0, 1, 3, 65]), int32s())),
        max_fc=draw(st.one_of(st.sampled_from([0, 1, 9]), int32s())),
        fc_max_size=draw(st.one_of(st.sampled_from([0, 1, 4, 4097]), int32s())),
    )


@st.composite
def search_spaces(draw: st.DrawFn) -> cpb.SearchSpace:
    kind = draw(st.sampled_from(["none", "zoph", "metaqnn", "name", "small"]))
    if kind == "zoph":
        return cpb.SearchSpace(zoph=draw(zoph_spaces()))
    if kind == "metaqnn":
        return cpb.SearchSpace(metaqnn=draw(metaqnn_spaces()))
    if kind == "name":
        return cpb.SearchSpace(name=draw(texts(("zoph", "metaqnn"))))
    if kind == "small":
        return draw(st.sampled_from([SMALL_ZOPH, SMALL_METAQNN]))
    return cpb.SearchSpace()


@st.composite
def agent_specs(draw: st.DrawFn) -> cpb.AgentSpec:
    spec = cpb.AgentSpec(name=draw(texts(AGENTS)))
    chosen = draw(st.sampled_from([None, *AGENTS]))
    if chosen is not None:
        settings_msg = getattr(spec, chosen)
        settings_msg.SetInParent()
        for f in settings_msg.DESCRIPTOR.fields:
            if draw(st.booleans()):
                value = draw(
                    floats(32 if f.type == f.TYPE_FLOAT else 64)
                    if f.type in (f.TYPE_FLOAT, f.TYPE_DOUBLE)
                    else int32s()
                )
                setattr(settings_msg, f.name, value)
    return spec


@st.composite
def create_requests(draw: st.DrawFn) -> cpb.CreateSearchRequest:
    req = cpb.CreateSearchRequest(
        agent=draw(agent_specs()),
        space=draw(search_spaces()),
        dataset=draw(texts(DATASETS)),
        reward=cast("cpb.Reward.ValueType", draw(enums(2))),  # open enums take any int32
        budget=draw(st.one_of(st.sampled_from([0, 1, 5, 1_000_000, 1_000_001]), int32s())),
        seed=draw(int64s()),
        lease_seconds=draw(floats()),
        name=draw(texts()),
    )
    if draw(st.booleans()):
        req.training.CopyFrom(draw(training_configs()))
    return req


def search_ids(sids: list[str]) -> st.SearchStrategy[str]:
    """Known ids, near misses of them, and junk."""
    return st.one_of(
        st.sampled_from(sids),
        st.sampled_from(sids).map(lambda s: s.upper()),
        st.sampled_from(sids).map(lambda s: s + "\x00"),
        st.sampled_from(sids).map(lambda s: s[:-1]),
        st.sampled_from(sids).map(lambda s: " " + s),
        st.text(st.sampled_from("0123456789abcdef"), min_size=12, max_size=12),
        texts(),
        st.sampled_from(["a" * 64, "a" * 65, "é" * 64, "é" * 65, "%", "*", "' OR '1'='1"]),
    )


@st.composite
def train_results(draw: st.DrawFn) -> tpb.TrainResult:
    acc = st.one_of(st.floats(0, 1, width=32), floats(32))
    result = tpb.TrainResult(
        validation_accuracy=draw(acc),
        validation_accuracy_last5=draw(acc),
        test_accuracy=draw(acc),
        params=draw(int64s()),
        flops=draw(int64s()),
        seconds=draw(floats()),
        device=draw(texts()),
        architecture=draw(texts()),
        stopped_early=draw(st.booleans()),
        train_examples=draw(int32s()),
        validation_examples=draw(int32s()),
        test_examples=draw(int32s()),
    )
    curve = draw(st.sampled_from(["none", "none", "short", "short", "short", "huge"]))
    if curve == "short":
        result.curve.extend(
            tpb.EpochProgress(
                epoch=draw(int32s()),
                epochs=draw(int32s()),
                train_loss=draw(floats(32)),
                train_accuracy=draw(floats(32)),
                validation_accuracy=draw(floats(32)),
                seconds=draw(floats()),
            )
            for _ in range(draw(st.integers(1, 5)))
        )
    elif curve == "huge":  # 100,000 epochs
        e = tpb.EpochProgress(
            epoch=1,
            epochs=100_000,
            train_loss=math.nan,
            train_accuracy=0.5,
            validation_accuracy=0.5,
            seconds=1.0,
        )
        result.curve.extend([e] * 100_000)
    return result


@st.composite
def update_requests(draw: st.DrawFn, sids: list[str]) -> cpb.UpdateRequest:
    req = cpb.UpdateRequest(
        search_id=draw(search_ids(sids)),
        candidate_id=draw(st.one_of(st.integers(-2, 50), int64s())),
    )
    outcome = draw(st.sampled_from(["result", "failure", "none"]))
    if outcome == "result":
        req.result.CopyFrom(draw(train_results()))
    elif outcome == "failure":
        req.failure = draw(texts())
    return req


# ----------------------------------------------------------------------------- mutation


def _is_repeated(f: _descriptor.FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def field_paths(
    desc: _descriptor.Descriptor, prefix: tuple[str, ...] = (), depth: int = 0
) -> list[tuple[str, ...]]:
    """Every field of a message type, nested messages included (three levels)."""
    out = []
    for f in desc.fields:
        path = (*prefix, f.name)
        out.append(path)
        if f.message_type is not None and not _is_repeated(f) and depth < 3:
            out += field_paths(f.message_type, path, depth + 1)
    return out


def scalar_values(f: _descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t == f.TYPE_INT32:
        return int32s()
    if t == f.TYPE_INT64:
        return int64s()
    if t == f.TYPE_FLOAT:
        return floats(32)
    if t == f.TYPE_DOUBLE:
        return floats()
    if t == f.TYPE_BOOL:
        return st.booleans()
    if t == f.TYPE_ENUM:
        assert f.enum_type is not None
        return enums(len(f.enum_type.values) - 1)
    if t == f.TYPE_STRING:
        return texts()
    raise AssertionError(f"no strategy for {f.full_name}")


@st.composite
def mutated(draw: st.DrawFn, base: Message) -> tuple[Message, str]:
    """``base`` with one field (or one nested field) set to a hostile value: a scalar from
    the hostile strategies, a repeated field emptied, filled or made 100,000 long, a message
    cleared or emptied."""
    msg = type(base)()
    msg.CopyFrom(base)
    desc = cast(_descriptor.Descriptor, msg.DESCRIPTOR)  # upb's at run time, the same API
    path = draw(st.sampled_from(field_paths(desc)), label="field")
    where = ".".join(path)
    parent: Any = msg
    for name in path[:-1]:
        parent = getattr(parent, name)
    f = parent.DESCRIPTOR.fields_by_name[path[-1]]
    if f.message_type is not None:
        if f.message_type.GetOptions().map_entry:
            return msg, f"{where} (a map: untouched)"
        if _is_repeated(f):
            container = getattr(parent, f.name)
            element = type(container.add())()
            del container[:]
            # a hostile element is repeated at most 10 times: a hostile size inside a hostile
            # count (100,000 x 100,000 values) only exhausts the test's own memory
            hostile = bool(element.DESCRIPTOR.fields) and draw(st.booleans())
            n = draw(st.sampled_from([0, 1, 10] if hostile else [0, 1, 10_000, 100_000]))
            if n and hostile:
                element, _ = draw(mutated(element))
            container.extend([element] * n)
            return msg, f"{where} x{n}"
        action = draw(st.sampled_from(["cleared", "emptied"]))
        parent.ClearField(f.name)
        if action == "emptied":
            getattr(parent, f.name).SetInParent()
        return msg, f"{where} {action}"
    if _is_repeated(f):
        values = draw(
            st.one_of(
                st.lists(scalar_values(f), max_size=20),
                # 100,000 copies of a 1 MB string would only exhaust the test's own memory:
                # a long list repeats a value of at most 200 characters
                st.tuples(scalar_values(f), st.sampled_from([10_000, 100_000])).map(
                    lambda t: [t[0][:200] if isinstance(t[0], str) else t[0]] * t[1]
                ),
            )
        )
        container = getattr(parent, f.name)
        del container[:]
        container.extend(values)
        return msg, f"{where} = [{len(values)} values]"
    value = draw(scalar_values(f), label=where)
    setattr(parent, f.name, value)
    return msg, f"{where} = {short(repr(value), 60)}"


def mutation(base: Message) -> st.SearchStrategy[tuple[Shown, str]]:
    return mutated(base).map(lambda t: (Shown(t[0]), t[1]))
