"""The command-line flags every service shares (listen address, metrics port, log level) and
their checks, and the logging set-up done once at start-up."""

from __future__ import annotations

import logging
import os
from typing import Any


def add_listen_flags(p: Any, service: str, port: int, port_help: str = "") -> None:
    """``--host`` and ``--port`` (argparse) of a service, defaulting to NASRL_{SERVICE}_HOST
    and NASRL_{SERVICE}_PORT; ``check_listen`` validates them after parsing."""
    env = f"NASRL_{service.upper()}"
    p.add_argument(
        "--host",
        default=os.environ.get(f"{env}_HOST", "127.0.0.1"),
        help=f"address to bind (0.0.0.0 in a container) [{env}_HOST]",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(f"{env}_PORT") or port),
        help=f"port to bind{port_help}; 0 picks a free one and logs it [{env}_PORT]",
    )


def check_listen(p: Any, port: int) -> None:
    if not 0 <= port <= 65535:
        p.error(f"--port must be between 0 and 65535, got {port}")


def add_metrics_flag(p: Any) -> None:
    """``--metrics-port`` (argparse), defaulting to NASRL_METRICS_PORT; unset means off."""
    default = os.environ.get("NASRL_METRICS_PORT") or None
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None if default is None else int(default),
        help="serve Prometheus metrics at http://HOST:PORT/metrics (https with "
        "--tls-cert); 0 picks a free port and logs it; default off "
        "[NASRL_METRICS_PORT]",
    )


def check_metrics_port(p: Any, port: int | None) -> None:
    if port is not None and not 0 <= port <= 65535:
        p.error(f"--metrics-port must be between 0 and 65535, got {port}")


def log_level_from_env(p: Any) -> str:
    """NASRL_LOG_LEVEL (default INFO), checked once: an unknown level is a usage error
    (argparse ``p.error``) instead of a traceback at start-up."""
    level = os.environ.get("NASRL_LOG_LEVEL", "INFO")
    if level not in logging.getLevelNamesMapping():
        p.error(f"NASRL_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
    return level


def setup_logging(level: str) -> None:
    """The one log format of every service, on stderr."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
