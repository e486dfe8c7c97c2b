"""Server and channel helpers shared by every nasrl service and client: message-size limits,
connection ageing (so clients re-resolve and find new replicas), the standard health service,
server reflection, and ``serve``: every service's life from start-up to a graceful SIGTERM
shutdown (health answers NOT_SERVING on new connections until the running calls finished)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from nasrl.rpc.grpc_logs import quiet_undecodable_requests
from nasrl.rpc.interceptors import LIVENESS, MAX_DETAILS, Drain, RequestLimits, abort
from nasrl.rpc.security import ClientSecurity, SecurityError, ServerSecurity
from nasrl.rpc.service_flags import (
    add_listen_flags,
    add_metrics_flag,
    check_listen,
    check_metrics_port,
    log_level_from_env,
    setup_logging,
)

if TYPE_CHECKING:
    from nasrl.rpc.metrics import Metrics

__all__ = [
    "MAX_MESSAGE_BYTES",
    "RequestLimits",
    "Drain",
    "LIVENESS",
    "abort",
    "ServerHandle",
    "ServerConfig",
    "start_server",
    "serve",
    "setup_logging",
    "channel",
    "MAX_DETAILS",
    "add_listen_flags",
    "add_metrics_flag",
    "check_listen",
    "check_metrics_port",
    "log_level_from_env",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Close connections after a while so clients behind a DNS name re-resolve and spread over
    # new replicas; the grace lets a running Train stream finish on the old connection.
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 24 * 60 * 60 * 1000),
    ("grpc.so_reuseport", 0),
]
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.enable_retries", 1),
]


class ServerHandle:
    """A started server with its health servicer and bound port."""

    def __init__(
        self,
        server: grpc.Server,
        health_servicer: health.HealthServicer,
        port: int,
        services: tuple[str, ...],
        metrics: Metrics | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.server = server
        self.health = health_servicer
        self.port = port
        self.services = services
        self.metrics = metrics  # with a metrics port: its registry and HTTP endpoint
        self.drain = drain or Drain()

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.services):
            self.health.set(name, status)

    def stop(self, grace: float | None) -> None:
        """Health to NOT_SERVING, refuse new calls (see ``Drain``), give running calls
        ``grace`` seconds to finish, then close the server (``grace`` None or 0: now),
        cancelling what still runs. Until then the server goes on listening: health answers
        NOT_SERVING on new connections too, as readiness probes expect."""
        self.set_serving(False)
        if grace:
            self.drain.begin()
            left = self.drain.wait_idle(grace)
            if left:
                log.warning("grace of %gs over: cancelling %d running call(s)", grace, left)
            grace = 0
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.close()


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def start_server(
    host: str,
    port: int,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    max_workers: int = 16,
    security: ServerSecurity | None = None,
    metrics_port: int | None = None,
    request_limits: dict[str, int] | None = None,
    drain: Drain | None = None,
) -> ServerHandle:
    """Create, register, add health + reflection, bind and start a server. ``port`` 0 picks a
    free port; the handle says which. Health starts NOT_SERVING: call ``set_serving(True)``
    once the service is ready. ``security``: TLS / mutual TLS / bearer tokens.
    ``metrics_port``: serve Prometheus metrics there (0: a free port; ``handle.metrics.port``).
    ``request_limits``: per-method request sizes (see ``RequestLimits``). ``drain``: what
    ``handle.stop`` still serves while running calls finish (default: health only)."""
    security = security or ServerSecurity()
    credentials = security.credentials()
    quiet_undecodable_requests()
    if credentials is None and host not in LOOPBACK:
        log.warning(
            "serving on %s without TLS: anyone who can reach this port can use it "
            "and read the traffic; give --tls-cert/--tls-key (and --auth-token-file)",
            host,
        )
    names = tuple(service_names)
    served = (
        *names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    metrics = None
    if metrics_port is not None:
        from nasrl.rpc.metrics import Metrics  # only servers that want metrics load prometheus

        metrics = Metrics(served)
    drain = drain or Drain()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=SERVER_OPTIONS,
        # metrics first: it also counts the calls the token check refuses
        interceptors=[
            *([metrics] if metrics else []),
            *security.interceptors(),
            drain,
            *([RequestLimits(request_limits)] if request_limits else []),
        ],
    )
    register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # the process answers: what a liveness probe asks, while readiness ("") may be
    # NOT_SERVING for a long time (draining after SIGTERM, waiting for a free GPU)
    health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(served, server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    if bound == 0:
        raise OSError(f"could not bind {address}: the port is in use or the host is not local")
    if metrics is not None and metrics_port is not None:
        try:
            metrics.serve(host, metrics_port, security.cert, security.key)
        except OSError as exc:
            raise OSError(f"could not serve metrics on {host}:{metrics_port}: {exc}") from exc
        log.info(
            "metrics on http%s://%s:%d/metrics", "s" if security.tls else "", host, metrics.port
        )
    server.start()
    handle = ServerHandle(server, health_servicer, bound, names, metrics, drain)
    handle.set_serving(False)
    return handle


class ServerConfig(Protocol):
    """What ``serve`` reads from a service's configuration (its frozen dataclass)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...  # 0: a free port, which the banner then names
    @property
    def grace(self) -> float: ...  # seconds running calls may finish after SIGTERM
    @property
    def metrics_port(self) -> int | None: ...  # None: no metrics
    @property
    def security(self) -> ServerSecurity: ...


