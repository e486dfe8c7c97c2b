"""The errors of architecture specs, shared by the layer form (``nasrl.core.arch``) and the
cell form (``nasrl.core.cell``); ``nasrl.core.arch`` re-exports both."""

from __future__ import annotations

__all__ = ["ArchError", "ArchSyntaxError"]


class ArchError(ValueError):
    """An architecture that cannot be built or trained; the message says why."""


class ArchSyntaxError(ArchError):
    """A text form that does not parse; ``position`` is the 0-based character offset."""

    def __init__(self, message: str, text: str, position: int) -> None:
        super().__init__(message, text, position)  # all three, so it pickles and copies
        self.message, self.text, self.position = message, text, position

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}: {_caret(self.text, self.position)}"


def _caret(text: str, position: int) -> str:
    """The text around ``position`` with ``-->`` marking the spot."""
    start, end = max(0, position - 30), position + 30
    before = ("..." if start else "") + text[start:position]
    after = text[position:end] + ("..." if end < len(text) else "")
    return f"{before}-->{after}"
