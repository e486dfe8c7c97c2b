"""Hostile input for every RPC of both services, over real gRPC on loopback.

Random bytes, hand-made protobuf wire data (overlong varints, wrong wire types, overflowing
integers, deeply nested groups), hypothesis-built messages (0..300 layers, the whole int32 and
int64 ranges, NaN/inf floats, unknown enum values, skip lists up to 10,000 entries, unicode,
empty and 1 MB strings, repeated fields of 100,000 entries) and valid requests mutated one field
at a time. Every call must be answered with OK or a clear status (a code a client can act on
and a sentence written by the server, not a traceback) within its deadline; after every test the
server still answers health checks and a valid request, and the controller's database passes
``PRAGMA integrity_check``.

The default run is the representative part ``make test`` runs; ``NASRL_HOSTILE_EXAMPLES=N``
runs N hypothesis examples per fuzz test (randomised instead of derandomised) and enables the
heaviest cases. The closing note gives how many inputs were tried.
"""

from __future__ import annotations

import math
import os
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal

import grpc
import pytest
from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc, trainer_pb2_grpc
from protos import trainer_pb2 as tpb

from .conftest import start_controller, start_trainer

# ----------------------------------------------------------------------------- settings

EXAMPLES = int(os.environ.get("NASRL_HOSTILE_EXAMPLES", "0") or 0)
HEAVY = EXAMPLES > 0
DEADLINE = 10.0  # seconds, every ordinary call
LARGE_DEADLINE = 20.0  # calls carrying megabytes
MIN_INPUTS = 600  # the default run must try at least this many inputs

TRIED: Counter[str] = Counter()  # inputs tried, by kind
SECONDS: dict[str, float] = {}  # seconds spent in calls, by kind
_TRIED_LOCK = threading.Lock()


def tried(kind: str, n: int = 1, seconds: float = 0.0) -> None:
    with _TRIED_LOCK:
        TRIED[kind] += n
        SECONDS[kind] = SECONDS.get(kind, 0.0) + seconds


def fuzz(default: int) -> settings:
    """Hypothesis settings: ``default`` examples, derandomised, unless the heavy variant asks
    for more (then randomised, so that each heavy run explores new inputs)."""
    return settings(
        max_examples=EXAMPLES or default,
        derandomize=not HEAVY,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,  # the servers are meant to be shared
        ],
    )


# ----------------------------------------------------------------------------- status checks

CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAUTHENTICATED,
}
# grpc's own answer to bytes that do not parse as the request message
GRPC_UNDECODABLE = "Exception deserializing request"
# UNAVAILABLE only for the documented reasons: the trainer shutting down, an unwritable database
DOCUMENTED_UNAVAILABLE = re.compile(r"shutting down|database", re.I)
TRACEBACK = re.compile(r"Traceback|File \"[^\"]+\", line \d+")
# grpc's own sentences when the server's status never reached the client intact
TRANSPORT_ERRORS = re.compile(
    r"metadata size exceeds|Stream removed|Socket closed|Connection reset|failed to connect|"
    r"Sent message larger than max",
    re.I,
)


def _short(text: str, n: int = 300) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def show(msg: Message, n: int = 300) -> str:
    """A message on one line, cut to ``n`` characters; long strings and repeated fields are
    cut first (some messages hold megabytes, and formatting them whole is slow)."""
    return _short(_summary(msg), n)


def _summary(msg: Message) -> str:
    parts = []
    for f, value in msg.ListFields():
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            parts.append(f"{f.name}: {{{len(value)} entries}}")
        elif f.is_repeated:
            items = [_summary(v) if f.message_type is not None else _scalar(v) for v in value[:3]]
            more = f" +{len(value) - 3:,} more" if len(value) > 3 else ""
            parts.append(f"{f.name}: [{', '.join(items)}{more}]")
        elif f.message_type is not None:
            parts.append(f"{f.name} {{{_summary(value)}}}")
        else:
            parts.append(f"{f.name}: {_scalar(value)}")
    return " ".join(parts)


def _scalar(value: object) -> str:
    return repr(_short(value, 40)) if isinstance(value, str) else repr(value)


class Shown:
    """A message whose repr stays short in hypothesis's failure reports."""

    __slots__ = ("msg",)

    def __init__(self, msg: Message) -> None:
        self.msg = msg

    def __repr__(self) -> str:
        return f"<{type(self.msg).__name__} {show(self.msg)}>"


def check_status(
    code: grpc.StatusCode, details: str | None, what: str, *, raw: bool = False
) -> None:
    """An error status a client can act on, with a sentence from the server."""
    details = details or ""
    where = f"{what}: got {code.name} {_short(details)!r}"
    if raw and code == grpc.StatusCode.INTERNAL and details.startswith(GRPC_UNDECODABLE):
        return  # grpc itself refuses undecodable bytes before any nasrl code runs
    if code == grpc.StatusCode.UNAVAILABLE and DOCUMENTED_UNAVAILABLE.search(details):
        return
    assert code in CLEAR, f"unclear status: {where}"
    assert details.strip(), f"empty details: {where}"
    assert re.search(r"[A-Za-z]{3,}", details), f"details are not a sentence: {where}"
    assert not TRACEBACK.search(details), f"traceback in details: {where}"
    assert not TRANSPORT_ERRORS.search(details), (
        f"the server's status was lost in transport (the client saw grpc's own error, not the "
        f"server's sentence): {where}"
    )


def _elapsed_ok(began: float, timeout: float, what: str, kind: str) -> None:
    took = time.monotonic() - began
    tried(kind, seconds=took)
    assert took < timeout + 2.0, f"{what}: took {took:.1f}s with a {timeout:.0f}s deadline"


