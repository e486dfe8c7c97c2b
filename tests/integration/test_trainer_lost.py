"""A trainer that dies is the trainer's failure, not the child's: the runner moves the child to
a trainer that is up (waiting for a busy one's slot), reports nothing as FAILED for it, and
when no trainer comes back within its wait it stops with a clear error, leaving the child
leased. Real trainer servers on 127.0.0.1:0 (simulated training), a real controller."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
import torch

from nasrl.core.results import TrainOutcome
from nasrl.rpc import rpc
from nasrl.rpc.client import Candidate, ControllerClient
from nasrl.runner import Runner, RunnerEvents, TrainerPool, TrainersDown
from nasrl.runner import pool as pool_module
from nasrl.runner import runner as runner_module
from protos import controller_pb2 as cpb
from protos import trainer_pb2_grpc
from tests.helpers import nasrl_cli
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer

from .conftest import SERVICE, start_trainer, watch_slots

BUDGET = 4
FOREVER = 3600.0  # a simulated child that runs until its trainer dies


def hold_first_call(servicer: TrainerServicer) -> tuple[threading.Event, threading.Event]:
    """(busy, release): the trainer's first Train call holds its slot until ``release``."""
    busy, release = threading.Event(), threading.Event()
    take = servicer._take_device

    def taking() -> torch.device:
        device = take()
        if not busy.is_set():
            busy.set()
            assert release.wait(120), "the test never released the trainer"
        return device

    servicer._take_device = taking  # type: ignore[method-assign]
    return busy, release


@dataclass
class Watch:
    """What the runner told its user interface; ``waiting_or_failed``: a child waits for a
    trainer that is up (or, without the fix, was reported failed)."""

    results: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    waits: list[tuple[int, str]] = field(default_factory=list)
    waiting_or_failed: threading.Event = field(default_factory=threading.Event)

    def events(self) -> RunnerEvents:
        return RunnerEvents(on_result=self.on_result, on_wait=self.on_wait)

    def on_result(
        self, cand: Candidate, target: str | None, r: TrainOutcome | None, failure: str | None
    ) -> None:
        self.results.append((cand.id, target, failure))
        if failure:
            self.waiting_or_failed.set()

    def on_wait(self, cand: Candidate, target: str, reason: str) -> None:
        self.waits.append((cand.id, target))
        self.waiting_or_failed.set()

    def failures(self) -> list[tuple[int, str | None, str | None]]:
        return [r for r in self.results if r[2]]


def create(c: ControllerClient, budget: int) -> str:
    return c.create_search(
        agent=cpb.AgentSpec(name="random"), dataset="digits", budget=budget
    ).search_id


def run_in_thread(runner: Runner) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def go() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, errors


def test_a_child_waits_for_the_busy_live_trainer_when_the_other_dies(controller: str) -> None:
    a, a_servicer = start_trainer(simulate=FOREVER)
    b, b_servicer = start_trainer(simulate=0.0)
    a_busy = watch_slots(a_servicer).taken
    b_busy, b_release = hold_first_call(b_servicer)
    a_target, b_target = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    watch = Watch()
    pool = TrainerPool(f"{a_target},{b_target}")
    try:
        with ControllerClient(controller) as c:
            sid = create(c, BUDGET)
            runner = Runner(c, pool, sid, watch.events())
            thread, errors = run_in_thread(runner)
            assert a_busy.wait(60) and b_busy.wait(60)  # one child on each
            a.stop(None)  # A dies mid-child (its call ends UNAVAILABLE) while B is busy
            # the child from A waits for B (before the fix: it was burnt on dead A)
            assert watch.waiting_or_failed.wait(120)
            b_release.set()  # B finishes its child and takes the one from A
            thread.join(120)
            assert not thread.is_alive() and not errors, errors
            s = c.get_search(sid)
    finally:
        b_release.set()
        pool.close()
        for handle in (a, b):
            handle.stop(None)
    assert watch.failures() == []
    assert s.counts.failed == 0 and s.counts.evaluated == BUDGET
    assert runner.stats.failed == 0 and runner.stats.trained == BUDGET
    assert runner.stats.per_trainer == {b_target: BUDGET}  # the child from A included
    assert [target for _, target in watch.waits] == [a_target]  # one wait, for A


