"""python -m katib_adapter [--port 6789] [--host 127.0.0.1] [--controller HOST:PORT]

Serves Katib's api.v1.beta1.Suggestion (and grpc.health.v1, with the service name Katib's
probe asks for, manager.v1beta1.Suggestion) with a nasrl controller behind it. The adapter
keeps no state: run it as Katib's suggestion Deployment for algorithmName "nasrl"."""

from __future__ import annotations

import sys

from katib_adapter.config import KatibConfig, parse_args
from katib_adapter.servicer import SuggestionServicer
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient
from protos import katib_api_pb2, katib_api_pb2_grpc

SERVICE_NAME = katib_api_pb2.DESCRIPTOR.services_by_name["Suggestion"].full_name
KATIB_PROBE_NAME = "manager.v1beta1.Suggestion"  # the name Katib's gRPC health probe asks for


def run(config: KatibConfig) -> int:
    """Serve until SIGTERM; the exit status."""
    controller = ControllerClient(config.controller, timeout=config.timeout)
    servicer = SuggestionServicer(controller)
    try:
        return rpc.serve(
            config,
            lambda s: katib_api_pb2_grpc.add_SuggestionServicer_to_server(servicer, s),
            [SERVICE_NAME],
            banner=lambda port: f"katib adapter listening on {config.host}:{port} "
            f"(controller {config.controller})",
            health_only=[KATIB_PROBE_NAME],
            on_stop=servicer.close,
        )
    finally:
        controller.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv, description=__doc__)
    rpc.setup_logging(config.log_level)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