def unary(
    method: Callable[..., Any],
    request: Any,
    what: str,
    *,
    timeout: float = DEADLINE,
    raw: bool = False,
    kind: str = "",
) -> tuple[grpc.StatusCode, Any]:
    """Call a unary method; returns (code, response or None) after checking the status."""
    kind = kind or what.split(" ")[0]
    began = time.monotonic()
    try:
        response = method(request, timeout=timeout)
    except grpc.RpcError as err:
        _elapsed_ok(began, timeout, what, kind)
        check_status(err.code(), err.details(), what, raw=raw)
        return err.code(), None
    _elapsed_ok(began, timeout, what, kind)
    return grpc.StatusCode.OK, response


def stream(
    method: Callable[..., Any],
    request: Any,
    what: str,
    *,
    timeout: float = DEADLINE,
    raw: bool = False,
    kind: str = "",
) -> tuple[grpc.StatusCode, list[Any]]:
    """Call a server-streaming method to its end; returns (code, messages received)."""
    kind = kind or what.split(" ")[0]
    began = time.monotonic()
    received: list[Any] = []
    try:
        for message in method(request, timeout=timeout):
            received.append(message)
    except grpc.RpcError as err:
        _elapsed_ok(began, timeout, what, kind)
        check_status(err.code(), err.details(), what, raw=raw)
        return err.code(), received
    _elapsed_ok(began, timeout, what, kind)
    return grpc.StatusCode.OK, received


# ----------------------------------------------------------------------------- servers

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]

SMALL_ZOPH = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=3, filters=[4, 8], strides=[1]))
SMALL_METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(conv_sizes=[1, 3], conv_filters=[4, 8], fc_units=[16], max_depth=3)
)
TINY_ARCH = apb.Architecture(
    layers=[
        apb.Layer(conv=apb.Conv(filters=4, kernel_h=3, kernel_w=3, stride_h=1, stride_w=1)),
        apb.Layer(gap=apb.GAP()),
    ]
)


