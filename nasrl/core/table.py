"""Tabular benchmarks: every architecture of a small search space trained once (and a subset
twice) by nasrl's own trainer, so that searches can be replayed against the table in seconds.

A table is one gzip file of JSON lines, written as a series of gzip members so that a build
can append as it goes and a kill leaves at most a torn last member (``read`` drops it):

* line 1, the header: ``{"format": 1, "kind": "nasrl-table", "name", "dataset",
  "space": <nasrl.v1.SearchSpace as proto JSON>, "training": <TrainSettings>,
  "architectures": N, "noise_seed": 1, "noise_fraction": 0.1, "noise_subset": [...]}``;
* then one row per trained (architecture, seed): ``{"arch": canonical text, "seed",
  "validation": [per-epoch validation accuracy], "train_loss": [...], "train_accuracy": [...],
  "epoch_seconds": [...], "test_accuracy", "params", "flops", "seconds",
  "build_elapsed"}`` (``build_elapsed``: the build's wall-clock seconds when the row was
  written, summed over resumed sessions).

Format 2 (what ``write_header(..., fmt=2)`` writes; format 1 files read as before) is format 1
where a row may leave out ``train_loss`` and ``train_accuracy`` (an external benchmark that
recorded no training curve: nothing is made up for it) and may carry ``"extra": {...}``, other
values the source recorded (e.g. NAS-Bench-201's 12-epoch test accuracy). A replayed epoch of
such a row reports train loss and train accuracy 0, proto3's "not set". ``bench/build_table.py
nb201`` writes one from NAS-Bench-201's CSV: one row per cell whose single recorded "epoch" is
the benchmark's whole 12-epoch training (its header says so in ``epochs_note``).
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasrl.core.results import EpochRecord, Evaluation, TrainOutcome

__all__ = ["Table", "TableError", "TableRow", "read_table", "append_rows", "write_header"]

FORMAT = 1  # written by default
FORMATS = (1, 2)  # read; 2: rows may omit train_loss/train_accuracy and carry "extra"


class TableError(ValueError):
    """A file that is not a nasrl table, or a request the table cannot answer."""


@dataclass(frozen=True)
class TableRow:
    arch: str
    seed: int
    validation: tuple[float, ...]
    train_loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]
    epoch_seconds: tuple[float, ...]
    test_accuracy: float
    params: int
    flops: int
    seconds: float
    build_elapsed: float = 0.0
    # other values the source recorded (format 2), e.g. {"nb201_index": 0, ...}
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        n = len(self.validation)
        if n == 0:
            raise ValueError(f"{self.arch}: a row needs at least one validation accuracy")
        for name in ("train_loss", "train_accuracy", "epoch_seconds"):
            got = len(getattr(self, name))
            if got != n and not (got == 0 and name != "epoch_seconds"):
                raise ValueError(f"{self.arch}: {name} has {got} values, validation {n}")

    @property
    def has_training_curve(self) -> bool:
        """Whether the row recorded train loss and accuracy (format 2 rows may not)."""
        return bool(self.train_loss)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TableRow:
        return cls(
            arch=str(d["arch"]),
            seed=int(d["seed"]),
            validation=tuple(float(v) for v in d["validation"]),
            train_loss=tuple(float(v) for v in d.get("train_loss", ())),
            train_accuracy=tuple(float(v) for v in d.get("train_accuracy", ())),
            epoch_seconds=tuple(float(v) for v in d["epoch_seconds"]),
            test_accuracy=float(d["test_accuracy"]),
            params=int(d["params"]),
            flops=int(d["flops"]),
            seconds=float(d["seconds"]),
            build_elapsed=float(d.get("build_elapsed", 0.0)),
            extra=dict(d.get("extra", {})),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arch": self.arch,
            "seed": self.seed,
            "validation": list(self.validation),
        }
        if self.has_training_curve:
            out["train_loss"] = list(self.train_loss)
            out["train_accuracy"] = list(self.train_accuracy)
        out.update(
            {
                "epoch_seconds": list(self.epoch_seconds),
                "test_accuracy": self.test_accuracy,
                "params": self.params,
                "flops": self.flops,
                "seconds": self.seconds,
                "build_elapsed": round(self.build_elapsed, 3),
            }
        )
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_outcome(cls, o: TrainOutcome, seed: int, elapsed: float) -> TableRow:
        ends = [e.seconds for e in o.curve]
        return cls(
            arch=o.architecture,
            seed=seed,
            validation=tuple(e.validation_accuracy for e in o.curve),
            train_loss=tuple(e.train_loss for e in o.curve),
            train_accuracy=tuple(e.train_accuracy for e in o.curve),
            epoch_seconds=tuple(b - a for a, b in zip([0.0, *ends], ends)),
            test_accuracy=o.test_accuracy,
            params=o.params,
            flops=o.flops,
            seconds=o.seconds,
            build_elapsed=elapsed,
        )

    @property
    def best_validation(self) -> float:
        return max(self.validation)

    def outcome(self, epochs: int | None = None) -> TrainOutcome:
        """The row as the trainer would have reported it after ``epochs`` (default: all);
        seconds are the recorded epoch times plus the recorded overhead, pro rata."""
        n = len(self.validation) if epochs is None else epochs
        if not 1 <= n <= len(self.validation):
            raise TableError(
                f"the table has {len(self.validation)} epochs per child; {n} were asked for"
            )
        curve, elapsed = [], 0.0
        overhead = max(0.0, self.seconds - sum(self.epoch_seconds))
        trained = self.has_training_curve  # else 0: proto3's "not set", nothing made up
        for i in range(n):
            elapsed += self.epoch_seconds[i]
            curve.append(
                EpochRecord(
                    i + 1,
                    n,
                    self.train_loss[i] if trained else 0.0,
                    self.train_accuracy[i] if trained else 0.0,
                    self.validation[i],
                    elapsed,
                )
            )
        vals = self.validation[:n]
        return TrainOutcome(
            validation_accuracy=max(vals),
            validation_accuracy_last5=max(vals[-5:]),
            test_accuracy=self.test_accuracy,
            params=self.params,
            flops=self.flops,
            seconds=elapsed + overhead * n / len(self.validation),
            device="table",
            architecture=self.arch,
            curve=tuple(curve),
            stopped_early=False,
            evaluation=Evaluation.TABLE,
        )


@dataclass
class Table:
    header: dict[str, Any]
    rows: dict[tuple[str, int], TableRow] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return str(self.header["dataset"])

    @property
    def space(self) -> dict[str, Any]:
        """The search space the table enumerates, as nasrl.v1.SearchSpace proto JSON."""
        return dict(self.header["space"])

    @property
    def name(self) -> str:
        return str(self.header.get("name", "table"))

    def row(self, arch: str, seed: int = 0) -> TableRow | None:
        return self.rows.get((arch, seed))

    def primary(self) -> dict[str, TableRow]:
        """Seed-0 row of every architecture: what a search sees."""
        return {a: r for (a, s), r in self.rows.items() if s == 0}

    def build_seconds(self) -> float:
        return max((r.build_elapsed for r in self.rows.values()), default=0.0)


def write_header(path: Path, header: dict[str, Any], fmt: int = FORMAT) -> None:
    """Start a new table file with its header (replacing any file there); ``fmt`` 2 for a
    table whose rows may lack a training curve or carry ``extra``."""
    if fmt not in FORMATS:
        raise TableError(f"table format {fmt} is not one of {FORMATS}")
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"format": fmt, "kind": "nasrl-table", **header}) + "\n")
    os.replace(tmp, path)


def append_rows(path: Path, rows: list[TableRow]) -> None:
    """Append rows as one new gzip member, flushed to disk."""
    data = "".join(json.dumps(r.to_json()) + "\n" for r in rows).encode()
    with open(path, "ab") as f:
        f.write(gzip.compress(data, mtime=0))
        f.flush()
        os.fsync(f.fileno())


def _lines(path: Path) -> tuple[list[str], bool]:
    """Every complete line, and whether the file ended cleanly (no torn member)."""
    raw = path.read_bytes()
    lines: list[str] = []
    text = b""
    clean = True
    while raw:
        d = zlib.decompressobj(wbits=31)
        try:
            text += d.decompress(raw)
            if not d.eof:
                clean = False
                break
        except zlib.error:
            clean = False
            break
        raw = d.unused_data
    parts = text.decode("utf-8", errors="replace").split("\n")
    if parts and parts[-1]:
        clean = False  # a line without its newline: torn
    lines = [p for p in parts[:-1]]
    return lines, clean


def read_table(path: str | Path, repair: bool = False) -> Table:
    """Read a table; a torn last member (a build killed while writing) is dropped, and with
    ``repair`` the file is rewritten without it so that appending can go on."""
    path = Path(path)
    try:
        lines, clean = _lines(path)
        header = json.loads(lines[0])
    except (OSError, IndexError, json.JSONDecodeError) as exc:
        raise TableError(f"{path} is not a nasrl table ({exc})") from exc
    if header.get("kind") != "nasrl-table" or header.get("format") not in FORMATS:
        raise TableError(f"{path} is not a nasrl table of format {' or '.join(map(str, FORMATS))}")
    table = Table(header)
    good = [lines[0]]
    for line in lines[1:]:
        try:
            row = TableRow.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            clean = False  # torn, or a row that breaks the format
            continue
        table.rows[(row.arch, row.seed)] = row
        good.append(line)
    if repair and not clean:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(gzip.compress(("\n".join(good) + "\n").encode(), mtime=0))
        os.replace(tmp, path)
    return table
