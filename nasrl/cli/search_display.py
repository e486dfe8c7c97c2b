"""How ``nasrl search`` and ``nasrl demo`` show a search: the progress bar (or one line per
child off a terminal) and the leaderboard table."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nasrl.core import formats
from nasrl.core.results import EpochRecord, TrainOutcome
from nasrl.rpc.client import Candidate, ControllerClient, LeaderboardEntry, Search

__all__ = ["SearchDisplay", "leaderboard_table", "one_line", "state_text"]

err = Console(stderr=True, highlight=False)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_text(s: Search, short: bool = False) -> str:
    """A search's state and, once it ended, why: ``done (budget spent)``; ``short``: only the
    reason's head (``done (converged)`` for "converged: the agent's last ...")."""
    why = s.ended_because.strip()
    if short:
        why = why.split(":", 1)[0]
    return f"{s.state.value} ({why})" if why else s.state.value


def leaderboard_table(entries: list[LeaderboardEntry], title: str) -> Table:
    table = Table(title=title)
    cols = ("#", "architecture", "val acc", "evaluated", "test acc", "params", "MFLOPs", "seconds")
    for col in cols:
        table.add_column(col, justify="left" if col in ("architecture", "evaluated") else "right")
    for rank, e in enumerate(entries, start=1):
        table.add_row(
            str(rank),
            e.architecture,
            formats.accuracy(e.accuracy),
            e.evaluation.value,  # "shared": a shared-weights score, not a trained accuracy
            formats.accuracy(e.test_accuracy),
            formats.count(e.params),
            formats.mflops(e.flops),
            formats.seconds(e.seconds),
        )
    return table


class SearchDisplay:
    """The search's progress on ``console`` (default stderr). On a terminal a bar: evaluations
    out of the budget, best so far, trainer-seconds, the running child's epoch. Elsewhere (a
    pipe, a file, a CI log) a bar is drawn once, cut to 80 columns, so instead one full line
    per finished child: ``child 12/20  #17  C(32,3,1) GAP SM(10)  val 0.9512  best 0.9601
    3.2 s on HOST:PORT``. ``done`` and ``best``: the search's so far (a resumed one)."""

    def __init__(
        self,
        c: ControllerClient,
        search_id: str,
        budget: int,
        quiet: bool,
        console: Console | None = None,
        done: int = 0,
        best: float | None = None,
    ) -> None:
        self.c, self.search_id, self.budget = c, search_id, budget
        self.console = console or err
        self.lines = not quiet and not self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]search {task.fields[sid]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("{task.fields[tsec]} trainer-s"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet or self.lines,
            transient=False,
        )
        self.task = self.progress.add_task(
            "search", total=budget, sid=search_id, best="-", tsec="0", note=""
        )
        self.trainer_seconds = 0.0
        self.done, self.best = done, best
        self._last_poll = 0.0
        self._lock = threading.Lock()

    def on_epoch(self, cand: Candidate, target: str, e: EpochRecord) -> None:
        self.progress.update(
            self.task,
            note=f"child {cand.id} on {target}: epoch "
            f"{e.epoch}/{e.epochs} val {e.validation_accuracy:.3f}",
        )

    def on_wait(self, cand: Candidate, target: str, reason: str) -> None:
        self.progress.update(
            self.task, note=f"child {cand.id} waits for a trainer that is up ({target} is down)"
        )

    def on_result(
        self, cand: Candidate, target: str | None, r: TrainOutcome | None, failure: str | None
    ) -> None:
        with self._lock:
            if r is not None and target is not None:
                self.trainer_seconds += r.seconds
            line = self._line(cand, target, r, failure)
        if self.lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif failure:
            self.console.print(f"child {cand.id} failed: {failure}", markup=False)

    def _line(
        self, cand: Candidate, target: str | None, r: TrainOutcome | None, failure: str | None
    ) -> str:
        """One finished child, in full (the lock held)."""
        if r is None:
            self.done += 1
            head = f"child {self.done}/{self.budget}  #{cand.id}  {cand.text}"
            return f"{head}  failed: {one_line(failure or 'no reason given', 2000)}"
        acc = r.validation_accuracy
        self.best = acc if self.best is None else max(self.best, acc)
        if target is None:  # evaluated before: no budget spent
            head, where = f"cached  #{cand.id}  {cand.text}", "(trained before)"
        else:
            self.done += 1
            head = f"child {self.done}/{self.budget}  #{cand.id}  {cand.text}"
            where = f"{r.seconds:.1f} s on {target}"
        return f"{head}  val {acc:.4f}  best {self.best:.4f}  {where}"

    def tick(self) -> None:
        if self.lines or time.monotonic() - self._last_poll < 1.0:
            return
        self._last_poll = time.monotonic()
        try:
            s = self.c.get_search(self.search_id)
        except Exception:  # noqa: BLE001 - the display waits for the controller like the runner
            return
        self.progress.update(
            self.task,
            completed=s.counts.evaluated + s.counts.failed,
            best=formats.best(None if s.best is None else s.best.accuracy),
            tsec=formats.trainer_seconds(self.trainer_seconds),
        )
