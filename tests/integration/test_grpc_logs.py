"""Undecodable request bytes: grpcio answers INTERNAL and logs an ERROR traceback for each;
nasrl servers log one WARNING line instead, at most one per second with a count of the rest."""

from __future__ import annotations

import logging

import grpc
import pytest

from nasrl.rpc.grpc_logs import GRPC_LOGGER, UndecodableRequests
from tests.helpers import FakeClock

GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"  # field 1, length-delimited, with an impossible length


def send_garbage(target: str, method: str = "/nasrl.v1.Controller/GetSearch") -> grpc.RpcError:
    with grpc.insecure_channel(target) as ch:
        raw: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            method, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as info:
            raw(GARBAGE, timeout=10)
    return info.value


def grpc_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("grpc")]


@pytest.fixture()
def clock(controller: str, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fresh filter on a fake clock in place of the one the server installed (whose state
    depends on what earlier tests sent)."""
    logger = logging.getLogger(GRPC_LOGGER)
    assert any(isinstance(f, UndecodableRequests) for f in logger.filters)
    fake = FakeClock(start=100.0)
    monkeypatch.setattr(logger, "filters", [UndecodableRequests(interval=1.0, clock=fake)])
    return fake


def test_garbage_bytes_give_one_warning_line(
    controller: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="grpc"):
        error = send_garbage(controller)
    assert error.code() == grpc.StatusCode.INTERNAL
    (record,) = grpc_records(caplog)
    assert record.levelno == logging.WARNING and record.exc_info is None
    text = record.getMessage()
    assert text.startswith("undecodable request bytes answered INTERNAL")
    assert "DecodeError" in text and "\n" not in text


def test_a_flood_is_rate_limited_with_a_count(
    controller: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="grpc"):
        for _ in range(5):
            send_garbage(controller)
        assert len(grpc_records(caplog)) == 1  # the first; four suppressed
        clock.advance(1.0)
        send_garbage(controller, "/nasrl.v1.Controller/Sample")
        send_garbage(controller)  # within the new second: suppressed
    first, second = grpc_records(caplog)
    assert "more since" not in first.getMessage()
    assert "; 4 more since the last such line (at most one per 1 s)" in second.getMessage()
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in (first, second))


def test_other_grpc_records_pass_untouched() -> None:
    quiet = UndecodableRequests(clock=FakeClock())
    other = logging.LogRecord(
        GRPC_LOGGER, logging.ERROR, __file__, 1, "Exception serializing message!", None, None
    )
    assert quiet.filter(other) and other.levelno == logging.ERROR
    assert other.getMessage() == "Exception serializing message!"
