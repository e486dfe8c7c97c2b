"""Build a tabular benchmark: train every architecture of a small search space on ``mnist5k``
with nasrl's own trainer code (``trainer_service.train.train``: same builder, loop and
defaults), plus a second seed for a random subset, and write them to a table file.

    .venv/bin/python bench/build_table.py zoph      # bench/tables/zoph_mnist5k.jsonl.gz
    .venv/bin/python bench/build_table.py metaqnn   # bench/tables/metaqnn_mnist5k.jsonl.gz
    .venv/bin/python bench/build_table.py zoph_digits  # bench/tables/zoph_digits.jsonl.gz (proxy)
    .venv/bin/python bench/build_table.py tiny      # 32 networks on digits, for the tests
        [--workers 2] [--epochs 3] [--noise-fraction 0.1] [--limit N] [--out FILE]

Resumable: rows are appended (one gzip member each) as children finish; run the same command
again after a kill and it trains only what is missing (a torn last row is dropped). The
architectures are trained in a fixed shuffled order, so a partial table is a uniform sample.
Each worker process trains with one torch thread. ``--limit N`` builds a table of the first N
architectures of that order (for tests). The spaces:

* ``zoph``: ZophSpace(filter_sizes 1/3, strides 1/2, filters 8/16, max_layers 2, skip
  connections on): 32 choices per layer x 2 skip patterns = 2,048 distinct networks;
* ``metaqnn``: MetaQNNSpace(conv_sizes 1/3, conv_filters 4/8, pools (5,3)/(2,2), fc_units 32,
  max_depth 4) on 28x28: 1,720 distinct networks (an FC layer needs two poolings before it on
  28x28, i.e. depth 5, so this depth has none).

``nb201`` trains nothing: it converts NAS-Bench-201's CIFAR-10 results (Dong & Yang, ICLR 2020;
NATS-Bench's topology space), given as a CSV (plain or gzip) with the columns ``index, cell,
isomorphism_key, cifar10_valid_12ep, cifar10_test_12ep, cifar10_test_200ep,
train_seconds_12ep_estimate`` (accuracies in %), into a table of the ``nb201`` space (all five
ops, NAS-Bench-201's skeleton C=16, N=5, 3 stages) on ``cifar10``, in about two seconds:

    .venv/bin/python bench/build_table.py nb201 --source nb201_cifar10.csv.gz \
        [--out bench/results/nb201_cifar10.jsonl.gz]

One seed-0 row per cell (all 15,625 must be there, once each), keyed by the cell's canonical
text (the bare NAS-Bench-201 string). The benchmark recorded one point per cell, not a
per-epoch curve nor a training loss, so the table is format 2 (``nasrl.core.table``): a row's
single "epoch" is NAS-Bench-201's whole 12-epoch training (validation = its 12-epoch validation
accuracy as a fraction, the search signal; seconds = its 12-epoch time estimate), the row has no
train loss or accuracy, and the header's training settings say ``epochs: 1`` with
``epochs_note`` saying why. ``test_accuracy`` is the 200-epoch test accuracy (mean of 3 seeds,
the score NAS-Bench-201 reports; optimum 0.9437); the 12-epoch test accuracy and the
benchmark's index are kept in each row's ``extra``. Params and FLOPs are nasrl's own analysis on
CIFAR-10's input (which matches NAS-Bench-201's counts). A source that cannot be converted
(missing, wrong columns, a bad cell string or number, a cell missing or twice) is one line on
stderr and exit status 2. Neither the CSV nor the table is shipped (``bench/results`` is
ignored by git).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import itertools
import math
import random
import sys
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from google.protobuf import json_format  # noqa: E402

from controller_service.codec import space_from_proto  # noqa: E402
from controller_service.spaces import ZOPH_DECISIONS, MetaQNNSpace, ZophSpace  # noqa: E402
from nasrl.core.arch import canonical, format_arch  # noqa: E402
from nasrl.core.datasets import input_shape  # noqa: E402
from nasrl.core.results import TrainOutcome, TrainSettings  # noqa: E402
from nasrl.core.table import TableRow, append_rows, read_table, write_header  # noqa: E402
from protos import controller_pb2 as cpb  # noqa: E402

TABLES = ROOT / "bench" / "tables"
DATASETS = {"tiny": "digits", "zoph": "mnist5k", "zoph_digits": "digits", "metaqnn": "mnist5k"}
NOISE_SEED = 1

SPACES: dict[str, cpb.SearchSpace] = {
    # 32 networks on digits: what the tests build and replay
    "tiny": cpb.SearchSpace(
        zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1], filters=[4], max_layers=2)
    ),
    "zoph": cpb.SearchSpace(
        zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1, 2], filters=[8, 16], max_layers=2)
    ),
    # the zoph space on digits (8x8): a cheap proxy task to warm-start searches of the zoph table
    "zoph_digits": cpb.SearchSpace(
        zoph=cpb.ZophSpace(filter_sizes=[1, 3], strides=[1, 2], filters=[8, 16], max_layers=2)
    ),
    "metaqnn": cpb.SearchSpace(
        metaqnn=cpb.MetaQNNSpace(
            conv_sizes=[1, 3],
            conv_filters=[4, 8],
            pools=[cpb.PoolChoice(size=5, stride=3), cpb.PoolChoice(size=2, stride=2)],
            fc_units=[32],
            max_depth=4,
        )
    ),
}


def _zoph_archs(space: ZophSpace) -> list[str]:
    sizes = [len(space.choices(d)) for d in ZOPH_DECISIONS]
    per_layer = list(itertools.product(*[range(n) for n in sizes]))
    layers = space.max_layers
    skip_rows = [list(itertools.product((0, 1), repeat=i)) for i in range(layers)]
    out = []
    for tokens in itertools.product(per_layer, repeat=layers):
        for skips in itertools.product(*skip_rows):
            arch = space.decode(
                [list(t) for t in tokens],
                [list(s) for s in skips] if space.skip_connections else None,
            )
            out.append(format_arch(canonical(arch)))
    return out


def _metaqnn_archs(space: MetaQNNSpace) -> list[str]:
    out: list[str] = []

    def walk(state: Any, path: list[str]) -> None:
        for nxt in space.actions(state):
            if nxt.terminal:
                out.append(format_arch(canonical(space.decode(path + [nxt.action]))))
            else:
                walk(nxt, path + [nxt.action])

    walk(space.start(), [])
    return out


def enumerate_space(name: str) -> list[str]:
    """Every distinct network of the named table space (canonical text), in a fixed
    shuffled order."""
    space = space_from_proto(SPACES[name])
    if isinstance(space, MetaQNNSpace):
        archs = _metaqnn_archs(space.bind(input_shape(DATASETS[name])))
    else:
        assert isinstance(space, ZophSpace)
        archs = _zoph_archs(space)
    unique = list(dict.fromkeys(archs))
    random.Random(0).shuffle(unique)
    return unique


def _train(job: tuple[str, str, int, dict[str, Any]]) -> TrainOutcome:
    import torch

    from nasrl.core.arch import parse
    from trainer_service import data
    from trainer_service.train import train

    torch.set_num_threads(1)
    arch, dataset, seed, settings = job
    outcome = None
    for event in train(
        parse(arch), data.load(dataset), TrainSettings(**settings), torch.device("cpu")
    ):
        if isinstance(event, TrainOutcome):
            outcome = event
    assert outcome is not None
    return outcome


def _header(
    name: str, archs: list[str], settings: TrainSettings, noise_fraction: float
) -> dict[str, Any]:
    import torch

    noise = archs[: math.ceil(noise_fraction * len(archs))]
    return {
        "name": name,
        "dataset": DATASETS[name],
        "space": json_format.MessageToDict(SPACES[name]),
        "training": asdict(settings),
        "architectures": len(archs),
        "noise_seed": NOISE_SEED,
        "noise_fraction": noise_fraction,
        "noise_subset": noise,
        "torch": torch.__version__,
        "threads_per_child": 1,
        "command": "python bench/build_table.py " + " ".join(sys.argv[1:]),
    }


def build(
    name: str, out: Path, workers: int, epochs: int, noise_fraction: float, limit: int | None
) -> int:
    archs = enumerate_space(name)[:limit]
    settings = TrainSettings(epochs=epochs).validate()
    if out.exists():
        table = read_table(out, repair=True)
        if table.header.get("noise_subset") is None or table.header["architectures"] != len(archs):
            print(
                f"{out} was built for another space or limit; remove it to start again",
                file=sys.stderr,
            )
            return 2
        noise = table.header["noise_subset"]
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        header = _header(name, archs, settings, noise_fraction)
        write_header(out, header)
        table = read_table(out)
        noise = header["noise_subset"]
    jobs = [(a, 0) for a in archs] + [(a, NOISE_SEED) for a in noise]
    todo = [(a, s) for a, s in jobs if (a, s) not in table.rows]
    before = table.build_seconds()
    began = time.monotonic()
    print(
        f"{name}: {len(archs)} architectures, {len(jobs)} trainings, {len(todo)} to go "
        f"({workers} workers); {before:.0f}s spent before",
        flush=True,
    )
    training = asdict(settings)
    with ProcessPoolExecutor(workers) as pool:
        pending: dict[Future[TrainOutcome], int] = {}
        queue = iter(todo)
        done = 0
        while True:
            while len(pending) < 2 * workers:
                nxt = next(queue, None)
                if nxt is None:
                    break
                job = (nxt[0], DATASETS[name], nxt[1], {**training, "seed": nxt[1]})
                pending[pool.submit(_train, job)] = nxt[1]
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                seed = pending.pop(f)
                elapsed = before + time.monotonic() - began
                append_rows(out, [TableRow.from_outcome(f.result(), seed, elapsed)])
                done += 1
                if done % 50 == 0 or done == len(todo):
                    print(f"{done}/{len(todo)} trained, {elapsed:.0f}s", flush=True)
    final = read_table(out)
    print(f"{out}: {len(final.rows)} rows, build time {final.build_seconds():.0f}s", flush=True)
    return 0


NB201_COLUMNS = (
    "index",
    "cell",
    "isomorphism_key",
    "cifar10_valid_12ep",
    "cifar10_test_12ep",
    "cifar10_test_200ep",
    "train_seconds_12ep_estimate",
)
NB201_OUT = ROOT / "bench" / "results" / "nb201_cifar10.jsonl.gz"
NB201_SPACE = cpb.SearchSpace(nb201=cpb.Nb201Space())  # every op, NAS-Bench-201's skeleton
#: NAS-Bench-201's training recipe (its paper, Table 2); one "epoch" here is its 12-epoch run
NB201_TRAINING = TrainSettings(
    epochs=1,
    batch_size=256,
    optimizer="sgd",
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    grad_clip=0.0,
)
NB201_EPOCHS_NOTE = (
    "NAS-Bench-201 recorded one point per cell, not a per-epoch curve: a row's single epoch is "
    "the benchmark's whole 12-epoch training on the CIFAR-10 train/valid split (validation = "
    "its 12-epoch validation accuracy, epoch_seconds = its 12-epoch time estimate); rows have "
    "no train loss or accuracy (replayed as 0, proto3's unset); test_accuracy is the 200-epoch "
    "test accuracy (mean of 3 seeds); extra.test_accuracy_12ep the 12-epoch one"
)


class SourceError(ValueError):
    """A NAS-Bench-201 CSV that cannot be converted; the message is one line."""


def _percent(row: dict[str, str], column: str, where: str) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        raise SourceError(f"{where}: {column} is {row[column]!r}, not a number") from None
    if not 0.0 <= value <= 100.0:
        raise SourceError(f"{where}: {column} is {value}, not a percentage")
    return round(value / 100.0, 8)


def _nb201_row(r: dict[str, str], where: str, shape: Any) -> TableRow:
    from nasrl.core.arch import ArchError, parse
    from nasrl.core.cell import DEFAULT_SKELETON
    from nasrl.core.shapes import analyze

    cell = r["cell"] or ""
    try:
        arch = parse(cell)
    except ArchError as exc:
        raise SourceError(f"{where}: bad cell string {cell[:120]!r} ({exc})") from None
    if arch.cell is None or arch.cell.skeleton != DEFAULT_SKELETON:
        raise SourceError(
            f"{where}: {cell[:120]!r} is not a bare NAS-Bench-201 cell string "
            "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|, on the benchmark's own skeleton)"
        )
    text = format_arch(canonical(arch))
    try:
        seconds = float(r["train_seconds_12ep_estimate"])
        index = int(r["index"])
    except (TypeError, ValueError):
        raise SourceError(
            f"{where}: index {r['index']!r} or train_seconds_12ep_estimate "
            f"{r['train_seconds_12ep_estimate']!r} is not a number"
        ) from None
    if not 0.0 <= seconds < 1e9:
        raise SourceError(f"{where}: train_seconds_12ep_estimate is {seconds}")
    a = analyze(arch, shape)
    return TableRow(
        arch=text,
        seed=0,
        validation=(_percent(r, "cifar10_valid_12ep", where),),
        train_loss=(),
        train_accuracy=(),
        epoch_seconds=(seconds,),
        test_accuracy=_percent(r, "cifar10_test_200ep", where),
        params=a.params,
        flops=a.flops,
        seconds=seconds,
        extra={
            "nb201_index": index,
            "test_accuracy_12ep": _percent(r, "cifar10_test_12ep", where),
        },
    )


def read_nb201(source: Path) -> list[TableRow]:
    """The table rows of a NAS-Bench-201 CSV (plain or gzip), in the CSV's order; SourceError
    says why it cannot be converted."""
    from nasrl.core.cell import CELL_OPS, EDGES

    try:
        raw = source.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SourceError(f"--source {source}: cannot read it ({reason})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = reader.fieldnames or []
        missing = [c for c in NB201_COLUMNS if c not in columns]
        if missing:
            raise SourceError(
                f"--source {source}: not a NAS-Bench-201 CSV: missing column(s) "
                f"{', '.join(missing)} (expected {', '.join(NB201_COLUMNS)})"
            )
        shape = input_shape("cifar10")
        rows: list[TableRow] = []
        seen: dict[str, int] = {}
        for line, r in enumerate(reader, start=2):
            where = f"--source {source} line {line}"
            if None in r or any(r[c] is None for c in NB201_COLUMNS):
                raise SourceError(f"{where}: not {len(columns)} fields")
            row = _nb201_row(r, where, shape)
            if row.arch in seen:
                raise SourceError(f"{where}: the cell {row.arch} is on line {seen[row.arch]} too")
            seen[row.arch] = line
            rows.append(row)
    except csv.Error as exc:
        raise SourceError(f"--source {source}: not a CSV ({exc})") from None
    cells = len(CELL_OPS) ** len(EDGES)
    if len(rows) != cells:
        raise SourceError(
            f"--source {source}: {len(rows):,} cells, but NAS-Bench-201's space has {cells:,} "
            "(every cell, once each)"
        )
    return rows


def convert_nb201(source: Path, out: Path) -> int:
    """Write the nb201 table from a NAS-Bench-201 CSV; exit status 2 with one line on stderr
    when the source cannot be converted."""
    began = time.perf_counter()
    try:
        rows = read_nb201(source)
    except SourceError as exc:
        print(f"build_table nb201: {exc}", file=sys.stderr)
        return 2
    header = {
        "name": "nb201_cifar10",
        "dataset": "cifar10",
        "space": json_format.MessageToDict(NB201_SPACE),
        "training": asdict(NB201_TRAINING),
        "epochs_note": NB201_EPOCHS_NOTE,
        "benchmark_epochs": 12,
        "architectures": len(rows),
        "noise_subset": [],
        "source": {
            "benchmark": "NAS-Bench-201 (Dong & Yang, ICLR 2020) / NATS-Bench topology space",
            "file": source.name,
            "columns": list(NB201_COLUMNS),
        },
        "command": "python bench/build_table.py " + " ".join(sys.argv[1:]),
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        write_header(tmp, header, fmt=2)
        append_rows(tmp, rows)
        tmp.replace(out)
    except OSError as exc:
        print(f"build_table nb201: --out {out}: cannot write it ({exc})", file=sys.stderr)
        return 2
    print(f"{out}: {len(rows):,} rows in {time.perf_counter() - began:.1f}s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("space", choices=sorted([*SPACES, "nb201"]))
    p.add_argument(
        "--out",
        type=Path,
        help="table file (default bench/tables/SPACE_mnist5k.jsonl.gz; "
        "nb201: bench/results/nb201_cifar10.jsonl.gz)",
    )
    p.add_argument(
        "--source",
        type=Path,
        help="nb201 only: NAS-Bench-201's CIFAR-10 results as a CSV (plain or gzip), columns "
        + ", ".join(NB201_COLUMNS),
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--noise-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, help="only the first N architectures (tests)")
    args = p.parse_args(argv)
    if args.space == "nb201":
        if args.source is None:
            print(
                "build_table nb201: give --source CSV (NAS-Bench-201's CIFAR-10 results)",
                file=sys.stderr,
            )
            return 2
        return convert_nb201(args.source, args.out or NB201_OUT)
    if args.source is not None:
        p.error("--source is for nb201 only")
    dataset = DATASETS[args.space]
    stem = args.space if args.space.endswith(dataset) else f"{args.space}_{dataset}"
    out = args.out or TABLES / f"{stem}.jsonl.gz"
    return build(args.space, out, args.workers, args.epochs, args.noise_fraction, args.limit)


if __name__ == "__main__":
    sys.exit(main())