class Controller:
    def __init__(
        self, tmp: str, agents: tuple[str, ...] = ("random", "reinforce", "evolution", "qlearning")
    ) -> None:
        self.handle, self.searches = start_controller(os.path.join(tmp, "controller.db"))
        self.target = f"127.0.0.1:{self.handle.port}"
        self.channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = controller_pb2_grpc.ControllerStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        # Known searches that the fuzzers aim at, so that their ids reach the deep code.
        self.sid: dict[str, str] = {}
        for agent in agents:
            space = SMALL_METAQNN if agent == "qlearning" else SMALL_ZOPH
            self.sid[agent] = self.stub.CreateSearch(
                cpb.CreateSearchRequest(
                    agent=cpb.AgentSpec(name=agent),
                    space=space,
                    dataset="digits",
                    budget=1_000_000,
                    training=tpb.TrainingConfig(epochs=1),
                    name=f"hostile {agent}",
                ),
                timeout=DEADLINE,
            ).search_id

    def raw(self, method: str) -> Callable[..., Any]:
        return self.channel.unary_unary(
            f"/nasrl.v1.Controller/{method}", request_serializer=None, response_deserializer=None
        )

    def assert_serving(self, what: str = "") -> None:
        """Health SERVING, a valid request answered, the database intact."""
        check = self.health.Check(
            health_pb2.HealthCheckRequest(service="nasrl.v1.Controller"), timeout=DEADLINE
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING, what
        search = self.stub.GetSearch(
            cpb.GetSearchRequest(search_id=self.sid["random"]), timeout=DEADLINE
        )
        assert search.search_id == self.sid["random"], what
        fresh = self.stub.Sample(
            cpb.SampleRequest(search_id=self.sid["random"], count=1), timeout=DEADLINE
        )
        assert len(fresh.candidates) == 1 or fresh.done, what
        assert self.searches.store.integrity_check() == "ok", f"database corrupt after {what}"

    def close(self) -> None:
        self.channel.close()
        self.handle.stop(None)
        self.searches.store.close()


class Trainer:
    def __init__(self, **config: Any) -> None:
        self.handle, self.servicer = start_trainer(**config)
        self.target = f"127.0.0.1:{self.handle.port}"
        self.channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = trainer_pb2_grpc.TrainerStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.train_raw = self.channel.unary_stream(
            "/nasrl.v1.Trainer/Train", request_serializer=None, response_deserializer=None
        )

    def assert_serving(self, what: str = "") -> None:
        check = self.health.Check(
            health_pb2.HealthCheckRequest(service="nasrl.v1.Trainer"), timeout=DEADLINE
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING, what
        events = list(
            self.stub.Train(
                tpb.TrainRequest(
                    architecture=TINY_ARCH, dataset="digits", config=tpb.TrainingConfig(epochs=1)
                ),
                timeout=60,
            )
        )
        assert events and events[-1].WhichOneof("event") == "result", what

    def close(self) -> None:
        self.channel.close()
        self.handle.stop(None)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    c = Controller(str(tmp_path_factory.mktemp("hostile")))
    yield c
    c.assert_serving("the whole module")
    c.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[Trainer]:
    t = Trainer(slots=2, simulate=0.05)
    yield t
    t.close()


@pytest.fixture(scope="module")
def real() -> Iterator[Trainer]:
    t = Trainer(slots=1, max_seconds=5.0)
    yield t
    t.close()


@pytest.fixture()
def serving_ctl(ctl: Controller, request: pytest.FixtureRequest) -> Iterator[Controller]:
    yield ctl
    ctl.assert_serving(request.node.name)


@pytest.fixture()
def serving_sim(sim: Trainer, request: pytest.FixtureRequest) -> Iterator[Trainer]:
    yield sim
    sim.assert_serving(request.node.name)


@pytest.fixture()
def serving_real(real: Trainer, request: pytest.FixtureRequest) -> Iterator[Trainer]:
    yield real
    real.assert_serving(request.node.name)


@pytest.fixture(scope="module", autouse=True)
def closing_note(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many inputs were tried, whatever pytest's capture mode."""
    began = time.monotonic()
    yield
    total = sum(TRIED.values())
    parts = ", ".join(f"{k} {v} ({SECONDS[k]:.1f}s)" for k, v in sorted(TRIED.items()))
    line = f"hostile input: {total:,} inputs tried in {time.monotonic() - began:.0f}s ({parts})"
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - without a terminal
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


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

CONTROLLER_METHODS = (
    "CreateSearch",
    "Sample",
    "Update",
    "GetSearch",
    "ListSearches",
    "Leaderboard",
    "StopSearch",
    "ExportQTable",
)


# ----------------------------------------------------------------------------- cost of a call


def _drain(ctl: Controller, limit: float) -> None:
    """Wait until the controller answers a cheap call again (after a call it is still
    working on although its caller has given up)."""
    until = time.monotonic() + limit
    while time.monotonic() < until:
        try:
            ctl.stub.GetSearch(cpb.GetSearchRequest(search_id=ctl.sid["random"]), timeout=5)
            return
        except grpc.RpcError:
            continue


@pytest.fixture()
def own_ctl(tmp_path: Any) -> Iterator[Controller]:
    """A controller of its own, for calls the test gives up on: the server may go on working
    on them after the deadline, and the shared controller must not wait for that."""
    c = Controller(str(tmp_path), agents=("random",))
    yield c
    c.channel.close()
    c.handle.stop(None)  # the store stays open: a handler may still be using it


LARGEST_METAQNN = cpb.SearchSpace(
    metaqnn=cpb.MetaQNNSpace(
        conv_sizes=range(1, 16),
        conv_filters=range(1, 2049),
        fc_units=range(1, 16385),
        pools=[cpb.PoolChoice(size=k, stride=s) for k in range(1, 16) for s in range(1, 9)],
        max_depth=64,
        max_fc=8,
        fc_max_size=4096,
    )
)
LARGEST_ZOPH = cpb.SearchSpace(
    zoph=cpb.ZophSpace(
        filter_sizes=range(1, 16), strides=range(1, 9), filters=range(1, 2049), max_layers=64
    )
)


def _sample_while_reading(
    ctl: Controller, create: cpb.CreateSearchRequest, count: int, deadline: float
) -> list[str]:
    """CreateSearch; if it is accepted, Sample(count) on it and meanwhile GetSearch on another
    search. The failures (none when the space is refused clearly, or both calls are answered
    within their deadlines)."""
    label = f"{create.agent.name} on {create.dataset}, space of {create.space.ByteSize():,} bytes"
    code, search = unary(
        ctl.stub.CreateSearch,
        create,
        f"CreateSearch {label}",
        timeout=LARGE_DEADLINE,
        kind="Sample (big)",
    )
    if code != grpc.StatusCode.OK:
        return []  # refused with a clear status: a bounded space is a fix too
    failures: list[str] = []

    def big() -> None:
        try:
            unary(
                ctl.stub.Sample,
                cpb.SampleRequest(search_id=search.search_id, count=count),
                f"Sample(count={count}) {label}",
                timeout=deadline,
                kind="Sample (big)",
            )
        except AssertionError as exc:
            failures.append(str(exc))

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(1.0)
    began = time.monotonic()
    try:
        ctl.stub.GetSearch(cpb.GetSearchRequest(search_id=ctl.sid["random"]), timeout=DEADLINE)
    except grpc.RpcError as err:
        failures.append(
            f"GetSearch of another search while Sample(count={count}) {label} "
            f"runs: {err.code().name} after {time.monotonic() - began:.1f}s"
        )
    tried("Sample (big)", seconds=time.monotonic() - began)
    thread.join()
    return failures


def test_sample_on_the_largest_accepted_space_answers_in_time(own_ctl: Controller) -> None:
    """First in the module: when the server goes on working after the deadline, that work
    overlaps the rest of the module instead of delaying the end of the run.

    The largest MetaQNN space CreateSearch accepts (every allowed value in every list,
    depth 64) with the random agent on cifar10: Sample(count=30) is answered within its
    deadline, and a GetSearch of another search is answered meanwhile."""
    failures = _sample_while_reading(
        own_ctl,
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(name="random"),
            space=LARGEST_METAQNN,
            dataset="cifar10",
            budget=1_000_000,
        ),
        30,
        DEADLINE,
    )
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- raw bytes


@fuzz(60)
@given(method=st.sampled_from(CONTROLLER_METHODS), data=RAW_MESSAGES)
def test_controller_raw_bytes(serving_ctl: Controller, method: str, data: bytes) -> None:
    """Random and malformed protobuf bytes as the request of every Controller method."""
    unary(
        serving_ctl.raw(method),
        data,
        f"{method} raw {_short(repr(data), 80)}",
        raw=True,
        kind="raw bytes",
    )


@fuzz(30)
@given(data=RAW_MESSAGES)
def test_trainer_raw_bytes(serving_sim: Trainer, data: bytes) -> None:
    """Random and malformed protobuf bytes as a Train request."""
    stream(
        serving_sim.train_raw,
        data,
        f"Train raw {_short(repr(data), 80)}",
        raw=True,
        kind="raw bytes",
    )


def test_raw_bytes_for_unknown_methods(serving_ctl: Controller, serving_sim: Trainer) -> None:
    for channel, name in (
        (serving_ctl.channel, "/nasrl.v1.Controller/Nope"),
        (serving_sim.channel, "/nasrl.v1.Trainer/Nope"),
        (serving_ctl.channel, "/nasrl.v1.Nope/Train"),
    ):
        tried("raw bytes")
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(name, request_serializer=None, response_deserializer=None)(
                b"\x08\x01", timeout=DEADLINE
            )
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_messages_over_16_mib_are_refused_by_grpc(
    serving_ctl: Controller, serving_sim: Trainer
) -> None:
    """Over the servers' 16 MiB limit grpc itself answers RESOURCE_EXHAUSTED."""
    big = ld(9, b"n" * (16 * MB + 1))  # CreateSearchRequest.name
    code, _ = unary(
        serving_ctl.raw("CreateSearch"),
        big,
        "CreateSearch 16 MiB name",
        timeout=LARGE_DEADLINE,
        raw=True,
        kind="16 MiB",
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    arch = apb.Architecture(layers=[apb.Layer(gap=apb.GAP(), inputs=[-1] * 1_700_000)])
    assert arch.ByteSize() > 16 * MB
    code, _ = stream(
        serving_sim.stub.Train,
        tpb.TrainRequest(architecture=arch, dataset="digits"),
        "Train 16 MiB skip list",
        timeout=LARGE_DEADLINE,
        kind="16 MiB",
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


# ----------------------------------------------------------------------------- trainer


def check_train_ok(events: list[tpb.TrainEvent], what: str) -> None:
    assert events, f"{what}: OK without any message"
    assert events[-1].WhichOneof("event") == "result", f"{what}: the stream did not end in a result"
    result = events[-1].result
    for value in (result.validation_accuracy, result.test_accuracy):
        assert 0 <= value <= 1, f"{what}: accuracy {value}"


def _timeout(msg: Message) -> float:
    return LARGE_DEADLINE if msg.ByteSize() > 100_000 else DEADLINE


@fuzz(100)
@given(req=train_requests().map(Shown))
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits",
            config=tpb.TrainingConfig(optimizer=99, schedule=-1),
            architecture=TINY_ARCH,
        )
    )
)  # unknown enum values
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits",
            config=tpb.TrainingConfig(
                learning_rate=math.nan,
                momentum=math.inf,
                weight_decay=-math.inf,
                max_seconds=math.nan,
                epochs=-(2**31),
                batch_size=2**31 - 1,
                seed=-1,
            ),
            architecture=TINY_ARCH,
        )
    )
)
@example(
    req=Shown(
        tpb.TrainRequest(
            dataset="digits", architecture=apb.Architecture(layers=[TINY_ARCH.layers[0]] * 300)
        )
    )
)
def test_trainer_train_messages(serving_sim: Trainer, req: Shown) -> None:
    """Hypothesis-built TrainRequests against a simulating trainer (same validation)."""
    what = f"Train {show(req.msg)}"
    code, events = stream(
        serving_sim.stub.Train, req.msg, what, timeout=_timeout(req.msg), kind="Train"
    )
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)


