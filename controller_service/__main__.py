"""python -m controller_service --port P --db PATH [--host H]"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import torch

from controller_service.searches import Searches
from controller_service.servicer import REQUEST_LIMITS, ControllerServicer
from controller_service.store import Store, StoreError
from nasrl.rpc import rpc
from nasrl.rpc.security import SecurityError, add_server_flags, server_security
from protos import controller_pb2, controller_pb2_grpc

log = logging.getLogger("controller_service")

RESERVED = 4  # threads never taken by Controller calls (health, reflection)
SERVICE_NAME = controller_pb2.DESCRIPTOR.services_by_name["Controller"].full_name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m controller_service",
        description="nasrl controller: searches and their agents over gRPC (nasrl.v1.Controller).",
    )
    p.add_argument(
        "--host",
        default=env("NASRL_CONTROLLER_HOST", "127.0.0.1"),
        help="address to bind [NASRL_CONTROLLER_HOST]",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env("NASRL_CONTROLLER_PORT", "50051")),
        help="port to bind; 0 picks a free one and logs it [NASRL_CONTROLLER_PORT]",
    )
    p.add_argument(
        "--db",
        default=env("NASRL_DB", "nasrl.db"),
        help="SQLite database file; created if missing [NASRL_DB]",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(env("NASRL_GRACE", "10")),
        help="seconds running calls may finish after SIGTERM [NASRL_GRACE]",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("NASRL_CONTROLLER_WORKERS", "32")),
        help="threads serving calls; all but 4 may serve Controller calls at once, "
        "more are refused with RESOURCE_EXHAUSTED [NASRL_CONTROLLER_WORKERS]",
    )
    add_server_flags(p)
    rpc.add_metrics_flag(p)
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {args.port}")
    rpc.check_metrics_port(p, args.metrics_port)
    if not RESERVED + 1 <= args.workers <= 1024:
        p.error(f"--workers must be between {RESERVED + 1} and 1024, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NASRL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    # The agents' networks are tiny: one thread is several times faster than many threads
    # fighting over them, and leaves the cores to the gRPC workers.
    torch.set_num_threads(1)
    try:
        store = Store(args.db)
    except StoreError as exc:
        log.error("%s", exc)
        return 2
    # Keep threads free for health checks and reflection: a burst beyond this is refused
    # with RESOURCE_EXHAUSTED at once instead of queueing ahead of the probes.
    servicer = ControllerServicer(Searches(store), max_active=max(1, args.workers - RESERVED))
    try:
        handle = rpc.start_server(
            args.host,
            args.port,
            lambda s: controller_pb2_grpc.add_ControllerServicer_to_server(servicer, s),
            [SERVICE_NAME],
            max_workers=args.workers,
            security=server_security(args),
            metrics_port=args.metrics_port,
            request_limits=REQUEST_LIMITS,
        )
    except (OSError, SecurityError) as exc:
        log.error("%s", exc)
        return 2
    handle.set_serving(True)
    # Always printed, whatever the log level: nasrl.cli.local and scripts read the port from it.
    print(
        f"controller listening on {args.host}:{handle.port} (database {args.db})",
        file=sys.stderr,
        flush=True,
    )
    rpc.wait_for_termination(handle, args.grace)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
