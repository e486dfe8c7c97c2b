"""python -m katib_adapter [--port 6789] [--host 127.0.0.1] [--controller HOST:PORT]

Serves Katib's api.v1.beta1.Suggestion (and grpc.health.v1, with the service name Katib's
probe asks for, manager.v1beta1.Suggestion) with a nasrl controller behind it. The adapter
keeps no state: run it as Katib's suggestion Deployment for algorithmName "nasrl"."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from katib_adapter.servicer import SuggestionServicer
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient
from nasrl.rpc.security import SecurityError, add_server_flags, server_security
from protos import katib_api_pb2, katib_api_pb2_grpc

log = logging.getLogger("katib_adapter")

SERVICE_NAME = katib_api_pb2.DESCRIPTOR.services_by_name["Suggestion"].full_name
KATIB_PROBE_NAME = "manager.v1beta1.Suggestion"  # the name Katib's gRPC health probe asks for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m katib_adapter", description=__doc__)
    p.add_argument(
        "--host",
        default=env("NASRL_KATIB_HOST", "127.0.0.1"),
        help="address to bind (0.0.0.0 in a pod) [NASRL_KATIB_HOST]",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(env("NASRL_KATIB_PORT", "6789") or 0),
        help="port (Katib's suggestion port is 6789; 0 picks a free one) [NASRL_KATIB_PORT]",
    )
    p.add_argument(
        "--controller",
        default=env("NASRL_CONTROLLER", "127.0.0.1:50051"),
        help="the nasrl controller HOST:PORT (TLS and token from NASRL_TLS_CA, "
        "NASRL_TOKEN, ...) [NASRL_CONTROLLER]",
    )
    p.add_argument(
        "--timeout", type=float, default=20.0, help="deadline of each controller call, seconds"
    )
    p.add_argument(
        "--grace", type=float, default=10.0, help="seconds running calls may finish after SIGTERM"
    )
    add_server_flags(p)
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {args.port}")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NASRL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    controller = ControllerClient(args.controller, timeout=args.timeout)
    servicer = SuggestionServicer(controller)
    try:
        handle = rpc.start_server(
            args.host,
            args.port,
            lambda s: katib_api_pb2_grpc.add_SuggestionServicer_to_server(servicer, s),
            [SERVICE_NAME],
            max_workers=16,
            security=server_security(args),
        )
    except (OSError, SecurityError) as exc:
        log.error("%s", exc)
        return 2
    handle.services = (*handle.services, KATIB_PROBE_NAME)  # health only, not reflection
    handle.set_serving(True)
    # Always printed: nasrl.cli.local and scripts read the port from it.
    print(
        f"katib adapter listening on {args.host}:{handle.port} (controller {args.controller})",
        file=sys.stderr,
        flush=True,
    )
    rpc.wait_for_termination(handle, args.grace, on_stop=servicer.close)
    controller.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
