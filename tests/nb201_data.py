"""NAS-Bench-201's CIFAR-10 results for the tests of the ``nb201`` table: the CSV is not
shipped with nasrl (it is the benchmark's data), so it is looked for at run time, the
converted table is built once per test session, and the tests skip when the CSV is absent."""

from __future__ import annotations

import csv
import gzip
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: beside the checkout (a maintainers' copy), unless NASRL_NB201_CSV names another file
DEFAULT_CSV = ROOT / ".." / "shared" / "nb201" / "nb201_cifar10.csv.gz"
CELLS = 15_625


def csv_path() -> Path:
    return Path(os.environ.get("NASRL_NB201_CSV") or DEFAULT_CSV)


def require_csv() -> Path:
    """The CSV, or skip the test saying where to get it and how it is converted."""
    path = csv_path()
    if not path.is_file():
        pytest.skip(
            f"NAS-Bench-201's CIFAR-10 results are not at {path}: get them from NAS-Bench-201 "
            "/ NATS-Bench (Dong & Yang) as a CSV with the columns index, cell, isomorphism_key, "
            "cifar10_valid_12ep, cifar10_test_12ep, cifar10_test_200ep, "
            "train_seconds_12ep_estimate, set NASRL_NB201_CSV to it (the table is then built "
            "with: python bench/build_table.py nb201 --source CSV)"
        )
    return path


def csv_rows() -> list[dict[str, str]]:
    with gzip.open(require_csv(), "rt", newline="") as f:
        return list(csv.DictReader(f))


def converted_table(factory: pytest.TempPathFactory) -> Path:
    """The table converted from the CSV, built once per session (per xdist worker)."""
    source = require_csv()
    out = factory.getbasetemp() / "nb201" / "nb201_cifar10.jsonl.gz"
    if not out.exists():
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from bench import build_table

        assert build_table.main(["nb201", "--source", str(source), "--out", str(out)]) == 0
    return out
