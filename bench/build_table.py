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
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("space", choices=sorted(SPACES))
    p.add_argument(
        "--out", type=Path, help="table file (default bench/tables/SPACE_mnist5k.jsonl.gz)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--noise-fraction", type=float, default=0.1)
    p.add_argument("--limit", type=int, help="only the first N architectures (tests)")
    args = p.parse_args(argv)
    dataset = DATASETS[args.space]
    stem = args.space if args.space.endswith(dataset) else f"{args.space}_{dataset}"
    out = args.out or TABLES / f"{stem}.jsonl.gz"
    return build(args.space, out, args.workers, args.epochs, args.noise_fraction, args.limit)


if __name__ == "__main__":
    sys.exit(main())