@fuzz(12)
@given(
    arch=st.one_of(sane_architectures(), architectures(max_layers=8)),
    cfg=training_configs(epochs=st.just(1)),
    dataset=st.sampled_from(["digits", "digits", "digits", "mnist", "cifar10", ""]),
)
def test_real_trainer_train_messages(
    serving_real: Trainer, arch: apb.Architecture, cfg: tpb.TrainingConfig, dataset: str
) -> None:
    """The same against a trainer that really trains: one epoch, tiny networks, hostile
    hyper-parameters (NaN, inf, negative, unknown enums)."""
    cfg.epochs = 1
    if 2 <= cfg.batch_size < 32:  # valid but slow to train for real; the simulated trainer
        cfg.batch_size = 32  # takes them
    req = tpb.TrainRequest(architecture=arch, dataset=dataset, config=cfg)
    what = f"real Train {show(req)}"
    code, events = stream(serving_real.stub.Train, req, what, timeout=60, kind="Train (real)")
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)


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
        reward=draw(enums(2)),
        budget=draw(st.one_of(st.sampled_from([0, 1, 5, 1_000_000, 1_000_001]), int32s())),
        seed=draw(int64s()),
        lease_seconds=draw(floats()),
        name=draw(texts()),
    )
    if draw(st.booleans()):
        req.training.CopyFrom(draw(training_configs()))
    return req


@fuzz(80)
@given(req=create_requests().map(Shown))
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(name="qlearning"),
            budget=3,
            space=cpb.SearchSpace(
                metaqnn=cpb.MetaQNNSpace(pools=[cpb.PoolChoice(size=2, stride=2)] * 100_000)
            ),
        )
    )
)
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            space=cpb.SearchSpace(zoph=cpb.ZophSpace(filters=list(range(1, 100_001))))
        )
    )
)
@example(req=Shown(cpb.CreateSearchRequest(lease_seconds=math.nan, seed=-1, budget=-(2**31))))
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(
                name="qlearning",
                qlearning=cpb.QLearningSettings(discount=math.nan, replay=2**31 - 1),
            )
        )
    )
)
@example(
    req=Shown(
        cpb.CreateSearchRequest(
            agent=cpb.AgentSpec(
                name="reinforce",
                reinforce=cpb.ReinforceSettings(hidden=2**31 - 1, lstm_layers=2**31 - 1),
            )
        )
    )
)
def test_create_search_messages(serving_ctl: Controller, req: Shown) -> None:
    """Hypothesis-built CreateSearch requests; a search that is created must then work."""
    what = f"CreateSearch {show(req.msg)}"
    timeout = _timeout(req.msg)
    code, search = unary(
        serving_ctl.stub.CreateSearch, req.msg, what, timeout=timeout, kind="CreateSearch"
    )
    if code == grpc.StatusCode.OK:
        assert search.search_id and search.state == cpb.RUNNING, what
        unary(
            serving_ctl.stub.GetSearch,
            cpb.GetSearchRequest(search_id=search.search_id),
            f"GetSearch after {what}",
            timeout=timeout,
            kind="GetSearch",
        )
        unary(
            serving_ctl.stub.Sample,
            cpb.SampleRequest(search_id=search.search_id, count=2),
            f"Sample after {what}",
            timeout=timeout,
            kind="Sample",
        )
        unary(
            serving_ctl.stub.StopSearch,
            cpb.StopSearchRequest(search_id=search.search_id),
            f"StopSearch after {what}",
            timeout=timeout,
            kind="StopSearch",
        )


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


