"""python -m trainer_service --port P [--host H] [--data-dir D] [--device auto|cpu|cuda] [--slots N]"""

from __future__ import annotations

import logging
import os
import sys

import torch
from protos import trainer_pb2, trainer_pb2_grpc

from nasrl import rpc
from nasrl.security import SecurityError
from trainer_service.config import TrainerConfig, parse_args
from trainer_service.servicer import TrainerServicer
from trainer_service.train import resolve_device

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
    servicer = TrainerServicer(config, device)
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
    mode = f"SIMULATION, {config.simulate:g}s per child" if config.simulate is not None \
        else f"device {device}"
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
