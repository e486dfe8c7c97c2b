"""The Trainer gRPC servicer: translates messages, maps domain errors to status codes, and
enforces the slot limit. Training itself lives in train.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc
import torch
from protos import trainer_pb2, trainer_pb2_grpc

from nasrl import codec, rpc
from nasrl.arch import ArchError, Architecture, format_arch
from nasrl.results import EpochRecord, SettingsError, TrainSettings
from nasrl.datasets import input_shape
from nasrl.shapes import InputShape, analyze
from trainer_service import data
from trainer_service.config import TrainerConfig
from trainer_service.simulate import simulate
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
            rpc.abort(context, grpc.StatusCode.UNAVAILABLE,
                      "the trainer is shutting down; retry on another")
        arch, settings, shape = self._validate(request, context)
        if not self._slots.acquire(blocking=False):
            rpc.abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"all {self.config.slots} training slot(s) of this trainer are busy; "
                      "retry later or on another trainer")
        held = True
        try:
            log.info("training %s on %s", format_arch(arch), request.dataset)
            stop = lambda: not context.is_active()  # noqa: E731
            if self.config.simulate is not None:
                events = simulate(arch, shape, settings, self.config.simulate, stop)
            else:
                dataset = data.load(request.dataset, self.config.data_dir)  # cached
                events = train(arch, dataset, settings, self.device, self.config.limits,
                               should_stop=stop, max_seconds=self.config.max_seconds)
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
            rpc.abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"{format_arch(arch)} ran out of memory on {self.device}; "
                      "try a smaller batch size or a smaller network")
        finally:
            if held:
                self._slots.release()

    def _validate(
        self, request: trainer_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> tuple[Architecture, TrainSettings, InputShape]:
        """The request's architecture, settings and input shape; aborts with a status naming
        the problem. A simulating trainer needs only the dataset's shape, not its files."""
        try:
            if self.config.simulate is not None:
                shape = input_shape(request.dataset)
            else:
                shape = data.load(request.dataset, self.config.data_dir).shape
            arch = codec.arch_from_proto(request.architecture)
            analyze(arch, shape, self.config.limits)
            settings = codec.settings_from_proto(request.config)
        except (ArchError, SettingsError, data.DatasetError) as exc:
            rpc.abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except KeyError as exc:  # input_shape: unknown dataset
            rpc.abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc.args[0]))
        except data.DatasetMissing as exc:
            rpc.abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return arch, settings, shape