def serve(
    config: ServerConfig,
    register: Callable[[grpc.Server], None],
    service_names: Iterable[str],
    *,
    banner: Callable[[int], str],
    max_workers: int = 16,
    request_limits: dict[str, int] | None = None,
    health_only: Iterable[str] = (),
    on_started: Callable[[ServerHandle], bool] | None = None,
    on_stop: Callable[[], None] | None = None,
    drain: Drain | None = None,
) -> int:
    """Run one service until SIGTERM or SIGINT; returns the exit status (2: it could not
    start, the log says why; 0: stopped gracefully).

    Starts the server (see ``start_server``; ``health_only``: further names the health
    service answers for, not listed by reflection), calls ``on_started`` (metrics gauges,
    background work; it returns False when the service turns SERVING later by itself), turns
    health SERVING, prints ``banner(port)`` on stderr whatever the log level (nasrl.cli.local
    and scripts read the port from it), then waits for a signal. On SIGTERM or SIGINT:
    ``on_stop``, health NOT_SERVING, new calls refused with UNAVAILABLE (but health, and
    what ``drain`` still serves), running calls given ``config.grace`` seconds; the server
    closes once they finished or the grace is over."""
    try:
        handle = start_server(
            config.host,
            config.port,
            register,
            service_names,
            max_workers=max_workers,
            security=config.security,
            metrics_port=config.metrics_port,
            request_limits=request_limits,
            drain=drain,
        )
    except (OSError, SecurityError) as exc:
        log.error("%s", exc)
        return 2
    handle.services = (*handle.services, *health_only)
    if on_started is None or on_started(handle):
        handle.set_serving(True)
    print(banner(handle.port), file=sys.stderr, flush=True)
    _wait_for_termination(handle, config.grace, on_stop)
    return 0


def _wait_for_termination(
    handle: ServerHandle, grace: float, on_stop: Callable[[], None] | None = None
) -> None:
    """Block until SIGTERM or SIGINT, then stop gracefully (see ``ServerHandle.stop``)."""
    stop = threading.Event()

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down (grace %.0fs)", signal.Signals(signum).name, grace)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    stop.wait()
    if on_stop:
        on_stop()
    handle.stop(grace)
    log.info("stopped")


class _Metadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds fixed metadata (the bearer token) to every call, of every kind (server reflection
    is a bidirectional stream)."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), *self.metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def _channel_options(server_name: str | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = list(CHANNEL_OPTIONS)
    if server_name:
        host = server_name.rpartition(":")[0] or server_name
        options += [
            ("grpc.ssl_target_name_override", host.strip("[]")),
            ("grpc.default_authority", server_name),
        ]
    return options


def aio_channel(
    target: str, security: ClientSecurity | None = None, server_name: str | None = None
) -> tuple[grpc.aio.Channel, list[tuple[str, str]]]:
    """``channel`` for asyncio (grpc.aio), and the metadata (token) to send with each call;
    create it inside the event loop that uses it."""
    security = security if security is not None else ClientSecurity.from_env()
    credentials = security.credentials()
    if credentials is None:
        ch = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    else:
        ch = grpc.aio.secure_channel(target, credentials, options=_channel_options(server_name))
    return ch, security.metadata()


def channel(
    target: str, security: ClientSecurity | None = None, server_name: str | None = None
) -> grpc.Channel:
    """A client channel with nasrl's message limits, round-robin over every address a name
    resolves to (``dns:///trainer:50052`` reaches every replica), and TLS / token from
    ``security`` (default: the NASRL_* environment).

    ``server_name`` (``NAME:PORT``): the name ``target`` (an IP address) was resolved from.
    With TLS the server's certificate is checked against that name instead of the IP, and it
    is sent as the ``:authority``, so certificates need name the service only."""
    security = security if security is not None else ClientSecurity.from_env()
    credentials = security.credentials()
    if credentials is None:
        ch = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    else:
        ch = grpc.secure_channel(target, credentials, options=_channel_options(server_name))
    metadata = security.metadata()
    return grpc.intercept_channel(ch, _Metadata(metadata)) if metadata else ch