SAFE_COUNT = 5  # larger counts go to unknown ids: the shared searches' budgets are not spent


def _ctl_requests(ctl: Controller) -> st.SearchStrategy[tuple[str, Shown]]:
    sids = list(ctl.sid.values())
    sid = search_ids(sids)
    requests: st.SearchStrategy[tuple[str, Message]] = st.one_of(
        st.tuples(
            st.just("Sample"),
            st.builds(
                cpb.SampleRequest,
                search_id=sid,
                count=st.one_of(st.sampled_from([0, 1, 2, 1000, 1001, -1]), int32s()),
                request_id=texts(),
                reclaim=st.booleans(),
            ),
        ),
        st.tuples(st.just("Update"), update_requests(sids)),
        st.tuples(st.just("GetSearch"), st.builds(cpb.GetSearchRequest, search_id=sid)),
        st.tuples(
            st.just("Leaderboard"),
            st.builds(
                cpb.LeaderboardRequest,
                search_id=sid,
                top=st.one_of(st.sampled_from([0, 1, -1, 1000, 1001]), int32s()),
            ),
        ),
        st.tuples(st.just("ExportQTable"), st.builds(cpb.ExportQTableRequest, search_id=sid)),
        st.tuples(st.just("ListSearches"), st.just(cpb.ListSearchesRequest())),
        # StopSearch on anything but the shared searches (they must keep running).
        st.tuples(st.just("StopSearch"), st.builds(cpb.StopSearchRequest, search_id=texts())),
    )
    return requests.map(lambda t: (t[0], Shown(t[1])))


@fuzz(120)
@given(data=st.data())
def test_controller_messages(serving_ctl: Controller, data: st.DataObject) -> None:
    """Hypothesis-built requests of every other Controller method, aimed at real searches."""
    method, shown = data.draw(_ctl_requests(serving_ctl), label="request")
    req: Any = shown.msg
    if method == "Sample" and req.count > SAFE_COUNT and req.search_id in serving_ctl.sid.values():
        req.search_id += "-x"
    if method == "StopSearch" and req.search_id in serving_ctl.sid.values():
        req.search_id += "-x"
    what = f"{method} {show(req)}"
    code, response = unary(
        getattr(serving_ctl.stub, method), req, what, timeout=_timeout(req), kind=method
    )
    if code == grpc.StatusCode.OK and method == "Leaderboard":
        assert len(response.entries) <= (req.top or 10), what


def test_sample_with_the_largest_count(serving_ctl: Controller) -> None:
    """count 1,000 (the maximum) with a 64-character unicode request id, twice."""
    for agent, space in (("random", SMALL_ZOPH), ("qlearning", SMALL_METAQNN)):
        code, search = unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(
                agent=cpb.AgentSpec(name=agent),
                space=space,
                budget=1_000,
                seed=2**63 - 1,
                name="\U0001f600" * 200,
            ),
            f"CreateSearch {agent}",
            kind="CreateSearch",
        )
        assert code == grpc.StatusCode.OK
        first = None
        for _ in range(2):
            code, batch = unary(
                serving_ctl.stub.Sample,
                cpb.SampleRequest(search_id=search.search_id, count=1000, request_id="é" * 64),
                f"Sample 1000 {agent}",
                timeout=LARGE_DEADLINE,
                kind="Sample",
            )
            assert code == grpc.StatusCode.OK
            ids = [c.candidate_id for c in batch.candidates]
            assert first is None or ids == first, "a retried request id handed out new candidates"
            first = ids
        unary(
            serving_ctl.stub.StopSearch,
            cpb.StopSearchRequest(search_id=search.search_id),
            f"StopSearch {agent}",
            kind="StopSearch",
        )


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
    path = draw(st.sampled_from(field_paths(msg.DESCRIPTOR)), label="field")
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
            n = draw(st.sampled_from([0, 1, 10_000, 100_000]))
            element = type(container.add())()
            del container[:]
            if n and element.DESCRIPTOR.fields and draw(st.booleans()):
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
                st.tuples(scalar_values(f), st.sampled_from([10_000, 100_000])).map(
                    lambda t: [t[0]] * t[1]
                ),
            )
        )
        container = getattr(parent, f.name)
        del container[:]
        container.extend(values)
        return msg, f"{where} = [{len(values)} values]"
    value = draw(scalar_values(f), label=where)
    setattr(parent, f.name, value)
    return msg, f"{where} = {_short(repr(value), 60)}"


def mutation(base: Message) -> st.SearchStrategy[tuple[Shown, str]]:
    return mutated(base).map(lambda t: (Shown(t[0]), t[1]))


VALID_CREATE = cpb.CreateSearchRequest(
    agent=cpb.AgentSpec(name="random", random=cpb.RandomSettings(layers=2)),
    space=SMALL_ZOPH,
    dataset="digits",
    training=tpb.TrainingConfig(epochs=1, batch_size=32),
    reward=cpb.ACCURACY,
    budget=20,
    seed=7,
    lease_seconds=60.0,
    name="mutation base",
)
VALID_CREATE_Q = cpb.CreateSearchRequest(
    agent=cpb.AgentSpec(
        name="qlearning",
        qlearning=cpb.QLearningSettings(
            learning_rate=0.1, discount=0.9, q_init=0.5, replay=5, schedule_scale=0.01
        ),
    ),
    space=SMALL_METAQNN,
    dataset="digits",
    budget=20,
    seed=3,
    lease_seconds=60.0,
)


