"""`nasrl search`'s progress: a rich bar on a terminal; one full line per finished child
anywhere else (a pipe, a file), where a bar would be drawn once and cut at 80 columns."""

from __future__ import annotations

import io
from typing import cast

from rich.console import Console

from nasrl.cli.search_display import SearchDisplay
from nasrl.core.arch import parse
from nasrl.rpc.client import Candidate, ControllerClient
from tests.helpers import outcome

LONG = "C(64,5,1) C(64,5,1) P(2,2) C(128,3,1) C(128,3,1) P(2,2) C(256,3,1) GAP SM(10)"
NO_CONTROLLER = cast(ControllerClient, None)  # on_result never calls it


def candidate(cid: int, text: str = LONG) -> Candidate:
    return Candidate(cid, parse(text), text, 0.0, None)


def display(
    terminal: bool, quiet: bool = False, done: int = 0
) -> tuple[SearchDisplay, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=80, highlight=False)
    return SearchDisplay(NO_CONTROLLER, "1b5cb8f0", 20, quiet, console, done=done), buffer


def test_without_a_terminal_each_child_is_one_full_line() -> None:
    d, buffer = display(terminal=False, done=11)
    assert d.lines and d.progress.disable
    d.on_result(candidate(17), "127.0.0.1:50052", outcome(LONG, 0.9512, seconds=3.21), None)
    d.on_result(candidate(18, "C(8,3,1) GAP SM(10)"), "127.0.0.1:50053", outcome("x", 0.5), None)
    d.on_result(candidate(19), None, outcome(LONG, 0.96), None)  # cached: no budget spent
    d.on_result(candidate(20), None, None, "127.0.0.1:50052: INVALID_ARGUMENT: too big")
    assert buffer.getvalue().splitlines() == [
        f"child 12/20  #17  {LONG}  val 0.9512  best 0.9512  3.2 s on 127.0.0.1:50052",
        "child 13/20  #18  C(8,3,1) GAP SM(10)  val 0.5000  best 0.9512  1.0 s on 127.0.0.1:50053",
        f"cached  #19  {LONG}  val 0.9600  best 0.9600  (trained before)",
        f"child 14/20  #20  {LONG}  failed: 127.0.0.1:50052: INVALID_ARGUMENT: too big",
    ]


def test_on_a_terminal_the_bar_stays_and_no_line_is_printed_per_child() -> None:
    d, buffer = display(terminal=True)
    assert not d.lines and not d.progress.disable
    d.on_result(candidate(1), "127.0.0.1:50052", outcome(LONG, 0.9), None)
    assert "val 0.9000" not in buffer.getvalue()
    d.on_result(candidate(2), None, None, "boom")
    assert "child 2 failed: boom" in buffer.getvalue()


def test_quiet_prints_only_failures() -> None:
    d, buffer = display(terminal=False, quiet=True)
    assert not d.lines and d.progress.disable
    d.on_result(candidate(1), "127.0.0.1:50052", outcome(LONG, 0.9), None)
    d.on_result(candidate(2), None, None, "boom")
    assert buffer.getvalue().splitlines() == ["child 2 failed: boom"]
