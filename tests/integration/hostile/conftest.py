"""The hostile-input suite's servers, fixtures and call helpers (see ``__init__``)."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, settings

from katib_adapter.__main__ import KATIB_PROBE_NAME
from katib_adapter.__main__ import SERVICE_NAME as KATIB_SERVICE
from katib_adapter.servicer import SuggestionServicer
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient
from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc, katib_api_pb2_grpc, trainer_pb2_grpc
from protos import katib_api_pb2 as kpb
from protos import trainer_pb2 as tpb
from tests.helpers import FakeClock
from tests.integration.conftest import start_controller, start_trainer

# ----------------------------------------------------------------------------- settings

EXAMPLES = int(os.environ.get("NASRL_HOSTILE_EXAMPLES", "0") or 0)
HEAVY = EXAMPLES > 0
DEADLINE = 10.0  # seconds, every ordinary call
LARGE_DEADLINE = 20.0  # calls carrying megabytes


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


def short(text: str, n: int = 300) -> str:
    return text if len(text) <= n else f"{text[:n]}... ({len(text):,} characters)"


def show(msg: Message, n: int = 300) -> str:
    """A message on one line, cut to ``n`` characters; long strings and repeated fields are
    cut first (some messages hold megabytes, and formatting them whole is slow)."""
    return short(_summary(msg), n)


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
    return repr(short(value, 40)) if isinstance(value, str) else repr(value)


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
    where = f"{what}: got {code.name} {short(details)!r}"
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


def unary(
    method: Callable[..., Any],
    request: Any,
    what: str,
    *,
    timeout: float = DEADLINE,
    raw: bool = False,
) -> tuple[grpc.StatusCode, Any]:
    """Call a unary method; returns (code, response or None) after checking the status (so an
    answer later than ``timeout``, DEADLINE_EXCEEDED, fails)."""
    try:
        response = method(request, timeout=timeout)
    except grpc.RpcError as err:
        check_status(err.code(), err.details(), what, raw=raw)
        return err.code(), None
    return grpc.StatusCode.OK, response


def stream(
    method: Callable[..., Any],
    request: Any,
    what: str,
    *,
    timeout: float = DEADLINE,
    raw: bool = False,
) -> tuple[grpc.StatusCode, list[Any]]:
    """Call a server-streaming method to its end; returns (code, messages received)."""
    received: list[Any] = []
    try:
        for message in method(request, timeout=timeout):
            received.append(message)
    except grpc.RpcError as err:
        check_status(err.code(), err.details(), what, raw=raw)
        return err.code(), received
    return grpc.StatusCode.OK, received


def timeout_for(msg: Message) -> float:
    return LARGE_DEADLINE if msg.ByteSize() > 100_000 else DEADLINE


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


class HoldingTimer:
    """A Sample's timer (``Searches(timer=...)``) on a fake clock that stops the first Sample
    inside its proposing loop: at the loop's first look at the time (the Sample holds the
    controller's lock then) it calls ``on_hold`` and waits for ``release``, which moves the
    clock on. The Sample then makes the proposal it was about to make and, at its next look,
    finds its time budget spent if ``release`` moved the clock by that much."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.on_hold: Callable[[], None] = lambda: None
        self.held = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._reads = 0

    def __call__(self) -> float:
        with self._lock:
            self._reads += 1
            hold = self._reads == 2  # the first read set the Sample's stop time
        if not hold:
            return self.clock()
        now = self.clock()
        self.held = True
        self.on_hold()
        self._released.wait(300)  # only a broken test leaves it waiting that long
        return now

    def release(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self._released.set()


class Controller:
    def __init__(
        self,
        tmp: str,
        agents: tuple[str, ...] = ("random", "reinforce", "evolution", "qlearning"),
        timer: HoldingTimer | None = None,
    ) -> None:
        """``timer``: what bounds a Sample's proposing (default: the real one)."""
        db = os.path.join(tmp, "controller.db")
        self.timer = timer
        if timer is None:
            self.handle, self.searches = start_controller(db)
        else:
            self.handle, self.searches = start_controller(db, timer=timer)
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
        self.train_raw: grpc.UnaryStreamMultiCallable[bytes, bytes] = self.channel.unary_stream(
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


@pytest.fixture()
def own_ctl(tmp_path: Any) -> Iterator[Controller]:
    """A controller of its own whose Samples' time is a ``HoldingTimer`` (``own_ctl.timer``),
    for the calls that look at what happens while a Sample proposes."""
    timer = HoldingTimer()
    c = Controller(str(tmp_path), agents=("random",), timer=timer)
    yield c
    timer.release(0)  # nothing stays held when a test failed before releasing it
    c.channel.close()
    c.handle.stop(None)  # the store stays open: a handler may still be using it


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


def valid_round(ctl: Controller) -> tuple[str, cpb.SampleResponse]:
    search = ctl.stub.CreateSearch(VALID_CREATE, timeout=DEADLINE)
    batch = ctl.stub.Sample(
        cpb.SampleRequest(search_id=search.search_id, count=2, request_id="first"), timeout=DEADLINE
    )
    assert len(batch.candidates) == 2
    return search.search_id, batch


def valid_result(text: str, acc: float = 0.5) -> tpb.TrainResult:
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


# ----------------------------------------------------------------------------- katib adapter


class ErrorLog(logging.Handler):
    """Records of ERROR and above, and any record carrying a traceback, logged anywhere in
    this process (the servers run in it: grpc's 'Exception calling application' included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._records: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or record.stack_info:
            with self._lock:
                self._records.append(record)

    def take(self) -> list[str]:
        """What was logged since the last ``take``, one line a record."""
        with self._lock:
            records, self._records = self._records, []
        return [f"{r.levelname} {r.name}: {short(r.getMessage(), 200)}" for r in records]


class KatibAdapter:
    """The Katib Suggestion adapter in this process, on 127.0.0.1:0, with a controller of its
    own behind it; ``errors`` collects what the process logs at ERROR or with a traceback."""

    ANSWER_WITHIN = 3.0  # seconds a GetSuggestions samples before answering with fewer

    def __init__(self, tmp: str) -> None:
        self.errors = ErrorLog()
        logging.getLogger().addHandler(self.errors)
        self.ctl = Controller(tmp, agents=("random",))
        self.client = ControllerClient(self.ctl.target, timeout=DEADLINE)
        self.servicer = SuggestionServicer(self.client, answer_within=self.ANSWER_WITHIN)
        servicer = self.servicer
        self.handle = rpc.start_server(
            "127.0.0.1",
            0,
            lambda s: katib_api_pb2_grpc.add_SuggestionServicer_to_server(servicer, s),
            [KATIB_SERVICE],
        )
        self.handle.services = (*self.handle.services, KATIB_PROBE_NAME)
        self.handle.set_serving(True)
        self.target = f"127.0.0.1:{self.handle.port}"
        self.channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.stub = katib_api_pb2_grpc.SuggestionStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self._valid_rounds = 0

    def raw(self, method: str) -> Callable[..., Any]:
        return self.channel.unary_unary(
            f"/api.v1.beta1.Suggestion/{method}",
            request_serializer=None,
            response_deserializer=None,
        )

    def assert_serving(self, what: str = "") -> None:
        """Health SERVING under the name Katib probes, a valid experiment validated and given
        a suggestion, nothing logged at ERROR or with a traceback, the controller intact."""
        check = self.health.Check(
            health_pb2.HealthCheckRequest(service=KATIB_PROBE_NAME), timeout=DEADLINE
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING, what
        exp = valid_experiment("hostile-valid")
        self.stub.ValidateAlgorithmSettings(
            kpb.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=DEADLINE
        )
        self._valid_rounds += 1
        reply = self.stub.GetSuggestions(
            kpb.GetSuggestionsRequest(
                experiment=exp, current_request_number=1, total_request_number=self._valid_rounds
            ),
            timeout=DEADLINE,
        )
        assert len(reply.parameter_assignments) == 1, what
        logged = self.errors.take()
        assert not logged, f"logged after {what}: {logged[:5]}"
        self.ctl.assert_serving(what)

    def close(self) -> None:
        self.channel.close()
        self.handle.stop(None)
        self.servicer.close()
        self.client.close()
        self.ctl.close()
        logging.getLogger().removeHandler(self.errors)


def valid_experiment(name: str, nas: bool = False, budget: int = 1_000_000) -> kpb.Experiment:
    """A Katib experiment the adapter takes: the random agent on digits, a 3-layer Zoph space
    (``nas``: the same from a nasConfig, so assignments carry ENAS-style JSON too)."""
    spec = kpb.ExperimentSpec(
        objective=kpb.ObjectiveSpec(type=kpb.MAXIMIZE, objective_metric_name="accuracy"),
        algorithm=kpb.AlgorithmSpec(
            algorithm_name="nasrl",
            algorithm_settings=[
                kpb.AlgorithmSetting(name="agent", value="random"),
                kpb.AlgorithmSetting(name="dataset", value="digits"),
                kpb.AlgorithmSetting(name="epochs", value="1"),
                *([] if nas else [kpb.AlgorithmSetting(name="max_layers", value="3")]),
            ],
        ),
        parallel_trial_count=2,
        max_trial_count=budget,
    )
    spec.parameter_specs.parameters.add(
        name="nasrl_architecture",
        parameter_type=kpb.CATEGORICAL,
        feasible_space=kpb.FeasibleSpace(list=["nasrl"]),
    )
    if nas:
        spec.nas_config.graph_config.CopyFrom(
            kpb.GraphConfig(num_layers=3, input_sizes=[8, 8, 1], output_sizes=[10])
        )
        op = spec.nas_config.operations.operation.add(operation_type="convolution")
        for param, values in (
            ("filter_size", ["1", "3"]),
            ("num_filter", ["4"]),
            ("stride", ["1"]),
        ):
            op.parameter_specs.parameters.add(
                name=param,
                parameter_type=kpb.CATEGORICAL,
                feasible_space=kpb.FeasibleSpace(list=values),
            )
        for param in ("architecture", "nn_config"):
            spec.parameter_specs.parameters.add(name=param, parameter_type=kpb.CATEGORICAL)
    return kpb.Experiment(name=name, spec=spec)


@pytest.fixture(scope="module")
def katib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KatibAdapter]:
    k = KatibAdapter(str(tmp_path_factory.mktemp("hostile-katib")))
    yield k
    k.assert_serving("the whole module")
    k.close()


@pytest.fixture()
def serving_katib(katib: KatibAdapter, request: pytest.FixtureRequest) -> Iterator[KatibAdapter]:
    katib.errors.take()  # what earlier fixtures logged is theirs
    yield katib
    katib.assert_serving(request.node.name)