@fuzz(60)
@given(data=st.data())
def test_mutated_create_search(serving_ctl: Controller, data: st.DataObject) -> None:
    """Valid CreateSearch requests with one field made hostile; a created search works."""
    base = data.draw(st.sampled_from([VALID_CREATE, VALID_CREATE_Q]), label="base")
    shown, change = data.draw(mutation(base), label="mutation")
    req = shown.msg
    timeout = _timeout(req)
    code, search = unary(
        serving_ctl.stub.CreateSearch,
        req,
        f"CreateSearch with {change}",
        timeout=timeout,
        kind="mutated",
    )
    if code == grpc.StatusCode.OK:
        unary(
            serving_ctl.stub.Sample,
            cpb.SampleRequest(search_id=search.search_id, count=3),
            f"Sample after CreateSearch with {change}",
            timeout=timeout,
            kind="mutated",
        )


def _valid_round(ctl: Controller) -> tuple[str, cpb.SampleResponse]:
    search = ctl.stub.CreateSearch(VALID_CREATE, timeout=DEADLINE)
    batch = ctl.stub.Sample(
        cpb.SampleRequest(search_id=search.search_id, count=2, request_id="first"), timeout=DEADLINE
    )
    assert len(batch.candidates) == 2
    return search.search_id, batch


def _valid_result(text: str, acc: float = 0.5) -> tpb.TrainResult:
    return tpb.TrainResult(
        validation_accuracy=acc,
        validation_accuracy_last5=acc,
        test_accuracy=acc - 0.01,
        params=1000,
        flops=20_000,
        seconds=1.5,
        device="cpu",
        architecture=text,
        curve=[
            tpb.EpochProgress(
                epoch=1,
                epochs=1,
                train_loss=1.0,
                train_accuracy=acc,
                validation_accuracy=acc,
                seconds=1.0,
            )
        ],
        train_examples=100,
        validation_examples=20,
        test_examples=20,
    )


@fuzz(60)
@given(data=st.data())
def test_mutated_sample_update_round(serving_ctl: Controller, data: st.DataObject) -> None:
    """A valid CreateSearch -> Sample -> Update round with one request mutated one field at a
    time; the hostile request is repeated (idempotence), then the search still takes a valid
    report and its leaderboard holds only sane values."""
    sid, batch = _valid_round(serving_ctl)
    cand = batch.candidates[0]
    which = data.draw(
        st.sampled_from(
            [
                "Sample",
                "Update",
                "UpdateFailure",
                "Leaderboard",
                "GetSearch",
                "StopSearch",
                "ExportQTable",
            ]
        ),
        label="rpc",
    )
    base: Message
    if which == "Sample":
        base = cpb.SampleRequest(search_id=sid, count=1, request_id="second")
    elif which == "Update":
        base = cpb.UpdateRequest(
            search_id=sid, candidate_id=cand.candidate_id, result=_valid_result(cand.text)
        )
    elif which == "UpdateFailure":
        base = cpb.UpdateRequest(
            search_id=sid, candidate_id=cand.candidate_id, failure="out of memory"
        )
    elif which == "Leaderboard":
        base = cpb.LeaderboardRequest(search_id=sid, top=5)
    elif which == "GetSearch":
        base = cpb.GetSearchRequest(search_id=sid)
    elif which == "StopSearch":
        base = cpb.StopSearchRequest(search_id=sid)
    else:
        base = cpb.ExportQTableRequest(search_id=sid)
    shown, change = data.draw(mutation(base), label="mutation")
    req = shown.msg
    method = "Update" if which.startswith("Update") else which
    timeout = _timeout(req)
    what = f"{which} with {change}"
    for attempt in ("", "repeated ") if method in ("Update", "Sample") else ("",):
        unary(
            getattr(serving_ctl.stub, method), req, attempt + what, timeout=timeout, kind="mutated"
        )
    other = batch.candidates[1]
    code, ack = unary(
        serving_ctl.stub.Update,
        cpb.UpdateRequest(
            search_id=sid, candidate_id=other.candidate_id, result=_valid_result(other.text, 0.7)
        ),
        f"valid Update after {what}",
        kind="mutated",
    )
    assert code == grpc.StatusCode.OK and ack.accepted, f"valid Update after {what}: {code}"
    code, board = unary(
        serving_ctl.stub.Leaderboard,
        cpb.LeaderboardRequest(search_id=sid, top=10),
        f"Leaderboard after {what}",
        kind="mutated",
    )
    assert code == grpc.StatusCode.OK and board.entries
    for entry in board.entries:
        assert 0 <= entry.accuracy <= 1 and math.isfinite(entry.reward), what


@fuzz(40)
@given(data=st.data())
def test_mutated_train_request(serving_sim: Trainer, data: st.DataObject) -> None:
    """A valid TrainRequest with one field (or nested field) made hostile."""
    base = tpb.TrainRequest(
        architecture=TINY_ARCH,
        dataset="digits",
        config=tpb.TrainingConfig(
            epochs=2,
            batch_size=16,
            optimizer=tpb.ADAM,
            learning_rate=0.01,
            schedule=tpb.STEP,
            seed=5,
            max_seconds=30,
        ),
    )
    shown, change = data.draw(mutation(base), label="mutation")
    what = f"Train with {change}"
    code, events = stream(
        serving_sim.stub.Train, shown.msg, what, timeout=_timeout(shown.msg), kind="mutated"
    )
    if code == grpc.StatusCode.OK:
        check_train_ok(events, what)


