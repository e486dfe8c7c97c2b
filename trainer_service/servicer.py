"""The Trainer gRPC servicer: translates messages, maps domain errors to status codes, and
enforces the slot limit. Training itself lives in train.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
import torch
from protos import trainer_pb2, trainer_pb2_grpc

from nasrl import codec
from nasrl.arch import ArchError, Architecture, format_arch
from nasrl.results import EpochRecord, SettingsError, TrainSettings
from nasrl.shapes import analyze
from trainer_service import data
from trainer_service.config import TrainerConfig
from trainer_service.train import Cancelled, train

__all__ = ["TrainerServicer"]

log = logging.getLogger(__name__)


class TrainerServicer(trainer_pb2_grpc.TrainerServicer):
    def __init__(self, config: TrainerConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self._slots = threading.BoundedSemaphore(config.slots)
        self._closing = threading.Event()

    def close(self) -> None:
        """Refuse new calls; running ones go on until the server's grace ends."""
        self._closing.set()

    def Train(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> Iterator[trainer_pb2.TrainEvent]:
        if self._closing.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the trainer is shutting down; retry on another")
        arch, settings, dataset = self._validate(request, context)
        if not self._slots.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"all {self.config.slots} training slot(s) of this trainer are busy; "
                "retry later or on another trainer",
            )
        held = True
        try:
            log.info("training %s on %s", format_arch(arch), dataset.name)
            events = train(
                arch, dataset, settings, self.device, self.config.limits,
                should_stop=lambda: not context.is_active(),
                max_seconds=self.config.max_seconds,
            )
            for event in events:
                if isinstance(event, EpochRecord):
                    yield trainer_pb2.TrainEvent(progress=codec.epoch_to_proto(event))
                else:
                    # Free the slot before the caller sees the result, so that its next call
                    # finds the slot free.
                    self._slots.release()
                    held = False
                    yield trainer_pb2.TrainEvent(result=codec.outcome_to_proto(event))
        except Cancelled:
            log.info("training cancelled by the caller: %s", format_arch(arch))
        except torch.OutOfMemoryError:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{format_arch(arch)} ran out of memory on {self.device}; "
                "try a smaller batch size or a smaller network",
            )
        finally:
            if held:
                self._slots.release()

    def _validate(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> tuple[Architecture, TrainSettings, data.Dataset]:
        try:
            dataset = data.load(request.dataset, self.config.data_dir)
            arch = codec.arch_from_proto(request.architecture)
            analyze(arch, dataset.shape, self.config.limits)
            settings = codec.settings_from_proto(request.config)
        except (ArchError, SettingsError, data.DatasetError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except data.DatasetMissing as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return arch, settings, dataset
