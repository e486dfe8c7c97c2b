"""python -m trainer_service --port P [--host H] [--data-dir D] [--device auto|cpu|cuda|cuda:N|
cuda:any|cuda:all] [--slots N]"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from nasrl.core.table import TableError
from nasrl.rpc import rpc
from protos import trainer_pb2, trainer_pb2_grpc
from trainer_service import gpus
from trainer_service.config import TrainerConfig, parse_args
from trainer_service.servicer import SHUTTING_DOWN, TrainerServicer
from trainer_service.shared import SharedWeights
from trainer_service.train import resolve_device, warm_up
from trainer_service.weights import WeightStore

if TYPE_CHECKING:
    from nasrl.rpc.metrics import Metrics

log = logging.getLogger("trainer_service")

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["Trainer"].full_name
#: still served after SIGTERM, while the running children finish: none of them starts one
SERVED_WHILE_DRAINING = tuple(
    f"/{SERVICE_NAME}/{m}"
    for m in ("FinishEarly", "Proceed", "GetWeights", "ListDatasets", "GetStatus")
)


def devices(config: TrainerConfig) -> torch.device | list[torch.device] | None:
    """What the slots train on; None for ``cuda:any``, whose GPU is claimed once serving."""
    if config.device in (gpus.ANY, gpus.ALL):
        if config.simulate is not None or config.table is not None:
            return torch.device("cpu")  # benchmark modes train nothing
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            raise ValueError(
                f"--device {config.device} was asked for, but torch sees no CUDA device"
            )
        if config.device == gpus.ANY:
            return None
        return [torch.device(d) for d in gpus.spread(config.slots, torch.cuda.device_count())]
    return resolve_device(config.device)


def run(config: TrainerConfig) -> int:
    """Set up the device(s), weights and servicer, then serve until SIGTERM; the exit status."""
    try:
        device = devices(config)
        if device is None:
            gpus.prepare_lock_dir(config.gpu_lock_dir)  # usable, or say why now
    except (ValueError, RuntimeError, gpus.GpuLockError) as exc:
        log.error("%s", exc)
        return 2
    if isinstance(device, torch.device) and device.type == "cpu":
        # Several slots share the cores instead of oversubscribing them.
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // config.slots))
    if config.simulate is None and config.table is None:
        began = time.perf_counter()
        warm_up(torch.device("cpu"))
        log.info(
            "warm-up: torch's FLOP counter ready in %.2f s (charged to no child)",
            time.perf_counter() - began,
        )
    with tempfile.TemporaryDirectory(prefix="nasrl-weights-") as tmp:
        try:
            weights = WeightStore(
                config.weights_dir or Path(tmp), int(config.weights_max_mb * 1024 * 1024)
            )
        except OSError as exc:
            log.error("cannot use --weights-dir %s: %s", config.weights_dir, exc)
            return 2
        shared = None
        if config.supernet:
            try:
                shared = SharedWeights(
                    config.supernet_dir, config.supernet_checkpoint_every, config.supernet_steps
                )
            except OSError as exc:
                log.error("cannot use --supernet-dir %s: %s", config.supernet_dir, exc)
                return 2
            if config.supernet_dir is None:
                log.warning("--supernet without --supernet-dir: the shared weights die with me")
        try:
            servicer = TrainerServicer(config, device, weights, shared)
        except TableError as exc:
            log.error("%s", exc)
            return 2
        return _serve(config, device, servicer)


def claim_gpu_then_serve(
    handle: rpc.ServerHandle,
    servicer: TrainerServicer,
    config: TrainerConfig,
    count: int,
    stop: threading.Event,
    poll: float = 1.0,
    waiting: threading.Event | None = None,
) -> gpus.GpuClaim | None:
    """``cuda:any``: claim a free GPU (waiting, health NOT_SERVING, while every one is
    claimed), then train on it and turn SERVING. The claim lasts until the process ends."""

    def on_wait() -> None:
        log.warning(
            "no free GPU: all %d GPU(s) of this host are claimed by other trainers "
            "(locks in %s); health stays NOT_SERVING until one is released",
            count,
            config.gpu_lock_dir,
        )
        if waiting is not None:
            waiting.set()

    try:
        claim = gpus.wait_for_gpu(config.gpu_lock_dir, count, stop, poll, on_wait)
    except gpus.GpuLockError as exc:
        log.error("%s; this trainer stays NOT_SERVING", exc)
        return None
    if claim is None:
        return None
    servicer.use_devices(torch.device(claim.device))
    log.info("claimed GPU %d (lock %s); serving", claim.index, claim.path)
    if not stop.is_set():
        handle.set_serving(True)
    return claim


def _serve(
    config: TrainerConfig,
    device: torch.device | Sequence[torch.device] | None,
    servicer: TrainerServicer,
) -> int:
    stop_claiming = threading.Event()

    def started(handle: rpc.ServerHandle) -> bool:
        if handle.metrics is not None:
            add_trainer_gauges(handle.metrics, servicer)
        if device is not None:
            return True
        threading.Thread(
            target=claim_gpu_then_serve,
            name="gpu-claim",
            daemon=True,
            args=(handle, servicer, config, torch.cuda.device_count(), stop_claiming),
        ).start()
        return False  # SERVING once a GPU is claimed

    def on_stop() -> None:
        stop_claiming.set()
        servicer.close()

    return rpc.serve(
        config,
        lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
        [SERVICE_NAME],
        banner=lambda port: f"trainer listening on {config.host}:{port} "
        f"({_mode(config, device)}, {config.slots} slot(s))",
        max_workers=config.slots + 8,
        on_started=started,
        on_stop=on_stop,
        # New children are refused (the runner tries another trainer); health answers
        # NOT_SERVING on new connections until the running children finished.
        drain=rpc.Drain(SERVED_WHILE_DRAINING, SHUTTING_DOWN),
    )


def _mode(config: TrainerConfig, device: torch.device | Sequence[torch.device] | None) -> str:
    if config.table is not None:
        return f"TABLE {config.table}, time scale {config.time_scale:g}"
    if config.simulate is not None:
        return f"SIMULATION, {config.simulate:g}s per child"
    if config.supernet:
        where = f"checkpoints in {config.supernet_dir}" if config.supernet_dir else "no checkpoints"
        return f"SUPERNET (shared weights, {where}), device {_listed(device)[0] if device else 'cuda:any'}"
    if device is None:
        return f"device {gpus.ANY}, one free GPU claimed in {config.gpu_lock_dir}"
    return f"device {', '.join(sorted({str(d) for d in _listed(device)}))}"


def add_trainer_gauges(metrics: Metrics, servicer: TrainerServicer) -> None:
    metrics.gauge(
        "nasrl_trainer_slots",
        "children this trainer trains at once (--slots)",
        lambda: servicer.config.slots,
    )
    metrics.gauge("nasrl_trainer_slots_busy", "slots training a child now", servicer.busy_slots)
    metrics.gauge(
        "nasrl_trainer_ready",
        "1 once the trainer has its device(s); 0 while waiting for a free GPU (--device cuda:any)",
        lambda: float(servicer.ready),
    )


def _listed(device: torch.device | Sequence[torch.device]) -> list[torch.device]:
    return [device] if isinstance(device, torch.device) else list(device)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    rpc.setup_logging(config.log_level)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