# ----------------------------------------------------------------------------- found cases


ECHOED = {
    # id: (service, method, request) with a field whose value an error sentence may quote
    "dataset-1MB": ("controller", "CreateSearch", cpb.CreateSearchRequest(dataset="x" * MB)),
    "dataset-5000-emoji": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(dataset="\U0001f600" * 5000),
    ),
    "agent-1MB": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="a" * MB)),
    ),
    "space-name-20k": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(space=cpb.SearchSpace(name="z" * 20_000)),
    ),
    "zoph-filters-10k": (
        "controller",
        "CreateSearch",
        cpb.CreateSearchRequest(space=cpb.SearchSpace(zoph=cpb.ZophSpace(filters=[1] * 10_000))),
    ),
    "name-1MB": ("controller", "CreateSearch", cpb.CreateSearchRequest(name="n" * MB)),
    "sample-id-1MB": ("controller", "Sample", cpb.SampleRequest(search_id="s" * MB, count=1)),
    "request-id-1MB": (
        "controller",
        "Sample",
        cpb.SampleRequest(search_id="abc", count=1, request_id="r" * MB),
    ),
    "update-id-1MB": (
        "controller",
        "Update",
        cpb.UpdateRequest(search_id="u" * MB, candidate_id=1, failure="f"),
    ),
    "leaderboard-id-1MB": ("controller", "Leaderboard", cpb.LeaderboardRequest(search_id="l" * MB)),
    "train-dataset-1MB": (
        "trainer",
        "Train",
        tpb.TrainRequest(dataset="x" * MB, architecture=TINY_ARCH),
    ),
    "train-10k-inputs": (
        "trainer",
        "Train",
        tpb.TrainRequest(
            dataset="digits",
            architecture=apb.Architecture(
                layers=[apb.Layer(gap=apb.GAP(), inputs=list(range(10_000)))]
            ),
        ),
    ),
    "train-3k-duplicate-inputs": (
        "trainer",
        "Train",
        tpb.TrainRequest(
            dataset="digits",
            architecture=apb.Architecture(layers=[apb.Layer(gap=apb.GAP(), inputs=[0] * 3_000)]),
        ),
    ),
}


@pytest.mark.parametrize("case", list(ECHOED))
def test_long_values_get_the_servers_own_status(
    serving_ctl: Controller, serving_sim: Trainer, case: str
) -> None:
    """A long or repeated value the error sentence quotes: the caller still gets the server's
    status and sentence, not grpc's 'metadata size exceeds hard limit' (which also turns
    INVALID_ARGUMENT into RESOURCE_EXHAUSTED, the code for 'retry later')."""
    service, method, request_msg = ECHOED[case]
    what = f"{method} {show(request_msg, 100)}"
    if service == "trainer":
        code, _ = stream(
            serving_sim.stub.Train, request_msg, what, timeout=LARGE_DEADLINE, kind="long values"
        )
    else:
        code, _ = unary(
            getattr(serving_ctl.stub, method),
            request_msg,
            what,
            timeout=LARGE_DEADLINE,
            kind="long values",
        )
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), what


def test_identical_hostile_reports_stay_idempotent(serving_ctl: Controller) -> None:
    """A report whose curve holds NaN and inf (kept as they came) repeated verbatim is
    acknowledged as a repeat, not refused as a different report."""
    sid, batch = _valid_round(serving_ctl)
    cand = batch.candidates[0]
    result = _valid_result(cand.text)
    result.curve[0].train_loss = math.nan
    result.curve[0].seconds = math.inf
    req = cpb.UpdateRequest(search_id=sid, candidate_id=cand.candidate_id, result=result)
    code, first = unary(
        serving_ctl.stub.Update, req, "Update with NaN loss in the curve", kind="semantics"
    )
    assert code == grpc.StatusCode.OK and first.accepted
    code, again = unary(serving_ctl.stub.Update, req, "the same Update repeated", kind="semantics")
    assert code == grpc.StatusCode.OK, f"a verbatim repeat was refused with {code.name}"
    assert not again.accepted


def test_duplicate_choices_are_refused_in_every_list(serving_ctl: Controller) -> None:
    """Every choice list refuses duplicates, pools included: without the check a 6 MB request
    with 1,000,000 copies of one pool is accepted, costs ~14 s under the controller's lock,
    and every later call that reads the search pays for it again."""
    pool = cpb.PoolChoice(size=2, stride=2)
    for field, space in (
        ("conv_sizes", cpb.MetaQNNSpace(conv_sizes=[3, 3])),
        ("conv_filters", cpb.MetaQNNSpace(conv_filters=[8, 8])),
        ("fc_units", cpb.MetaQNNSpace(fc_units=[16, 16])),
        ("pools", cpb.MetaQNNSpace(pools=[pool, pool])),
    ):
        code, _ = unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(
                agent=cpb.AgentSpec(name="qlearning"), space=cpb.SearchSpace(metaqnn=space)
            ),
            f"CreateSearch with duplicate {field}",
            kind="semantics",
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"duplicate {field}: {code.name}"


