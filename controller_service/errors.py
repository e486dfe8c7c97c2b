"""The controller's domain errors; the servicer maps each to a status code."""

from __future__ import annotations

__all__ = [
    "SearchNotFound",
    "CandidateNotFound",
    "NoQTable",
    "ReportConflict",
    "BadRequest",
    "BadReport",
]


class SearchNotFound(LookupError):
    pass


class CandidateNotFound(LookupError):
    pass


class NoQTable(RuntimeError):
    """The search's agent keeps no Q-table."""


class ReportConflict(RuntimeError):
    """A report that contradicts what is already recorded."""


class BadRequest(ValueError):
    """A request with a value outside what it may be; the message names it."""


class BadReport(BadRequest):
    """A report with impossible values."""
