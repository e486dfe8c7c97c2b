"""Quieter grpcio logs for hostile traffic. grpcio logs an ERROR with a traceback
(``Exception deserializing message!``, logger ``grpc._common``) for every request whose bytes
are not the method's message, and answers it ``INTERNAL: Exception deserializing request!``;
under fuzzing that floods the logs. ``quiet_undecodable_requests`` turns those records into
one WARNING line without traceback, at most one per ``interval`` seconds, saying how many
were left out since the last one."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["UndecodableRequests", "quiet_undecodable_requests"]

GRPC_LOGGER = "grpc._common"
DESERIALIZING = "Exception deserializing message!"


class UndecodableRequests(logging.Filter):
    """Logger filter on ``grpc._common``: rewrites grpcio's deserialization ERROR into a
    rate-limited WARNING; every other record passes untouched."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != DESERIALIZING:
            return True
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval:
                self._suppressed += 1
                return False
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        error = record.exc_info[1] if record.exc_info else None
        why = f" ({type(error).__name__}: {str(error)[:200]})" if error is not None else ""
        more = (
            f"; {suppressed} more since the last such line (at most one per {self.interval:g} s)"
            if suppressed
            else ""
        )
        record.msg = (
            f"undecodable request bytes answered INTERNAL 'Exception deserializing "
            f"request!'{why}{more}"
        )
        record.args = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def quiet_undecodable_requests() -> UndecodableRequests:
    """Install the filter on grpcio's logger once per process; returns the one installed."""
    logger = logging.getLogger(GRPC_LOGGER)
    for installed in logger.filters:
        if isinstance(installed, UndecodableRequests):
            return installed
    quiet = UndecodableRequests()
    logger.addFilter(quiet)
    return quiet