def test_an_oversized_result_does_not_break_later_samples(serving_ctl: Controller) -> None:
    """A result whose strings hold megabytes (a request under 16 MiB) is refused, or it is
    kept in a way that later Samples can still send: a network already evaluated is handed
    out again with its stored result, so each cached copy carries it."""
    one_network = cpb.SearchSpace(
        zoph=cpb.ZophSpace(max_layers=1, filter_sizes=[1], strides=[1], filters=[4])
    )
    search = serving_ctl.stub.CreateSearch(
        cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="random"), space=one_network, budget=10),
        timeout=DEADLINE,
    )
    cand = serving_ctl.stub.Sample(
        cpb.SampleRequest(search_id=search.search_id, count=1), timeout=DEADLINE
    ).candidates[0]
    result = _valid_result(cand.text)
    result.device = "d" * (5 * MB)
    code, _ = unary(
        serving_ctl.stub.Update,
        cpb.UpdateRequest(
            search_id=search.search_id, candidate_id=cand.candidate_id, result=result
        ),
        "Update with a 5 MB device name",
        timeout=LARGE_DEADLINE,
        kind="oversized result",
    )
    if code != grpc.StatusCode.OK:
        return  # refused clearly
    code, batch = unary(
        serving_ctl.stub.Sample,
        cpb.SampleRequest(search_id=search.search_id, count=4, request_id="after a 5 MB result"),
        "Sample(count=4) after a 5 MB result",
        timeout=LARGE_DEADLINE,
        kind="oversized result",
    )
    assert code == grpc.StatusCode.OK, f"Sample after a 5 MB result: {code.name}"
    assert batch.candidates


@pytest.mark.skipif(not HEAVY, reason="heavy: NASRL_HOSTILE_EXAMPLES=N enables it")
@pytest.mark.parametrize(
    "agent, space, dataset, count",
    [
        ("reinforce", None, "digits", 1000),  # the default search, the documented maximum count
        ("qlearning", LARGEST_METAQNN, "cifar10", 5),
        ("evolution", LARGEST_METAQNN, "cifar10", 50),
        ("reinforce", LARGEST_ZOPH, "cifar10", 20),
    ],
    ids=[
        "reinforce-default-1000",
        "qlearning-largest-metaqnn-5",
        "evolution-largest-metaqnn-50",
        "reinforce-largest-zoph-20",
    ],
)
def test_heavy_samples_answer_in_time(
    own_ctl: Controller, agent: str, space: cpb.SearchSpace | None, dataset: str, count: int
) -> None:
    create = cpb.CreateSearchRequest(
        agent=cpb.AgentSpec(name=agent), dataset=dataset, budget=1_000_000
    )
    if space is not None:
        create.space.CopyFrom(space)
    failures = _sample_while_reading(own_ctl, create, count, LARGE_DEADLINE)
    _drain(own_ctl, 900)
    assert own_ctl.searches.store.integrity_check() == "ok"
    assert not failures, "\n".join(failures)


@pytest.mark.skipif(not HEAVY, reason="heavy: NASRL_HOSTILE_EXAMPLES=N enables it")
def test_list_searches_survives_searches_with_huge_spaces(serving_ctl: Controller) -> None:
    """Four searches whose MetaQNN space lists 1,000,000 pool choices each (6 MB requests,
    under the 16 MiB limit): ListSearches must still answer."""
    space = cpb.SearchSpace(
        metaqnn=cpb.MetaQNNSpace(pools=[cpb.PoolChoice(size=2, stride=2)] * 1_000_000)
    )
    for _ in range(4):
        unary(
            serving_ctl.stub.CreateSearch,
            cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="random"), space=space, budget=5),
            "CreateSearch with 1,000,000 pools",
            timeout=120,
            kind="huge spaces",
        )
    code, _ = unary(
        serving_ctl.stub.ListSearches,
        cpb.ListSearchesRequest(),
        "ListSearches after huge spaces",
        timeout=120,
        kind="huge spaces",
    )
    assert code == grpc.StatusCode.OK


def test_concurrent_hostile_calls(serving_ctl: Controller, serving_sim: Trainer) -> None:
    """Hostile calls from eight threads at once, on both services; every one is answered."""
    sids = list(serving_ctl.sid.values())
    junk: list[tuple[str, Message]] = [
        ("CreateSearch", cpb.CreateSearchRequest(agent=cpb.AgentSpec(name="é" * 50), budget=-1)),
        ("Sample", cpb.SampleRequest(search_id=sids[0], count=-5, request_id="x" * 65)),
        ("Update", cpb.UpdateRequest(search_id=sids[1], candidate_id=-1, failure="\x00")),
        ("Leaderboard", cpb.LeaderboardRequest(search_id=sids[2], top=2**31 - 1)),
        ("ExportQTable", cpb.ExportQTableRequest(search_id=sids[0])),
        ("GetSearch", cpb.GetSearchRequest(search_id="\u202e" * 64)),
        ("StopSearch", cpb.StopSearchRequest(search_id="nope")),
        (
            "Train",
            tpb.TrainRequest(
                dataset="digits",
                architecture=apb.Architecture(
                    layers=[apb.Layer(pool=apb.Pool(kernel=-1, stride=2**31 - 1))]
                ),
            ),
        ),
    ]
    errors: list[str] = []

    def worker(offset: int) -> None:
        for i in range(len(junk)):
            method, req = junk[(i + offset) % len(junk)]
            try:
                if method == "Train":
                    stream(serving_sim.stub.Train, req, "concurrent Train", kind="concurrent")
                else:
                    unary(
                        getattr(serving_ctl.stub, method),
                        req,
                        f"concurrent {method}",
                        kind="concurrent",
                    )
            except AssertionError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]


# ----------------------------------------------------------------------------- closing note


def test_zz_closing_note(ctl: Controller, sim: Trainer, real: Trainer) -> None:
    """Everything still serves, the database is intact, and enough inputs were tried (the
    module's teardown prints the total whatever pytest's capture mode)."""
    ctl.assert_serving("closing note")
    sim.assert_serving("closing note")
    real.assert_serving("closing note")
    total = sum(TRIED.values())
    print(f"hostile input: {total:,} inputs tried")
    if len(TRIED) >= 8:  # the whole module ran, not a -k selection
        assert total >= MIN_INPUTS, f"only {total} inputs tried"
