"""Trainer throughput: nasrl's training loop against the plain PyTorch loop a user would write,
and children per hour of one trainer process with several slots.

    .venv/bin/python bench/trainer_throughput.py [--dataset mnist5k] [--epochs 2]
        [--device auto|cpu|cuda] [--slots 1,2] [--children 6] [--repeats 3] [--quick] [--out DIR]

Part 1, in this process, per device and per reference architecture: ``trainer_service.train``
(whole tensors on the device, index-slice batches; channels_last + bf16 autocast on CUDA)
against ``DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)`` feeding the same net
(built by ``nasrl.core.builder.build`` after the same ``torch.manual_seed``), the same
SGD-Nesterov optimiser and warm-up + cosine schedule (``_make_optimizer`` and ``_lr_factor``),
the same epochs and batch size, fp32 (pin_memory and non-blocking copies on CUDA). Both validate
after every epoch (eval mode, no grad, batches of 1,024) and the timed span of both runs from
building the model to the last validation accuracy: nasrl's span holds its FLOP count and
best-weights copies too, not its test-split evaluation after the last epoch; the plain loop keeps
no training loss or accuracy. Dataset loading and a short warm-up of every net in both loops are
not timed. Images/s = epochs x training images / span. Repeat r trains with seed r in both
loops; the loops alternate (which one goes first flips every repeat); images/s are medians, the
ratio is the median of the paired per-repeat ratios, and validation accuracies are means over the
seeds, with the gap's standard error (seed spread plus binomial noise).

Part 2: ``python -m trainer_service --slots K`` and K client threads, each training ``--children``
small children in turn over gRPC; children per hour, and the ratio to K=1 (on the CPU the trainer
gives each slot cores/K threads).

``--device auto`` runs the CPU and, when torch sees one, the CUDA device; ``cpu`` or ``cuda`` runs
only that one. Prints tables and writes trainer_throughput.json and .png to ``--out``
(bench/results by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nasrl.cli.local import LocalService
from nasrl.core.arch import parse
from nasrl.core.builder import ChildNet, build
from nasrl.core.results import EpochRecord, TrainSettings
from nasrl.rpc.client import TrainerClient, wait_until_serving
from trainer_service import data as datasets
from trainer_service.train import EVAL_BATCH, _lr_factor, _make_optimizer, train

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = {
    "small": "C(16,3,1) P(2,2) C(32,3,1) GAP",
    "medium": "C(32,3,1) C(32,3,1) P(2,2) C(64,3,1) C(64,3,1) P(2,2) FC(128)",
    "skips": "C(16,3,1) C(16,3,1)@[0,1] C(32,3,2)@[0,1,2] C(32,3,1)@[1,3] GAP",
}
WARMUP_ARCH = "C(8,3,1) GAP"
NO_CUDA = "no CUDA device: GPU part skipped"


@dataclass(frozen=True)
class Run:
    """One timed training run of one loop."""

    seconds: float
    images: int  # epochs x training images
    validation_accuracy: float  # after the last epoch

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def run_nasrl(arch: str, data: datasets.Dataset, s: TrainSettings, device: torch.device) -> Run:
    """``trainer_service.train.train``, timed to its last validation; the test-split evaluation
    it does afterwards (which the plain loop has no counterpart for) is not timed."""
    began = time.perf_counter()
    seconds, last = 0.0, None
    for event in train(parse(arch), data, s, device):
        if isinstance(event, EpochRecord):
            seconds, last = time.perf_counter() - began, event
    assert last is not None
    return Run(seconds, last.epoch * len(data.y_train), last.validation_accuracy)


@torch.no_grad()
def _accuracy(
    model: ChildNet, loader: DataLoader[tuple[torch.Tensor, ...]], device: torch.device
) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        correct += int((model(x).argmax(1) == y).sum().item())
        total += len(y)
    return correct / max(1, total)


def run_plain(arch: str, data: datasets.Dataset, s: TrainSettings, device: torch.device) -> Run:
    """The loop from the PyTorch tutorials: DataLoader over a TensorDataset, fp32."""
    began = time.perf_counter()
    torch.manual_seed(s.seed)
    model = build(parse(arch), data.shape).to(device)
    pin = device.type == "cuda"
    n = len(data.y_train)
    # nasrl drops a lone last sample too: batch-norm cannot train on one.
    train_loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=s.batch_size,
        shuffle=True,
        pin_memory=pin,
        drop_last=n % s.batch_size == 1,
        generator=torch.Generator().manual_seed(s.seed),
    )
    val_loader = DataLoader(
        TensorDataset(data.x_val, data.y_val), batch_size=EVAL_BATCH, pin_memory=pin
    )
    optimizer = _make_optimizer(model, s)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(s, len(train_loader)))
    val_acc = 0.0
    for _ in range(s.epochs):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
        val_acc = _accuracy(model, val_loader, device)
    return Run(time.perf_counter() - began, s.epochs * n, val_acc)


def _subset(data: datasets.Dataset, n: int) -> datasets.Dataset:
    return replace(
        data,
        x_train=data.x_train[:n],
        y_train=data.y_train[:n],
        x_val=data.x_val[:n],
        y_val=data.y_val[:n],
        x_test=data.x_test[:n],
        y_test=data.y_test[:n],
    )


def compare_loops(
    data: datasets.Dataset, device: torch.device, epochs: int, repeats: int
) -> list[dict[str, Any]]:
    s = TrainSettings(epochs=epochs).validate()
    loops = {"nasrl": run_nasrl, "plain": run_plain}
    small = _subset(data, 64 if repeats == 1 else 256)
    for arch in ARCHS.values():  # untimed: kernel selection, allocator, lazy init
        for run in loops.values():
            run(arch, small, replace(s, epochs=1), device)
    runs: dict[str, dict[str, list[Run]]] = {a: {k: [] for k in loops} for a in ARCHS}
    for r in range(repeats):  # repeat r trains with seed r in both loops
        order = ["nasrl", "plain"] if r % 2 == 0 else ["plain", "nasrl"]
        for name, arch in ARCHS.items():
            for loop in order:
                runs[name][loop].append(loops[loop](arch, data, replace(s, seed=r), device))
    return [_summarise(name, ARCHS[name], runs[name], len(data.y_val)) for name in ARCHS]


def _summarise(name: str, arch: str, runs: dict[str, list[Run]], n_val: int) -> dict[str, Any]:
    row: dict[str, Any] = {"arch": name, "text": arch}
    variance = 0.0  # of the difference of the two mean accuracies
    for loop, rs in runs.items():
        accs = [r.validation_accuracy for r in rs]
        mean = statistics.fmean(accs)
        row[loop] = {
            "images_per_s": statistics.median(r.images_per_s for r in rs),
            "validation_accuracy": mean,  # mean over seeds 0..repeats-1
            "runs": [
                asdict(r) | {"images_per_s": r.images_per_s, "seed": i} for i, r in enumerate(rs)
            ],
        }
        seed_var = statistics.variance(accs) if len(accs) > 1 else 0.0
        variance += (seed_var + mean * (1 - mean) / max(1, n_val)) / len(accs)
    row["ratio"] = statistics.median(
        a.images_per_s / b.images_per_s for a, b in zip(runs["nasrl"], runs["plain"])
    )
    gap = row["nasrl"]["validation_accuracy"] - row["plain"]["validation_accuracy"]
    row["accuracy_gap"] = gap
    # standard error of the gap: seed-to-seed spread plus binomial noise of the split
    row["accuracy_gap_se"] = math.sqrt(variance)
    row["accuracy_within_noise"] = abs(gap) <= 2 * row["accuracy_gap_se"] + 1e-12
    return row


def _train_children(target: str, dataset: str, count: int, epochs: int, slot: int) -> None:
    with TrainerClient(target) as client:
        for i in range(count):
            client.train(
                ARCHS["small"], dataset, TrainSettings(epochs=epochs, seed=1000 * slot + i)
            )


def slot_throughput(
    dataset: str, device: str, slots: int, children: int, epochs: int
) -> dict[str, Any]:
    """Children per hour of one trainer process with ``slots`` slots, kept full."""
    with (
        tempfile.TemporaryDirectory(prefix="nasrl-bench-") as tmp,
        LocalService(
            "trainer_service",
            ["--slots", str(slots), "--device", device],
            log_dir=Path(tmp),
            env={"NASRL_LOG_LEVEL": "WARNING"},
        ) as service,
    ):
        wait_until_serving(service.target)
        with TrainerClient(service.target) as client:  # loads the dataset; untimed
            client.train(WARMUP_ARCH, dataset, TrainSettings(epochs=1))
        began = time.perf_counter()
        with ThreadPoolExecutor(slots) as pool:
            futures = [
                pool.submit(_train_children, service.target, dataset, children, epochs, k)
                for k in range(slots)
            ]
            for future in futures:
                future.result()
        seconds = time.perf_counter() - began
    total = slots * children
    threads = max(1, (os.cpu_count() or 1) // slots) if device == "cpu" else None
    return {
        "slots": slots,
        "children": total,
        "seconds": seconds,
        "threads_per_slot": threads,
        "children_per_hour": total / seconds * 3600,
    }


def compare_slots(
    dataset: str, device: str, slot_counts: list[int], children: int, epochs: int, repeats: int
) -> list[dict[str, Any]]:
    measured: dict[int, list[dict[str, Any]]] = {k: [] for k in slot_counts}
    for r in range(repeats):
        for k in slot_counts if r % 2 == 0 else slot_counts[::-1]:
            measured[k].append(slot_throughput(dataset, device, k, children, epochs))
    rows = [
        {
            "slots": k,
            "children": ms[0]["children"],
            "seconds": statistics.median(m["seconds"] for m in ms),
            "children_per_hour": statistics.median(m["children_per_hour"] for m in ms),
            "threads_per_slot": ms[0]["threads_per_slot"],
            "runs": ms,
        }
        for k, ms in measured.items()
    ]
    base = next((r["children_per_hour"] for r in rows if r["slots"] == 1), None)
    for row in rows:
        row["ratio_vs_1"] = row["children_per_hour"] / base if base else None
    return rows


def choose_devices(name: str) -> tuple[list[torch.device], str | None]:
    """The devices to measure and, where CUDA was skipped, the line that says so."""
    has_cuda = torch.cuda.is_available()
    if name == "cpu":
        return [torch.device("cpu")], None
    if name.startswith("cuda"):
        if not has_cuda:
            raise SystemExit(f"--device {name} was asked for, but torch sees no CUDA device")
        return [torch.device(name)], None
    if name != "auto":
        raise SystemExit(f"--device must be auto, cpu or cuda, got {name!r}")
    return (
        ([torch.device("cpu"), torch.device("cuda")], None)
        if has_cuda
        else ([torch.device("cpu")], NO_CUDA)
    )


def machine_info(devices: list[torch.device], threads: int) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": [str(d) for d in devices],
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": list(os.getloadavg()),
    }


def print_loops(device: str, rows: list[dict[str, Any]], header: str) -> None:
    print(f"[{device}] loop comparison: {header}")
    print(
        f"[{device}] {'arch':7s} {'nasrl img/s':>12s} {'plain img/s':>12s} {'ratio':>6s} "
        f"{'val nasrl':>9s} {'val plain':>9s}"
    )
    for r in rows:
        print(
            f"[{device}] {r['arch']:7s} {r['nasrl']['images_per_s']:12.0f} "
            f"{r['plain']['images_per_s']:12.0f} {r['ratio']:5.2f}x "
            f"{r['nasrl']['validation_accuracy']:9.4f} {r['plain']['validation_accuracy']:9.4f}"
            + ("" if r["accuracy_within_noise"] else "  (accuracy gap beyond 2 standard errors)")
        )


def print_slots(device: str, rows: list[dict[str, Any]], header: str) -> None:
    print(f"[{device}] slots: {header}")
    print(
        f"[{device}] {'slots':>5s} {'children':>8s} {'seconds':>8s} {'children/h':>10s} "
        f"{'vs 1':>6s}"
    )
    for r in rows:
        ratio = f"{r['ratio_vs_1']:5.2f}x" if r["ratio_vs_1"] else "     -"
        print(
            f"[{device}] {r['slots']:5d} {r['children']:8d} {r['seconds']:8.1f} "
            f"{r['children_per_hour']:10.0f} {ratio}"
        )


def plot(report: dict[str, Any], path: Path) -> None:
    figure = Figure(figsize=(12, 5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    bars, lines = figure.subplots(1, 2)
    labels, width = [], 0.38
    for i, (device, row) in enumerate((d, r) for d, rows in report["loops"].items() for r in rows):
        labels.append(f"{row['arch']}\n{device}")
        for j, loop in enumerate(("nasrl", "plain")):
            bars.bar(
                i + (j - 0.5) * width,
                row[loop]["images_per_s"],
                width,
                color=("tab:orange", "tab:blue")[j],
                label=loop if i == 0 else None,
            )
        top = max(row["nasrl"]["images_per_s"], row["plain"]["images_per_s"])
        bars.annotate(f"{row['ratio']:.2f}x", (i, top), ha="center", va="bottom")
    bars.set_xticks(range(len(labels)), labels)
    if len(report["loops"]) > 1:  # a GPU's bars would flatten the CPU's
        bars.set_yscale("log")
    bars.set_ylabel("training images / s")
    bars.set_title(
        f"nasrl loop vs plain DataLoader loop ({report['settings']['dataset']}, "
        f"{report['settings']['epochs']} epochs)"
    )
    bars.legend(loc="best")
    for device, rows in report["slots"].items():
        xs = [r["slots"] for r in rows]
        ys = [r["children_per_hour"] for r in rows]
        lines.plot(xs, ys, marker="o", label=device)
        for x, y, r in zip(xs, ys, rows):
            if r["ratio_vs_1"]:
                lines.annotate(f"{r['ratio_vs_1']:.2f}x", (x, y), ha="center", va="bottom")
        lines.set_xticks(xs)
    lines.set_xlabel("trainer slots")
    lines.set_ylabel("children / hour")
    lines.set_title("one trainer process, small children")
    if len(report["slots"]) > 1:
        lines.set_yscale("log")
    else:
        lines.set_ylim(bottom=0)
    lines.legend(loc="best")
    for axes in (bars, lines):
        axes.grid(alpha=0.3)
    devices = " + ".join(report["loops"])
    figure.suptitle(f"trainer throughput on {devices}")
    figure.savefig(path, format="png")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto (CPU, and CUDA if any), cpu or cuda")
    p.add_argument("--slots", default="1,2", help="slot counts to compare, e.g. 1,2,4")
    p.add_argument("--children", type=int, default=6, help="children per slot")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the loop comparison")
    p.add_argument("--threads", type=int, default=0, help="torch threads, 0 = all cores")
    p.add_argument("--quick", action="store_true", help="one repeat of everything")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    devices, skipped = choose_devices(args.device)
    slot_counts = sorted({int(k) for k in args.slots.split(",")})
    repeats = 1 if args.quick else max(2, args.repeats)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)  # the same for both loops
    data = datasets.load(args.dataset)
    report: dict[str, Any] = {
        "benchmark": "trainer_throughput",
        "machine": machine_info(devices, threads),
        "settings": {
            "dataset": args.dataset,
            "epochs": args.epochs,
            "batch_size": 32,
            "repeats": repeats,
            "children_per_slot": args.children,
            "train_images": len(data.y_train),
            "validation_images": len(data.y_val),
            "timed": "model build to last validation accuracy; per-epoch validation "
            "in both loops; dataset loading excluded",
        },
        "gpu_skipped": skipped,
        "loops": {},
        "slots": {},
    }
    if skipped:
        print(skipped)
    load = report["machine"]["load_average_at_start"][0]
    if load > 0.5:
        print(
            f"[cpu] note: load average {load:.1f} on {os.cpu_count()} cores before the run; "
            "other processes share the CPU, so absolute numbers are noisy (ratios are paired)"
        )
    for device in devices:
        rows = compare_loops(data, device, args.epochs, repeats)
        report["loops"][str(device)] = rows
        print_loops(
            str(device),
            rows,
            f"{args.dataset}, {args.epochs} epochs, batch 32, "
            f"{threads} torch threads, {repeats} repeat(s), seeds 0..{repeats - 1}",
        )
    for device in devices:
        rows = compare_slots(
            args.dataset,
            str(device),
            slot_counts,
            args.children,
            args.epochs,
            1 if args.quick else 2,
        )
        report["slots"][str(device)] = rows
        print_slots(
            str(device),
            rows,
            f"{args.children} small children per slot, {args.epochs} epochs on {args.dataset}",
        )
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "trainer_throughput.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "trainer_throughput.png")
    print(
        f"[{' + '.join(report['loops'])}] wrote {args.out / 'trainer_throughput.json'} "
        f"and {args.out / 'trainer_throughput.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
