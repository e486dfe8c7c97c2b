"""The Trainer gRPC servicer: translates messages, maps domain errors to status codes, and
enforces the slot limit. Training itself lives in train.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import grpc
import torch

from nasrl.core import codec
from nasrl.core.arch import ArchError, Architecture, canonical, format_arch
from nasrl.core.datasets import input_shape
from nasrl.core.results import EpochRecord, SettingsError, TrainOutcome, TrainSettings, weights_id
from nasrl.core.shapes import InputShape, analyze
from nasrl.core.table import Table, TableError, read_table
from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service import data
from trainer_service.config import TrainerConfig
from trainer_service.shared import SharedSpec, SharedWeights, SupernetsFull
from trainer_service.simulate import simulate
from trainer_service.table_trainer import replay, table_row_for
from trainer_service.train import Cancelled, train
from trainer_service.weights import WeightStore, valid_id

__all__ = ["TrainerServicer", "SHUTTING_DOWN"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # GetWeights chunk size: far below the 16 MiB message limit
SHUTTING_DOWN = "the trainer is shutting down; retry on another trainer"


#: how long a child waits for its caller's decision (TrainRequest.await_decisions) before it
#: goes on regardless: a runner that lost its controller must not hold a slot for ever
DECISION_WAIT = 600.0


@dataclass
class _Run:
    """One Train call's events: ``finish`` when FinishEarly asked it to end after the current
    epoch; ``wake`` as well, and when the call ends or is cancelled (a simulated child sleeps
    on it instead of polling); ``decided``, the last epoch Proceed let it go on past (under
    ``changed``, notified by each of these)."""

    finish: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    decided: int = 0
    ended: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def end(self) -> None:
        """The call ended or was cancelled."""
        self.wake.set()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def finish_early(self) -> None:
        self.finish.set()
        self.wake.set()
        with self.changed:
            self.changed.notify_all()

    def proceed(self, epoch: int) -> None:
        with self.changed:
            self.decided = max(self.decided, epoch)
            self.changed.notify_all()

    def await_decision(self, epoch: int, timeout: float = DECISION_WAIT) -> bool:
        """Wait until the caller decided on ``epoch`` (Proceed or FinishEarly) or the call
        ended; False when ``timeout`` passed first."""
        with self.changed:
            return self.changed.wait_for(
                lambda: self.decided >= epoch or self.finish.is_set() or self.ended, timeout
            )


class TrainerServicer(trainer_pb2_grpc.TrainerServicer):
    def __init__(
        self,
        config: TrainerConfig,
        device: torch.device | Sequence[torch.device] | None,
        weights: WeightStore | None = None,
        shared: SharedWeights | None = None,
    ) -> None:
        """``device``: one for every slot, or one per slot (``cuda:all``), or None while the
        trainer waits for a GPU (``cuda:any``): calls get UNAVAILABLE until ``use_devices``."""
        self.config = config
        self.weights = weights
        self.shared = shared  # --supernet: the supernets, by (dataset, space)
        self.table: Table | None = read_table(config.table) if config.table else None
        self._slots = threading.BoundedSemaphore(config.slots)
        self._free_devices: list[torch.device] = []  # one per free slot
        self._devices: list[str] = []  # every slot's device, for GetStatus
        self._devices_lock = threading.Lock()
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._finish: dict[str, _Run] = {}  # run_id -> its FinishEarly events
        self._finish_lock = threading.Lock()
        if device is not None:
            self.use_devices(device)

    def use_devices(self, device: torch.device | Sequence[torch.device]) -> None:
        """Train on ``device`` (every slot) or on ``device[i]`` in slot i."""
        devices = [device] * self.config.slots if isinstance(device, torch.device) else list(device)
        if len(devices) != self.config.slots:
            raise ValueError(f"{len(devices)} devices for {self.config.slots} slots")
        with self._devices_lock:
            self._free_devices = devices
            self._devices = [str(d) for d in devices]
        self._ready.set()

    def busy_slots(self) -> int:
        """Slots training a child now (for metrics)."""
        if not self._ready.is_set():
            return 0
        with self._devices_lock:
            return self.config.slots - len(self._free_devices)

    @property
    def ready(self) -> bool:
        """False while waiting for a GPU (``cuda:any``)."""
        return self._ready.is_set()

    def _take_device(self) -> torch.device:
        with self._devices_lock:  # a slot is held, so a device is free
            return self._free_devices.pop()

    def _free_slot(self, device: torch.device) -> None:
        with self._devices_lock:
            self._free_devices.append(device)
        self._slots.release()

    def close(self) -> None:
        """Refuse new children; running ones go on until the server's grace ends. The
        supernets are checkpointed now (a running child's later steps are saved by the
        periodic checkpoints only)."""
        self._closing.set()
        if self.shared is not None:
            self.shared.save_all()

    def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> Iterator[trainer_pb2.TrainEvent]:
        if self._closing.is_set():
            rpc.abort(context, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        if not self._ready.is_set():
            rpc.abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "this trainer is waiting for a free GPU (every GPU of its host is claimed "
                "by another trainer, --device cuda:any); retry on another trainer",
            )
        arch, settings, shape = self._validate(request, context)
        if not self._slots.acquire(blocking=False):
            rpc.abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"all {self.config.slots} training slot(s) of this trainer are busy; "
                "retry later or on another trainer",
            )
        held = True
        device = self._take_device()
        run = self._register(request.run_id)
        finish = run.finish
        if not context.add_callback(run.end):  # run when the RPC ends or is cancelled
            run.end()  # it already has: nothing may sleep on it
        # a table or simulated child's epochs take no time: it waits for each decision
        paced = bool(request.await_decisions and request.run_id) and (
            self.table is not None or self.config.simulate is not None
        )
        try:
            log.info("training %s on %s", format_arch(arch), request.dataset)
            stop = lambda: not context.is_active()  # noqa: E731
            # (weights id, state dict), filled by real and shared training only
            kept: list[tuple[str, dict[str, torch.Tensor]]] = []
            keep = (lambda wid, state: kept.append((wid, state))) if self._keeping else None
            if self.table is not None:
                text, seed = table_row_for(self.table, arch, request.dataset, settings)
                events = replay(
                    self.table,
                    text,
                    seed,
                    settings.epochs,
                    self.config.time_scale,
                    stop,
                    finish.is_set,
                )
            elif self.config.simulate is not None:
                events = simulate(
                    arch, shape, settings, self.config.simulate, stop, finish.is_set, run.wake
                )
            elif self.shared is not None:
                events = self.shared.train(
                    arch,
                    data.load(request.dataset, self.config.data_dir),
                    settings,
                    _shared_spec(request),
                    device,
                    should_stop=stop,
                    on_weights=keep,
                )
            else:
                dataset = data.load(request.dataset, self.config.data_dir)  # cached
                wid = weights_id(format_arch(canonical(arch)), request.dataset, settings)
                events = train(
                    arch,
                    dataset,
                    settings,
                    device,
                    self.config.limits,
                    should_stop=stop,
                    max_seconds=self.config.max_seconds,
                    on_weights=(lambda state: keep(wid, state)) if keep else None,
                    should_finish=finish.is_set,
                )
            for event in events:
                if isinstance(event, EpochRecord):
                    waits = paced and event.epoch < event.epochs
                    progress = codec.epoch_to_proto(event)
                    progress.awaiting_decision = waits
                    yield trainer_pb2.TrainEvent(progress=progress)
                    if waits and not run.await_decision(event.epoch):
                        log.warning(
                            "run %s: no decision on epoch %d within %.0f s; going on",
                            request.run_id,
                            event.epoch,
                            DECISION_WAIT,
                        )
                else:
                    if kept:
                        event = self._keep(event, *kept[0])
                    # Free the slot before the caller sees the result, so that its next call
                    # finds the slot free.
                    self._free_slot(device)
                    held = False
                    yield trainer_pb2.TrainEvent(result=codec.outcome_to_proto(event))
        except Cancelled:
            log.info("training cancelled by the caller: %s", format_arch(arch))
        except torch.OutOfMemoryError:
            rpc.abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{format_arch(arch)} ran out of memory on {device}; "
                "try a smaller batch size or a smaller network",
            )
        finally:
            self._unregister(request.run_id, run)
            if held:
                self._free_slot(device)

    def _register(self, run_id: str) -> _Run:
        run = _Run()
        if run_id:
            with self._finish_lock:
                self._finish[run_id] = run
        return run

    def _unregister(self, run_id: str, run: _Run) -> None:
        with self._finish_lock:
            if self._finish.get(run_id) is run:
                del self._finish[run_id]

    def FinishEarly(
        self, request: trainer_pb2.FinishEarlyRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.FinishEarlyResponse:
        with self._finish_lock:
            run = self._finish.get(request.run_id) if request.run_id else None
        if run is not None:
            run.finish_early()
        return trainer_pb2.FinishEarlyResponse(found=run is not None)

    def Proceed(
        self, request: trainer_pb2.ProceedRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.ProceedResponse:
        with self._finish_lock:
            run = self._finish.get(request.run_id) if request.run_id else None
        if run is not None:
            run.proceed(request.epoch)
        return trainer_pb2.ProceedResponse(found=run is not None)

    @property
    def _keeping(self) -> bool:
        return self.weights is not None and self.weights.enabled

    def _keep(
        self, outcome: TrainOutcome, wid: str, state: dict[str, torch.Tensor]
    ) -> TrainOutcome:
        """The outcome with its weights id once the weights are in the store."""
        assert self.weights is not None
        try:
            if not self.weights.put(wid, state, outcome.architecture):
                return outcome
        except OSError as exc:  # a full disk costs the weights, not the result
            log.warning("could not keep the weights of %s: %s", outcome.architecture, exc)
            return outcome
        return replace(outcome, weights_id=wid)

    def GetWeights(
        self, request: trainer_pb2.GetWeightsRequest, context: grpc.ServicerContext
    ) -> Iterator[trainer_pb2.WeightsChunk]:
        if not valid_id(request.weights_id):
            rpc.abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "weights_id must be the 32 hex digits of a TrainResult.weights_id, got "
                f"{request.weights_id[:80]!r}",
            )
        blob = self.weights.get(request.weights_id) if self.weights is not None else None
        if blob is None:
            rpc.abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"this trainer holds no weights {request.weights_id}: it did not train "
                "that child, or evicted its weights (--weights-max-mb); train it again",
            )
        arch = self._architecture_of(blob)
        for start in range(0, len(blob), CHUNK):
            yield trainer_pb2.WeightsChunk(
                data=blob[start : start + CHUNK], total_bytes=len(blob), architecture=arch
            )

    @staticmethod
    def _architecture_of(blob: bytes) -> str:
        import io

        saved = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
        return str(saved.get("architecture", ""))

    def _validate(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> tuple[Architecture, TrainSettings, InputShape]:
        """The request's architecture, settings and input shape; aborts with a status naming
        the problem. A simulating trainer needs only the dataset's shape, not its files."""
        try:
            if self.config.simulate is not None or self.table is not None:
                shape = input_shape(request.dataset)
            else:
                shape = data.load(request.dataset, self.config.data_dir).shape
            arch = codec.arch_from_proto(request.architecture)
            analyze(arch, shape, self.config.limits)
            settings = codec.settings_from_proto(request.config)
            if len(request.run_id) > 128:
                raise SettingsError(
                    f"run_id must be at most 128 characters, got {len(request.run_id)}"
                )
            if self.table is not None:
                table_row_for(self.table, arch, request.dataset, settings)
            if self.shared is not None:
                device = self._free_devices[0] if self._free_devices else torch.device("cpu")
                self.shared.check(
                    arch,
                    request.dataset,
                    shape,
                    _shared_spec(request),
                    settings.seed,
                    device,
                    self.config.limits,
                )
        except (ArchError, SettingsError, data.DatasetError, TableError) as exc:
            rpc.abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except KeyError as exc:  # input_shape: unknown dataset
            rpc.abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc.args[0]))
        except (data.DatasetMissing, data.DatasetInvalid) as exc:
            rpc.abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except SupernetsFull as exc:
            rpc.abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return arch, settings, shape

    def ListDatasets(
        self, request: trainer_pb2.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.ListDatasetsResponse:
        from trainer_service.listing import describe

        datasets = describe(self.config.data_dir, request.name)
        if request.name and not datasets:
            rpc.abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"this trainer has no dataset {request.name[:100]!r}: put "
                f"{request.name[:100]}.npz or {request.name[:100]}/train/CLASS/*.png in "
                f"its --data-dir ({self.config.data_dir or 'not set'})",
            )
        return trainer_pb2.ListDatasetsResponse(datasets=datasets)

    def GetStatus(
        self, request: trainer_pb2.GetStatusRequest, context: grpc.ServicerContext
    ) -> trainer_pb2.TrainerStatus:
        kept, size = self.weights.usage() if self.weights is not None else (0, 0)
        mode = (
            "table"
            if self.table is not None
            else "simulate"
            if self.config.simulate is not None
            else "supernet"
            if self.shared is not None
            else "train"
        )
        with self._devices_lock:
            devices = list(self._devices)
        return trainer_pb2.TrainerStatus(
            slots=self.config.slots,
            busy_slots=self.busy_slots(),
            ready=self.ready,
            devices=devices,
            mode=mode,
            weights_kept=kept,
            weights_bytes=size,
        )


def _shared_spec(request: trainer_pb2.TrainRequest) -> SharedSpec:
    m = request.shared
    return SharedSpec(m.steps, m.max_kernel, m.max_filters, m.max_layers)
