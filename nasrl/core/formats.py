"""Numbers as nasrl shows them to people, one definition for the CLI's tables and the
dashboard: accuracies to 4 decimals, counts with thousands separators, FLOPs in millions,
seconds to a tenth."""

from __future__ import annotations

__all__ = ["accuracy", "count", "mflops", "seconds", "trainer_seconds", "best"]


def accuracy(value: float) -> str:
    return f"{value:.4f}"


def count(value: int) -> str:
    return f"{value:,}"


def mflops(flops: int) -> str:
    return f"{flops / 1e6:.1f}"


def seconds(value: float) -> str:
    return f"{value:.1f}"


def trainer_seconds(value: float) -> str:
    """A search's training time in whole seconds (the CLI's progress bar)."""
    return f"{value:.0f}"


def best(value: float | None) -> str:
    """The best accuracy so far, ``-`` before the first result."""
    return "-" if value is None else accuracy(value)
