"""The hash of a cell network is that of its function, as NAS-Bench-201 decides it: over all
15,625 cells of the benchmark, ``isomorphism_key`` (and so ``arch_hash``) partitions them
exactly as the table's ``isomorphism_key`` column does (6,466 classes), and every cell string
parses and formats back to itself. The table lives outside the repository
(../shared/nb201/nb201_cifar10.csv.gz, see its README) and is read at run time."""

from __future__ import annotations

import csv
import gzip
import itertools
from collections import defaultdict
from pathlib import Path

import pytest

from nasrl.core.arch import Architecture, arch_hash, format_arch, parse
from nasrl.core.cell import CELL_OPS, EDGES, Cell, isomorphism_key

TABLE = Path(__file__).resolve().parents[2].parent / "shared" / "nb201" / "nb201_cifar10.csv.gz"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    if not TABLE.exists():
        pytest.skip(f"the NAS-Bench-201 table is not here ({TABLE}); see shared/nb201/README.md")
    with gzip.open(TABLE, "rt", newline="") as f:
        return list(csv.DictReader(f))


def partition(keys: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for cell, key in keys.items():
        groups[key].add(cell)
    return {frozenset(g) for g in groups.values()}


def test_the_table_is_the_whole_space(rows: list[dict[str, str]]) -> None:
    table = {parse(r["cell"]) for r in rows}
    space = {Architecture(cell=Cell(ops)) for ops in itertools.product(CELL_OPS, repeat=len(EDGES))}
    assert len(rows) == len(table) == len(space) == 5**6 == 15_625
    assert table == space


def test_every_cell_string_round_trips(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert format_arch(parse(r["cell"])) == r["cell"]


def test_hash_partitions_the_cells_as_the_reference(rows: list[dict[str, str]]) -> None:
    reference = partition({r["cell"]: r["isomorphism_key"] for r in rows})
    hashed = partition({r["cell"]: arch_hash(parse(r["cell"])) for r in rows})
    assert len(reference) == 6_466
    assert len(hashed) == 6_466
    assert hashed == reference


def test_the_key_is_the_reference_string(rows: list[dict[str, str]]) -> None:
    wrong = []
    for r in rows:
        arch = parse(r["cell"])
        assert arch.cell is not None
        if isomorphism_key(arch.cell) != r["isomorphism_key"]:
            wrong.append(r["cell"])
    assert not wrong, f"{len(wrong)} keys differ, e.g. {wrong[:3]}"
