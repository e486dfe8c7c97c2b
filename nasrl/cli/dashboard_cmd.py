"""``nasrl dashboard --controller HOST:PORT [--port 8080] [--trainers ...]``: the read-only
web dashboard (``nasrl.dashboard``), a client of the controller's RPCs like the CLI."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from nasrl.rpc.security import add_client_flags, client_security

__all__ = ["add_dashboard_command"]


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.refresh <= 0:
        raise ValueError(f"--refresh must be a positive number of seconds, got {args.refresh:g}")
    if args.trainers:  # a malformed list fails now, not on the trainers page
        from nasrl.runner.targets import dns_name, parse_trainers

        if args.trainers.strip().startswith("dns:"):
            dns_name(args.trainers.strip())  # resolved on each look: replicas may start later
        else:
            parse_trainers(args.trainers)
    from nasrl.dashboard.app import DashboardConfig
    from nasrl.dashboard.server import bind, serve

    config = DashboardConfig(
        controller=args.controller,
        trainers=args.trainers or "",
        refresh=args.refresh,
        timeout=args.timeout,
        security=client_security(args),
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise ValueError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    port = sock.getsockname()[1]
    print(
        f"nasrl dashboard on http://{args.host}:{port}/ (controller {args.controller}"
        f"{', trainers ' + args.trainers if args.trainers else ''}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    serve(config, sock, log_level=args.log_level)
    return 0


def add_dashboard_command(sub: Any, controller_default: str) -> None:
    env = os.environ.get
    d = sub.add_parser(
        "dashboard",
        help="a read-only web dashboard of every search (a client of the controller's RPCs)",
    )
    d.add_argument("--controller", default=controller_default, help="HOST:PORT [NASRL_CONTROLLER]")
    d.add_argument(
        "--port",
        type=int,
        default=int(env("NASRL_DASHBOARD_PORT", "8080")),
        help="HTTP port (0: a free one; default 8080) [NASRL_DASHBOARD_PORT]",
    )
    d.add_argument(
        "--host",
        default=env("NASRL_DASHBOARD_HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container) "
        "[NASRL_DASHBOARD_HOST]",
    )
    d.add_argument(
        "--trainers",
        default=env("NASRL_TRAINERS", ""),
        help="HOST:PORT[,...] or dns:///NAME:PORT: adds the trainers page and downloads of "
        "trained models from them [NASRL_TRAINERS]",
    )
    d.add_argument(
        "--refresh", type=float, default=2.0, help="seconds between a page's updates (default 2)"
    )
    d.add_argument("--timeout", type=float, default=10.0, help="deadline of controller calls")
    d.add_argument(
        "--log-level",
        default=env("NASRL_LOG_LEVEL", "info").lower(),
        choices=("critical", "error", "warning", "info", "debug"),
    )
    add_client_flags(d)
    d.set_defaults(func=cmd_dashboard)
