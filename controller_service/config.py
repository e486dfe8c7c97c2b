"""Controller configuration: one frozen dataclass, from flags and NASRL_* environment
variables (flags win), validated once."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from nasrl.rpc import rpc
from nasrl.rpc.security import ServerSecurity, add_server_flags, server_security

__all__ = ["ControllerConfig", "parse_args", "RESERVED"]

RESERVED = 4  # threads never taken by Controller calls (health, reflection)


@dataclass(frozen=True)
class ControllerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    db: str = "nasrl.db"  # SQLite database file; created if missing
    grace: float = 10.0  # seconds running calls may finish after SIGTERM
    workers: int = 32  # threads serving calls; all but RESERVED may serve Controller calls
    metrics_port: int | None = None  # Prometheus /metrics; None = off, 0 = a free port
    security: ServerSecurity = field(default_factory=ServerSecurity)
    log_level: str = "INFO"


def parse_args(argv: list[str] | None = None) -> ControllerConfig:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m controller_service",
        description="nasrl controller: searches and their agents over gRPC (nasrl.v1.Controller).",
    )
    rpc.add_listen_flags(p, "controller", 50051)
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
        help="threads serving calls; all but 4 may serve Controller calls at once, half "
        "of those on one search; more are refused with RESOURCE_EXHAUSTED "
        "[NASRL_CONTROLLER_WORKERS]",
    )
    add_server_flags(p)
    rpc.add_metrics_flag(p)
    args = p.parse_args(argv)
    rpc.check_listen(p, args.port)
    rpc.check_metrics_port(p, args.metrics_port)
    if not RESERVED + 1 <= args.workers <= 1024:
        p.error(f"--workers must be between {RESERVED + 1} and 1024, got {args.workers}")
    return ControllerConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        grace=args.grace,
        workers=args.workers,
        metrics_port=args.metrics_port,
        security=server_security(args),
        log_level=rpc.log_level_from_env(p),
    )
