"""Server interceptors and the abort helper every servicer uses: per-RPC request limits
(oversized messages refused before they are parsed) and draining (after SIGTERM, new work is
UNAVAILABLE while health says NOT_SERVING and running calls finish)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import grpc

log = logging.getLogger(__name__)

MAX_DETAILS = 1000  # status details travel in a header; grpc refuses headers over 16 KiB


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """``context.abort`` with the sentence cut to a size every client can receive. Non-ASCII
    is escaped first (grpc percent-encodes it, up to nine bytes a character)."""
    message = message.encode("ascii", "backslashreplace").decode("ascii")
    if len(message) > MAX_DETAILS:
        message = message[: MAX_DETAILS - 3] + "..."
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


class _Oversized:
    """Stands for a request whose bytes were over its method's limit (never parsed)."""

    def __init__(self, size: int) -> None:
        self.size = size


class RequestLimits(grpc.ServerInterceptor):
    """Per-method request size limits (full method name → bytes), checked on the raw bytes
    before they are parsed, so an oversized request costs no parsing and gets
    INVALID_ARGUMENT with a sentence instead of the server-wide 16 MiB limit's
    RESOURCE_EXHAUSTED (which means "retry later")."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = dict(limits)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        limit = self.limits.get(details.method)
        if handler is None or limit is None or handler.request_streaming:
            return handler
        parse = handler.request_deserializer
        name = details.method.rsplit("/", 1)[-1]

        def deserialize(data: bytes) -> Any:
            if len(data) > limit:
                return _Oversized(len(data))
            return parse(data) if parse is not None else data

        def guard(inner: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
            def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, _Oversized):
                    abort(
                        context,
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"{name} request of {request.size:,} bytes is over this method's "
                        f"limit of {limit:,} bytes",
                    )
                return inner(request, context)

            return behaviour

        if handler.unary_unary is not None:
            return handler._replace(
                request_deserializer=deserialize, unary_unary=guard(handler.unary_unary)
            )
        return handler._replace(
            request_deserializer=deserialize, unary_stream=guard(handler.unary_stream)
        )


#: the health service name that is SERVING as long as the process answers (liveness probes)
LIVENESS = "liveness"
#: always answered, also while draining, and never waited for (a Watch stream lasts for ever)
ALWAYS_SERVED = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SHUTTING_DOWN = "this server is shutting down; retry on another replica, or here once it is back"


class Drain(grpc.ServerInterceptor):
    """Counts the calls in progress; once ``begin`` is called (SIGTERM) it refuses new ones
    with UNAVAILABLE and ``message``, except health, reflection and the full method names in
    ``still_served``. The server itself keeps running, so that a probe on a new connection
    is answered NOT_SERVING (not refused) while the running calls finish."""

    def __init__(self, still_served: Iterable[str] = (), message: str = SHUTTING_DOWN) -> None:
        self.still_served = frozenset(still_served)
        self.message = message
        self._draining = False
        self._active = 0
        self._changed = threading.Condition()

    def begin(self) -> None:
        with self._changed:
            self._draining = True

    def wait_idle(self, timeout: float) -> int:
        """Wait until no counted call is in progress, at most ``timeout`` seconds; how many
        still are."""
        with self._changed:
            self._changed.wait_for(lambda: self._active == 0, timeout)
            return self._active

    def _enter(self, method: str) -> bool:
        with self._changed:
            if self._draining and method not in self.still_served:
                return False
            self._active += 1
            return True

    def _leave(self) -> None:
        with self._changed:
            self._active -= 1
            self._changed.notify_all()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or method.startswith(ALWAYS_SERVED):
            return handler

        def counted(inner: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
            def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
                if not self._enter(method):
                    abort(context, grpc.StatusCode.UNAVAILABLE, self.message)
                if not context.add_callback(self._leave):  # run once the call has ended
                    self._leave()  # it already has
                return inner(request, context)

            return behaviour

        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(
            **{k: counted(getattr(handler, k)) for k in kinds if getattr(handler, k) is not None}
        )
