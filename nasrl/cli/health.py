"""``nasrl health HOST:PORT``: the probe that containers and orchestrators run every few
seconds. It imports grpc, the health stubs and nasrl's channel/TLS helpers only, never the rest
of the CLI (torch, matplotlib, rich): ``tests/integration/test_health_probe.py`` guards that."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from nasrl.rpc.errors import NasrlError
from nasrl.rpc.health import wait_until_serving
from nasrl.rpc.security import add_client_flags, client_security

__all__ = ["add_health_command", "main"]


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the service at TARGET reports SERVING (for container health checks)."""
    security = client_security(args)
    wait_until_serving(args.target, timeout=args.timeout, security=security, service=args.service)
    print(f"{args.target}{f' ({args.service})' if args.service else ''}: SERVING")
    return 0


def add_health_command(sub: Any) -> None:
    h = sub.add_parser("health", help="check a service's gRPC health (exit 0 if SERVING)")
    h.add_argument("target", help="HOST:PORT")
    h.add_argument("--timeout", type=float, default=5.0)
    h.add_argument(
        "--service",
        default="",
        help="the health name to check: '' (default) is readiness, NOT_SERVING while the "
        "service drains after SIGTERM or waits for a GPU; 'liveness' is SERVING as long as "
        "the process answers",
    )
    add_client_flags(h)
    h.set_defaults(func=cmd_health)


def main(argv: Sequence[str]) -> int:
    """``nasrl health …`` (``argv`` starts with ``health``), with the CLI's exit codes."""
    parser = argparse.ArgumentParser(prog="nasrl")
    add_health_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return cmd_health(args)
    except ValueError as exc:  # an unreadable certificate or token file
        print(f"nasrl: error: {exc}", file=sys.stderr)
        return 2
    except NasrlError as exc:
        print(f"nasrl: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nasrl: interrupted", file=sys.stderr)
        return 130
