"""Prometheus metrics for a nasrl server (``--metrics-port``): every RPC counted by method and
status code with its latency, plus gauges a service adds (the trainer's busy slots). Served
over HTTP at ``/metrics`` (HTTPS with the service's own certificate when it has one).

Imported only by servers that turn metrics on, so ``nasrl health`` and the clients never load
prometheus_client. Each server has its own registry: several servers in one process (tests)
do not clash."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

__all__ = ["Metrics", "known_methods", "UNKNOWN_METHOD"]

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 7200)


UNKNOWN_METHOD = "other"  # the label of every method the server does not serve


def known_methods(services: Iterable[str]) -> frozenset[str]:
    """``/package.Service/Method`` of every method of these services (from the descriptors)."""
    pool = descriptor_pool.Default()
    known: set[str] = set()
    for name in services:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:
            continue
        known.update(f"/{name}/{m.name}" for m in service.methods)
    return frozenset(known)


class Metrics(grpc.ServerInterceptor):
    """The registry, the RPC metrics (as a server interceptor) and the HTTP endpoint.
    ``services``: what the server serves; calls to any other method are counted under the
    method label ``other`` (a fuzzer's method names would otherwise make endless series)."""

    def __init__(self, services: Iterable[str]) -> None:
        self.known = known_methods(services)
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, resident memory
        self.requests = Counter(
            "nasrl_grpc_requests",
            "RPCs handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "nasrl_grpc_request_seconds",
            "RPC duration (streams: until the last message)",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "nasrl_grpc_requests_in_flight",
            "RPCs being handled",
            ["method"],
            registry=self.registry,
        )
        self._http: Any = None
        self.port: int | None = None

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is ``read()`` at each scrape."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def serve(self, host: str, port: int, cert: str | None = None, key: str | None = None) -> int:
        """Serve ``/metrics`` on host:port (0: a free port); returns the port."""
        self._http, _thread = start_http_server(
            port, addr=host, registry=self.registry, certfile=cert, keyfile=key
        )
        self.port = int(self._http.server_port)
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    # ------------------------------------------------------------------ interceptor

    def _record(
        self, method: str, context: grpc.ServicerContext, began: float, failed: bool
    ) -> None:
        code = context.code() if hasattr(context, "code") else None
        if code is None:
            code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
        self.requests.labels(method, code.name).inc()
        self.seconds.labels(method).observe(time.perf_counter() - began)
        self.in_flight.labels(method).dec()

    def _unary(self, method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def measured(request: Any, context: grpc.ServicerContext) -> Any:
            began, failed = time.perf_counter(), True
            self.in_flight.labels(method).inc()
            try:
                reply = behaviour(request, context)
                failed = False
                return reply
            finally:
                self._record(method, context, began, failed)

        return measured

    def _stream(self, method: str, behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def measured(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            began, failed = time.perf_counter(), True
            self.in_flight.labels(method).inc()
            try:
                yield from behaviour(request, context)
                failed = False
            finally:
                self._record(method, context, began, failed)

        return measured

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method not in self.known:
            method = UNKNOWN_METHOD
        wrap = self._stream if handler.response_streaming else self._unary
        kinds = {
            (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
            (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
            (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
            (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
        }
        attribute, make = kinds[(handler.request_streaming, handler.response_streaming)]
        return make(
            wrap(method, getattr(handler, attribute)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
