"""Answers ``Train`` from a tabular benchmark (``python -m trainer_service --table FILE``):
the recorded per-epoch validation curve, test accuracy, size and seconds of a network that
nasrl's own trainer trained when the table was built — or, for a table converted from an
external benchmark (format 2, e.g. ``bench/build_table.py nb201``), the points that benchmark
recorded (NAS-Bench-201's: one point, its whole 12-epoch training; no training loss, sent as
0). Nothing is trained; every result says ``device="table"``.

The request's ``epochs`` may be at most the table's: a shorter run replays the first epochs
(so early stopping can be studied); the test accuracy is the recorded one, of the full run.
Every request gets the table's main (seed 0) row, whatever its seed: the second-seed rows of
the noise subset only measure noise. The other training settings are those the table was
built with (its header says which). With ``time_scale`` > 0 each epoch sleeps its recorded
seconds times the scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from nasrl.core.arch import Architecture, canonical, format_arch
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.core.table import Table, TableError

__all__ = ["table_row_for", "replay"]


def table_row_for(
    table: Table, arch: Architecture, dataset: str, settings: TrainSettings
) -> tuple[str, int]:
    """(canonical text, seed) of the row that answers this request; TableError says why none
    does (wrong dataset, not in the space, too many epochs)."""
    if dataset != table.dataset:
        raise TableError(
            f"this trainer answers from the table {table.name!r} of dataset "
            f"{table.dataset!r}; it cannot train on {dataset!r}"
        )
    text = format_arch(canonical(arch))
    row = table.row(text, 0)
    if row is None:
        raise TableError(
            f"{text} is not in the table {table.name!r}, which holds the "
            f"{len(table.primary())} networks of the space {table.space}"
        )
    if settings.epochs > len(row.validation):
        raise TableError(
            f"the table {table.name!r} recorded {len(row.validation)} epochs per "
            f"network; {settings.epochs} were asked for"
        )
    return text, 0


def replay(
    table: Table,
    text: str,
    seed: int,
    epochs: int,
    time_scale: float,
    should_stop: Callable[[], bool],
    should_finish: Callable[[], bool] = lambda: False,
) -> Iterator[EpochRecord | TrainOutcome]:
    """The recorded run, one EpochRecord per epoch and then the TrainOutcome; when
    ``should_finish`` turns true the outcome covers the epochs sent so far (with
    ``stopped_early``; its test accuracy is still the full run's, the only one recorded)."""
    from trainer_service.train import Cancelled

    row = table.row(text, seed)
    assert row is not None
    outcome = row.outcome(epochs)
    began = time.perf_counter()
    for sent, record in enumerate(outcome.curve):
        if sent and should_finish():
            yield replace(row.outcome(sent), stopped_early=True)
            return
        until = began + record.seconds * time_scale
        while (left := until - time.perf_counter()) > 0:
            if should_stop():
                raise Cancelled()
            if sent and should_finish():
                yield replace(row.outcome(sent), stopped_early=True)
                return
            time.sleep(min(0.05, left))
        if should_stop():
            raise Cancelled()
        yield record
    yield outcome
