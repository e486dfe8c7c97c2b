"""Katib adapter configuration: one frozen dataclass, from flags and NASRL_* environment
variables (flags win), validated once."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from nasrl.rpc import rpc
from nasrl.rpc.security import ServerSecurity, add_server_flags, server_security

__all__ = ["KatibConfig", "parse_args"]


@dataclass(frozen=True)
class KatibConfig:
    host: str = "127.0.0.1"
    port: int = 6789  # Katib's suggestion port
    controller: str = "127.0.0.1:50051"  # the nasrl controller HOST:PORT
    timeout: float = 20.0  # deadline of each controller call, seconds
    grace: float = 10.0  # seconds running calls may finish after SIGTERM
    security: ServerSecurity = field(default_factory=ServerSecurity)
    log_level: str = "INFO"
    metrics_port: int | None = None  # no flag: the adapter serves no metrics


def parse_args(argv: list[str] | None = None, description: str | None = None) -> KatibConfig:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m katib_adapter", description=description)
    rpc.add_listen_flags(p, "katib", 6789, " (Katib's suggestion port is 6789)")
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
    rpc.check_listen(p, args.port)
    return KatibConfig(
        host=args.host,
        port=args.port,
        controller=args.controller,
        timeout=args.timeout,
        grace=args.grace,
        security=server_security(args),
        log_level=rpc.log_level_from_env(p),
    )
