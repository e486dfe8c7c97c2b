"""Searches for the dashboard's tests and screenshots, made through the controller's real
RPCs: a finished search (trained children with learning curves, one stopped early by ASHA,
one failure, one child trained for real on a trainer so that its weights can be
downloaded) and a running one (results, children in flight)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nasrl.core import codec
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.rpc.client import Candidate, ControllerClient, TrainerClient
from protos import controller_pb2 as cpb

EPOCHS = 3
SPACE = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=3, filters=[8, 16], strides=[1, 2]))


@dataclass(frozen=True)
class World:
    done: str  # the finished search
    running: str  # the running one
    failed_child: int
    failure: str
    stopped_child: int
    real_child: int | None  # trained on a real trainer (its weights are downloadable)


def curve_outcome(text: str, curve: list[float], seed: int) -> TrainOutcome:
    """A synthetic result with a learning curve; sizes vary with ``seed``."""
    rng = random.Random(seed)
    records = tuple(
        EpochRecord(i + 1, EPOCHS, 1.5 - v, v - 0.02, v, float(i + 1)) for i, v in enumerate(curve)
    )
    params = rng.randint(2_000, 60_000)
    return TrainOutcome(
        max(curve),
        max(curve[-5:]),
        max(curve) - 0.01,
        params,
        params * rng.randint(20, 200),
        0.5 + len(curve) * rng.random(),
        "cpu",
        text,
        records,
        stopped_early=len(curve) < EPOCHS,
    )


def create(c: ControllerClient, name: str, budget: int, rule: str = "none") -> str:
    return c.create_search(
        agent=cpb.AgentSpec(name="evolution"),
        dataset="digits",
        budget=budget,
        space=SPACE,
        training=codec.settings_to_proto(TrainSettings(epochs=EPOCHS)),
        early_stopping=cpb.EarlyStopping(rule=rule),
        name=name,
        seed=1,
    ).search_id


def report_results(c: ControllerClient, sid: str, cands: list[Candidate], start: int) -> None:
    for i, cand in enumerate(cands):
        top = 0.55 + 0.4 * random.Random(start + i).random()
        c.update(sid, cand.id, curve_outcome(cand.text, [top - 0.2, top - 0.05, top], start + i))


def _sample_new(c: ControllerClient, sid: str, n: int) -> list[Candidate]:
    """``n`` candidates to train (cached answers need no report)."""
    out: list[Candidate] = []
    while len(out) < n:
        batch = c.sample(sid, n - len(out))
        out += [x for x in batch.candidates if x.cached is None]
        if batch.done:
            break
    return out


def build(c: ControllerClient, trainer: str | None = None) -> World:
    done = create(c, "evolution on digits (finished)", budget=12, rule="asha")
    first = _sample_new(c, done, 4)
    # ASHA: the first child at the rung continues, a worse one stops
    assert c.report(done, first[0].id, 1, 0.80)
    assert not c.report(done, first[1].id, 1, 0.30)
    c.update(done, first[1].id, curve_outcome(first[1].text, [0.30], 99))
    failure = "CUDA out of memory: tried to allocate 2.00 GiB"
    c.update(done, first[2].id, failure=failure)
    real_child = None
    rest = [first[0], first[3]]
    if trainer is not None:
        with TrainerClient(trainer) as t:
            real = first[3]
            outcome = t.train(real.text, "digits", TrainSettings(epochs=EPOCHS))
        c.update(done, real.id, outcome)
        real_child, rest = real.id, [first[0]]
    report_results(c, done, rest, 0)
    while True:
        more = _sample_new(c, done, 4)
        if not more:
            break
        report_results(c, done, more, 10 + more[0].id)
    running = create(c, "evolution on digits (running)", budget=40)
    report_results(c, running, _sample_new(c, running, 6), 200)
    _sample_new(c, running, 2)  # in flight
    return World(done, running, first[2].id, failure, first[1].id, real_child)


class Recorder:
    """The Controller methods a server was called with (to show a viewer changes nothing)."""

    def __init__(self) -> None:
        self.methods: set[str] = set()


def serve_controller(db: str, port: int = 0, recorder: Recorder | None = None) -> Any:
    """A real controller on 127.0.0.1:``port`` (0: a free one) on database ``db``, recording
    the methods called in ``recorder``; returns (handle, searches)."""
    from controller_service.searches import Searches
    from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
    from controller_service.store import Store
    from nasrl.rpc import rpc
    from protos import controller_pb2, controller_pb2_grpc

    searches = Searches(Store(db))
    servicer = ControllerServicer(searches)
    if recorder is not None:
        service = controller_pb2.DESCRIPTOR.services_by_name["Controller"]
        for method in service.methods:
            setattr(servicer, method.name, _recording(getattr(servicer, method.name), recorder))
    handle = rpc.start_server(
        "127.0.0.1",
        port,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        [controller_pb2.DESCRIPTOR.services_by_name["Controller"].full_name],
        max_workers=16,
        request_limits=REQUEST_LIMITS,
    )
    handle.set_serving(True)
    return handle, searches


def _recording(method: Any, recorder: Recorder) -> Any:
    def call(request: Any, context: Any) -> Any:
        recorder.methods.add(method.__name__)
        return method(request, context)

    return call
