"""``bench/build_table.py nb201``: NAS-Bench-201's CIFAR-10 results (a CSV, not shipped; see
tests/nb201_data.py) as a nasrl table of the ``nb201`` space. Every cell once, with the
benchmark's own numbers as fractions, nasrl's own params/FLOPs, one recorded point per row and
no training curve made up; a source that cannot be converted is one line and exit status 2."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from google.protobuf import json_format

from controller_service.codec import space_from_proto
from controller_service.spaces import Nb201Space
from nasrl.core.arch import arch_hash, canonical, format_arch, parse
from nasrl.core.results import TrainSettings
from nasrl.core.table import Table, TableError, TableRow, read_table
from protos import controller_pb2 as cpb
from tests.nb201_data import CELLS, ROOT, converted_table, csv_rows

sys.path.insert(0, str(ROOT))
from bench import build_table  # noqa: E402

BEST_VALID = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
HEADER = (
    "index,cell,isomorphism_key,cifar10_valid_12ep,cifar10_test_12ep,cifar10_test_200ep,"
    "train_seconds_12ep_estimate\n"
)
GOOD_LINE = f"0,{BEST_VALID},k,84.892,89.03,94.3733,170.3\n"


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Table:
    return read_table(converted_table(tmp_path_factory))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return csv_rows()


def test_one_seed_0_row_per_cell_keyed_by_its_bare_string(
    table: Table, rows: list[dict[str, str]]
) -> None:
    assert len(table.rows) == len(table.primary()) == len(rows) == CELLS
    assert {s for _, s in table.rows} == {0}
    assert set(table.primary()) == {r["cell"] for r in rows}
    for r in rows[:500]:  # the key is the canonical text, which is the benchmark's string
        assert format_arch(canonical(parse(r["cell"]))) == r["cell"]


def test_the_header_is_the_nb201_space_on_cifar10_with_one_recorded_epoch(table: Table) -> None:
    h = table.header
    assert h["format"] == 2 and h["dataset"] == "cifar10" and h["architectures"] == CELLS
    assert table.space == {"nb201": {}}
    space = space_from_proto(json_format.ParseDict(table.space, cpb.SearchSpace()))
    assert space == Nb201Space()  # all five ops, C=16, N=5, 3 stages
    assert space.skeleton.channels == 16 and space.skeleton.cells_per_stage == 5
    training = TrainSettings(**h["training"]).validate()
    assert training.epochs == 1 and h["benchmark_epochs"] == 12
    assert "12-epoch" in h["epochs_note"] and "no train loss" in h["epochs_note"]


def test_every_row_holds_the_benchmarks_numbers_as_fractions(
    table: Table, rows: list[dict[str, str]]
) -> None:
    for r in rows:
        row = table.rows[(r["cell"], 0)]
        assert len(row.validation) == 1
        assert row.validation[0] == pytest.approx(float(r["cifar10_valid_12ep"]) / 100)
        assert row.test_accuracy == pytest.approx(float(r["cifar10_test_200ep"]) / 100)
        assert row.extra["test_accuracy_12ep"] == pytest.approx(float(r["cifar10_test_12ep"]) / 100)
        assert row.extra["nb201_index"] == int(r["index"])
        assert row.seconds == row.epoch_seconds[0] == float(r["train_seconds_12ep_estimate"])
        assert row.train_loss == row.train_accuracy == ()  # not recorded: none made up


def test_known_values(table: Table) -> None:
    rows = table.primary()
    best = max(rows.values(), key=lambda r: r.best_validation)
    assert best.arch == BEST_VALID and best.extra["nb201_index"] == 13714
    assert best.best_validation == pytest.approx(0.84892)
    assert best.test_accuracy == pytest.approx(0.943733)  # the benchmark's optimum, 94.37 %
    assert max(r.test_accuracy for r in rows.values()) == pytest.approx(0.943733)
    assert best.params == 1_073_466


def test_params_span_nas_bench_201s_range(table: Table) -> None:
    params = [r.params for r in table.primary().values()]
    flops = [r.flops for r in table.primary().values()]
    assert (min(params), max(params)) == (73_306, 1_531_546)
    assert (min(flops), max(flops)) == (2 * 7_783_040, 2 * 220_119_680)


def test_isomorphic_cells_keep_their_own_rows(table: Table, rows: list[dict[str, str]]) -> None:
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[r["isomorphism_key"]].append(r)
    assert len(groups) == 6_466
    differing = [g for g in groups.values() if len({r["cifar10_valid_12ep"] for r in g}) > 1]
    assert differing  # the benchmark trained isomorphic cells separately
    for group in differing[:50]:
        assert len({arch_hash(parse(r["cell"])) for r in group}) == 1  # same function...
        for r in group:  # ...but each cell answers with its own numbers
            row = table.rows[(r["cell"], 0)]
            assert row.best_validation == pytest.approx(float(r["cifar10_valid_12ep"]) / 100)


def test_a_row_replays_as_one_epoch_without_a_training_curve(table: Table) -> None:
    row = table.rows[(BEST_VALID, 0)]
    o = row.outcome()
    assert len(o.curve) == 1 and o.curve[0].epochs == 1
    assert o.validation_accuracy == o.curve[0].validation_accuracy == row.validation[0]
    assert o.curve[0].train_loss == o.curve[0].train_accuracy == 0.0  # proto3's "not set"
    assert o.seconds == pytest.approx(170.3) and o.device == "table"
    with pytest.raises(TableError, match="1 epochs per child; 12 were asked for"):
        row.outcome(12)


def test_format_1_rows_and_format_2_rows_round_trip(table: Table) -> None:
    old = read_table(ROOT / "tests" / "data" / "tiny_digits.jsonl.gz")
    assert old.header["format"] == 1
    some = next(iter(old.rows.values()))
    assert some.has_training_curve and TableRow.from_json(some.to_json()) == some
    assert "train_loss" in some.to_json() and "extra" not in some.to_json()
    new = table.rows[(BEST_VALID, 0)]
    assert not new.has_training_curve and "train_loss" not in new.to_json()
    assert TableRow.from_json(new.to_json()) == new
    with pytest.raises(ValueError, match="train_loss has 2 values"):
        TableRow.from_json({**some.to_json(), "train_loss": [1.0, 2.0]})


def _write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read it (No such file or directory)"),
        ("a,b\n1,2\n", "missing column(s) index, cell, isomorphism_key"),
        (HEADER + "0,|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|,k,1,1,1,1\n", "line 2"),
        (HEADER + '0,"C(8,3,1)",k,1,1,1,1\n', "not a bare NAS-Bench-201 cell string"),
        (HEADER + "0,[N=1]" + GOOD_LINE[2:], "not a bare NAS-Bench-201 cell string"),
        (HEADER + GOOD_LINE.replace("84.892", "high"), "cifar10_valid_12ep is 'high'"),
        (HEADER + GOOD_LINE.replace("94.3733", "194"), "cifar10_test_200ep is 194.0"),
        (HEADER + GOOD_LINE + GOOD_LINE, "is on line 2 too"),
        (HEADER + GOOD_LINE, "1 cells, but NAS-Bench-201's space has 15,625"),
        (HEADER + "0,x\n", "line 2: not 7 fields"),
    ],
)
def test_a_bad_source_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, words: str
) -> None:
    source = tmp_path / "nb201.csv"
    if content is not None:
        _write(source, content, gz=True)
    out = tmp_path / "out.jsonl.gz"
    assert build_table.main(["nb201", "--source", str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("build_table nb201: ")
    assert not out.exists()


def test_the_command_without_source_or_with_garbage_exits_2(tmp_path: Path) -> None:
    garbage = tmp_path / "x.csv.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x00 not gzip at all")
    script = str(ROOT / "bench" / "build_table.py")
    for args, words in (
        ([], "give --source CSV"),
        (["--source", str(garbage)], "cannot read it"),
        (["--source", str(tmp_path)], "cannot read it (Is a directory)"),
    ):
        r = subprocess.run(
            [sys.executable, script, "nb201", *args, "--out", str(tmp_path / "o.gz")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2, r.stderr
        assert words in r.stderr and "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and r.stdout == ""
