"""A tabular benchmark as the agents see it, and the screening scores of
``bench/screening.py``; both cached per process (each worker of ``bench/tabular.py`` reads a
table once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Lookup", "lookup", "scores"]


class Lookup:
    """The table as the agents see it: canonical text -> (validation, last5, test, seconds)."""

    def __init__(self, path: Path) -> None:
        from google.protobuf import json_format

        from controller_service.codec import space_from_proto
        from nasrl.core.datasets import input_shape
        from nasrl.core.table import read_table
        from protos import controller_pb2 as cpb

        self.table = read_table(path)
        space = space_from_proto(json_format.ParseDict(self.table.space, cpb.SearchSpace()))
        assert space is not None
        self.space = space.bind(input_shape(self.table.dataset))
        self.rows = {
            a: (r.best_validation, max(r.validation[-5:]), r.test_accuracy, r.seconds)
            for a, r in self.table.primary().items()
        }
        self.primary = self.table.primary()
        self.optimum = max(v[0] for v in self.rows.values())

    def text(self, arch: Any) -> str:
        from nasrl.core.arch import canonical, format_arch

        text = format_arch(canonical(arch))
        if text not in self.rows:
            raise KeyError(f"{text} is not in the table")
        return text


_LOOKUPS: dict[str, Lookup] = {}


def lookup(path: str) -> Lookup:
    if path not in _LOOKUPS:
        _LOOKUPS[path] = Lookup(Path(path))
    return _LOOKUPS[path]


_SCORE_FILES: dict[str, dict[str, dict[str, float]]] = {}


def scores(path: str) -> dict[str, dict[str, float]]:
    if path not in _SCORE_FILES:
        _SCORE_FILES[path] = json.loads(Path(path).read_text())["values"]
    return _SCORE_FILES[path]
