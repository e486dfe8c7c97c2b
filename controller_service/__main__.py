"""python -m controller_service --port P --db PATH [--host H]"""

from __future__ import annotations

import logging
import sys

import torch

from controller_service.config import RESERVED, ControllerConfig, parse_args
from controller_service.searches import Searches
from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
from controller_service.store import Store, StoreError
from nasrl.rpc import rpc
from protos import controller_pb2, controller_pb2_grpc

log = logging.getLogger("controller_service")

SWITCH_INTERVAL = 0.0005
SERVICE_NAME = controller_pb2.DESCRIPTOR.services_by_name["Controller"].full_name


def run(config: ControllerConfig) -> int:
    """Open the database and serve until SIGTERM; the exit status."""
    # The agents' networks are tiny: one thread is several times faster than many threads
    # fighting over them, and leaves the cores to the gRPC workers.
    torch.set_num_threads(1)
    # Hand the GIL over every 0.5 ms instead of every 5 ms: a cheap call on a quiet search
    # then waits far less behind a busy search's agent (bench/controller_load.py measures it).
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        store = Store(config.db)
    except StoreError as exc:
        log.error("%s", exc)
        return 2
    # Keep threads free for health checks and reflection: a burst beyond this is refused
    # with RESOURCE_EXHAUSTED at once instead of queueing ahead of the probes.
    servicer = ControllerServicer(Searches(store), max_active=max(1, config.workers - RESERVED))
    try:
        return rpc.serve(
            config,
            lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
            [SERVICE_NAME],
            banner=lambda port: f"controller listening on {config.host}:{port} "
            f"(database {config.db})",
            max_workers=config.workers,
            request_limits=REQUEST_LIMITS,
        )
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    rpc.setup_logging(config.log_level)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
