"""Serving the dashboard with uvicorn on a socket bound first, so that port 0 works and the
address is known before the first request: ``serve`` (the command, until SIGINT/SIGTERM)
and ``Running`` (in a thread, for tests, benchmarks and screenshots)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import uvicorn

from nasrl.dashboard.app import DashboardConfig, create_app

__all__ = ["bind", "serve", "Running"]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _server(config: DashboardConfig, log_level: str) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(create_app(config), log_level=log_level, access_log=False, lifespan="on")
    )


def serve(config: DashboardConfig, sock: socket.socket, log_level: str = "info") -> None:
    """Serve until interrupted (uvicorn handles SIGINT and SIGTERM: running requests end)."""
    _server(config, log_level).run(sockets=[sock])


class Running:
    """The dashboard served from a thread on ``host``:``port`` (0: a free port); ``url`` is
    where it answers. ``stop()`` (or leaving the ``with``) shuts it down."""

    def __init__(self, config: DashboardConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = _server(config, "warning")
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
