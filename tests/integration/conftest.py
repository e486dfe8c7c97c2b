from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from tests.helpers import FakeClock, torch_threads
from trainer_service.config import TrainerConfig
from trainer_service.servicer import TrainerServicer
from trainer_service.weights import WeightStore

if TYPE_CHECKING:
    from controller_service.searches import Searches

SERVICE = trainer_pb2.DESCRIPTOR.services_by_name["Trainer"].full_name


def start_trainer(
    slots: int = 1, weights: WeightStore | None = None, **config: Any
) -> tuple[rpc.ServerHandle, TrainerServicer]:
    """A real trainer gRPC server on 127.0.0.1:0 in this process; it keeps trained weights in
    ``weights`` (default: a fresh temporary folder, 64 MB)."""
    if weights is None:
        weights = WeightStore(Path(tempfile.mkdtemp(prefix="nasrl-test-weights-")), 64 << 20)
    servicer = TrainerServicer(
        TrainerConfig(port=0, slots=slots, **config), torch.device("cpu"), weights
    )
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        [SERVICE],
        max_workers=slots + 4,
    )
    handle.set_serving(True)
    return handle, servicer


@dataclass
class SlotWatch:
    """``taken``: a call holds one of the trainer's slots; ``freed``: a slot was given back
    (set once it is free again)."""

    taken: threading.Event = field(default_factory=threading.Event)
    freed: threading.Event = field(default_factory=threading.Event)


def watch_slots(servicer: TrainerServicer) -> SlotWatch:
    """Events for ``servicer``'s slots, so that a test waits for the moment a call takes or
    frees one instead of polling: its own slot bookkeeping is wrapped, nothing else changes."""
    watch = SlotWatch()
    take, free = servicer._take_device, servicer._free_slot

    def taking() -> torch.device:
        device = take()  # called with the slot just acquired
        watch.taken.set()
        return device

    def freeing(device: torch.device) -> None:
        free(device)  # the slot is released when this returns
        watch.freed.set()

    servicer._take_device = taking  # type: ignore[method-assign]
    servicer._free_slot = freeing  # type: ignore[method-assign]
    return watch


@pytest.fixture(scope="module")
def trainer() -> Iterator[str]:
    handle, _ = start_trainer()
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


def start_controller(
    db: str,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.monotonic,
) -> tuple[rpc.ServerHandle, "Searches"]:
    """A real controller gRPC server on 127.0.0.1:0 in this process, on database ``db``;
    ``clock`` sets its lease deadlines and ``timer`` bounds a Sample's proposing (a
    ``FakeClock`` lets a test move them instead of sleeping)."""
    from controller_service.searches import Searches
    from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
    from controller_service.store import Store
    from protos import controller_pb2, controller_pb2_grpc

    searches = Searches(Store(db), clock=clock, timer=timer)
    servicer = ControllerServicer(searches)
    handle = rpc.start_server(
        "127.0.0.1",
        0,
        lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
        [controller_pb2.DESCRIPTOR.services_by_name["Controller"].full_name],
        max_workers=32,
        request_limits=REQUEST_LIMITS,
    )
    handle.set_serving(True)
    return handle, searches


@pytest.fixture()
def controller(tmp_path) -> Iterator[str]:
    with torch_threads(1):
        handle, searches = start_controller(str(tmp_path / "controller.db"))
        yield f"127.0.0.1:{handle.port}"
        handle.stop(None)
        searches.store.close()


@pytest.fixture()
def clock() -> FakeClock:
    """A fake clock for one test; ``clock.advance(seconds)`` instead of sleeping."""
    return FakeClock()


@pytest.fixture()
def clocked_controller(tmp_path, clock: FakeClock) -> Iterator[str]:
    """A controller whose lease deadlines follow the ``clock`` fixture."""
    with torch_threads(1):
        handle, searches = start_controller(str(tmp_path / "controller.db"), clock=clock)
        yield f"127.0.0.1:{handle.port}"
        handle.stop(None)
        searches.store.close()


@pytest.fixture(scope="module")
def simulated() -> Iterator[str]:
    """A trainer that answers at once with a surrogate accuracy (exit codes and settings, not
    training), shared by a test module."""
    handle, _ = start_trainer(slots=2, simulate=0.0)
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)