def test_a_trainer_that_comes_back_gets_the_child(controller: str) -> None:
    handle, servicer = start_trainer(simulate=FOREVER)
    busy = watch_slots(servicer).taken
    target = f"127.0.0.1:{handle.port}"
    watch = Watch()
    pool = TrainerPool(target)
    back: rpc.ServerHandle | None = None
    try:
        with ControllerClient(controller) as c:
            sid = create(c, 2)
            runner = Runner(c, pool, sid, watch.events())
            thread, errors = run_in_thread(runner)
            assert busy.wait(60)
            handle.stop(None)  # the only trainer dies mid-child
            assert watch.waiting_or_failed.wait(120)
            # it restarts on the same port (quick children now): a health check finds it
            again = TrainerServicer(
                TrainerConfig(port=0, simulate=0.0), torch.device("cpu"), servicer.weights
            )
            back = rpc.start_server(
                "127.0.0.1",
                handle.port,
                lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(again, s),
                [SERVICE],
            )
            back.set_serving(True)
            thread.join(120)
            assert not thread.is_alive() and not errors, errors
            s = c.get_search(sid)
    finally:
        pool.close()
        if back is not None:
            back.stop(None)
    assert watch.failures() == []
    assert s.counts.failed == 0 and s.counts.evaluated == 2
    assert runner.stats.per_trainer == {target: 2}


def test_no_trainer_back_within_the_wait_stops_and_reports_nothing(controller: str) -> None:
    handle, servicer = start_trainer(simulate=FOREVER)
    busy = watch_slots(servicer).taken
    target = f"127.0.0.1:{handle.port}"
    watch = Watch()
    pool = TrainerPool(target)
    try:
        with ControllerClient(controller) as c:
            sid = create(c, 3)
            runner = Runner(c, pool, sid, watch.events(), trainer_wait=0.5)
            thread, errors = run_in_thread(runner)
            assert busy.wait(60)
            handle.stop(None)  # the only trainer dies and stays down
            thread.join(120)
            assert not thread.is_alive()
            s = c.get_search(sid)
    finally:
        pool.close()
    assert len(errors) == 1 and isinstance(errors[0], TrainersDown), errors
    message = str(errors[0])
    assert "no trainer has been up for" in message and target in message
    assert f"--resume {sid}" in message
    assert watch.results == [] and len(watch.waits) == 1  # nothing reported: not burnt
    assert s.counts.failed == 0 and s.counts.evaluated == 0 and s.counts.in_flight == 1


def test_search_stops_with_a_clear_error_when_no_trainer_is_up(controller: str) -> None:
    """`nasrl search` against a trainer that never answers: exit 1 after --trainer-wait with
    one `nasrl: error:` line; no child is reported failed (the first one stays leased)."""
    r = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        "127.0.0.1:1",
        "--agent",
        "random",
        "--budget",
        "2",
        "--trainer-wait",
        "0.5",
        "--json",
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("nasrl: error:")]
    assert len(errors) == 1, r.stderr
    assert "no trainer has been up for" in errors[0] and "127.0.0.1:1" in errors[0]
    assert "--trainer-wait 0.5" in errors[0] and "Traceback" not in r.stderr
    with ControllerClient(controller) as c:
        (s,) = c.list_searches()
    assert s.counts.failed == 0 and s.counts.evaluated == 0 and s.counts.in_flight >= 1


def test_a_child_whose_trainer_keeps_going_down_is_reported_failed(
    controller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainer whose health says SERVING while every Train ends UNAVAILABLE (as if the child
    brought it down each time): after LOSSES_PER_CHILD losses the child is a failure, so the
    runner does not go round for ever."""
    monkeypatch.setattr(pool_module, "PROBE_BACKOFF_MAX", 0.0)  # no backoff: a quick test
    handle, servicer = start_trainer(simulate=0.0)
    servicer.close()  # Train: UNAVAILABLE "shutting down"; health stays SERVING
    target = f"127.0.0.1:{handle.port}"
    watch = Watch()
    pool = TrainerPool(target)
    try:
        with ControllerClient(controller) as c:
            sid = create(c, 1)
            runner = Runner(c, pool, sid, watch.events())
            stats = runner.run()
            s = c.get_search(sid)
    finally:
        pool.close()
        handle.stop(None)
    assert stats.failed == 1 and s.counts.failed == 1
    ((_, _, failure),) = watch.results
    assert failure is not None and f"went down {runner_module.LOSSES_PER_CHILD} times" in failure
    assert len(watch.waits) == runner_module.LOSSES_PER_CHILD
