"""python -m trainer_service --port P [--host H] [--data-dir D] [--device auto|cpu|cuda] [--slots N]"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import torch
from protos import trainer_pb2, trainer_pb2_grpc

from nasrl import rpc
from nasrl.security import SecurityError
from nasrl.table import TableError
from trainer_service.config import TrainerConfig, parse_args
from trainer_service.servicer import TrainerServicer
from trainer_service.train import resolve_device
from trainer_service.weights import WeightStore

log = logging.getLogger("trainer_service")

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["Trainer"].full_name


def serve(config: TrainerConfig) -> int:
    try:
        device = resolve_device(config.device)
    except (ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2
    if device.type == "cpu":
        # Several slots share the cores instead of oversubscribing them.
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // config.slots))
    with tempfile.TemporaryDirectory(prefix="nasrl-weights-") as tmp:
        try:
            weights = WeightStore(config.weights_dir or Path(tmp),
                                  int(config.weights_max_mb * 1024 * 1024))
        except OSError as exc:
            log.error("cannot use --weights-dir %s: %s", config.weights_dir, exc)
            return 2
        try:
            servicer = TrainerServicer(config, device, weights)
        except TableError as exc:
            log.error("%s", exc)
            return 2
        return _serve(config, device, servicer)


def _serve(config: TrainerConfig, device: torch.device, servicer: TrainerServicer) -> int:
    try:
        handle = rpc.start_server(
            config.host, config.port,
            lambda s: trainer_pb2_grpc.add_TrainerServicer_to_server(servicer, s),
            [SERVICE_NAME], max_workers=config.slots + 8, security=config.security,
        )
    except (OSError, SecurityError) as exc:
        log.error("%s", exc)
        return 2
    handle.set_serving(True)
    # Always printed, whatever the log level: nasrl.local and scripts read the port from it.
    if config.table is not None:
        mode = f"TABLE {config.table}, time scale {config.time_scale:g}"
    elif config.simulate is not None:
        mode = f"SIMULATION, {config.simulate:g}s per child"
    else:
        mode = f"device {device}"
    print(f"trainer listening on {config.host}:{handle.port} ({mode}, {config.slots} slot(s))",
          file=sys.stderr, flush=True)
    rpc.wait_for_termination(handle, config.grace, on_stop=servicer.close)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NASRL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return serve(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
