"""The states a candidate and a search can be in: one definition for the domain, the store's
SQL checks and the codec (StrEnums, so they equal the strings stored in the database)."""

from __future__ import annotations

from enum import Enum, StrEnum

__all__ = ["Status", "SearchState", "TRAINING", "sql_in"]


class Status(StrEnum):
    """A candidate's status."""

    LEASED = "leased"  # handed out for training, not reported yet
    DONE = "done"  # trained, result recorded
    FAILED = "failed"  # training failed
    CACHED = "cached"  # answered from an earlier result (or reused from an earlier search)
    WAITING = "waiting"  # equal to a network in flight: answered by its twin's report
    INVALID = "invalid"  # never trained: does not fit the input, over the limits, screened out


class SearchState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"


#: statuses that spend budget
TRAINING = (Status.LEASED, Status.DONE, Status.FAILED)


def sql_in(column: str, values: type[Enum]) -> str:
    """A SQL CHECK clause allowing exactly the enum's (string) values."""
    return f"CHECK ({column} IN ({', '.join(repr(v.value) for v in values)}))"
