"""Trainer configuration: one frozen dataclass, from flags and NASRL_* environment variables
(flags win), validated once."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nasrl.core.shapes import Limits
from nasrl.rpc import rpc
from nasrl.rpc.security import ServerSecurity, add_server_flags, server_security

__all__ = ["TrainerConfig", "parse_args", "DEFAULT_GPU_LOCK_DIR"]

DEFAULT_GPU_LOCK_DIR = Path("/var/lock/nasrl-gpus")
DEVICE = re.compile(r"auto|cpu|mps|cuda|cuda:(\d+|any|all)")


@dataclass(frozen=True)
class TrainerConfig:
    host: str = "127.0.0.1"
    port: int = 50052
    data_dir: Path | None = None
    device: str = "auto"
    slots: int = 1
    grace: float = 30.0
    max_seconds: float | None = None
    threads: int = 0
    simulate: float | None = None  # seconds per simulated child; None = really train
    table: Path | None = None  # answer from this tabular benchmark instead of training
    time_scale: float = 0.0  # table mode: sleep the recorded seconds times this
    supernet: bool = False  # train and evaluate children under shared weights (ENAS)
    supernet_steps: int = 50  # shared-weight steps per child when the request says none
    supernet_dir: Path | None = None  # supernet checkpoints; None = none kept
    supernet_checkpoint_every: int = 100  # steps between checkpoints (0: only at shutdown)
    weights_dir: Path | None = None  # None: a temporary folder removed at exit
    weights_max_mb: float = 1024.0  # trained weights kept for GetWeights; 0 keeps none
    gpu_lock_dir: Path = DEFAULT_GPU_LOCK_DIR  # cuda:any: one flock file per GPU, host-wide
    metrics_port: int | None = None  # Prometheus /metrics; None = off, 0 = a free port
    limits: Limits = field(default_factory=Limits)
    security: ServerSecurity = field(default_factory=ServerSecurity)
    log_level: str = "INFO"


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"NASRL_{name}", default)


def parse_args(argv: list[str] | None = None) -> TrainerConfig:
    p = argparse.ArgumentParser(
        prog="python -m trainer_service",
        description="nasrl trainer: trains child networks sent over gRPC (nasrl.v1.Trainer).",
    )
    rpc.add_listen_flags(p, "trainer", 50052)
    p.add_argument(
        "--data-dir",
        type=Path,
        default=_env("DATA_DIR", None),
        help="folder with torchvision datasets (mnist, cifar10, ...) and users' "
        "datasets: NAME.npz or NAME/train/CLASS/*.png [NASRL_DATA_DIR]",
    )
    p.add_argument(
        "--device",
        default=_env("DEVICE", "auto"),
        help="auto, cpu, cuda, cuda:N; cuda:any claims one free GPU of the host for "
        "this trainer's life (waiting, NOT_SERVING, while all are claimed); cuda:all "
        "spreads the slots over every GPU [NASRL_DEVICE]",
    )
    p.add_argument(
        "--gpu-lock-dir",
        type=Path,
        default=_env("GPU_LOCK_DIR", str(DEFAULT_GPU_LOCK_DIR)),
        help="with --device cuda:any: the folder, shared by every trainer of the host, "
        "that holds one lock file per GPU (default %(default)s) [NASRL_GPU_LOCK_DIR]",
    )
    p.add_argument(
        "--slots",
        type=int,
        default=int(_env("SLOTS", "1") or 1),
        help="children trained at once; more calls get RESOURCE_EXHAUSTED [NASRL_SLOTS]",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=float(_env("GRACE", "30") or 30),
        help="seconds running trainings may finish after SIGTERM [NASRL_GRACE]",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=_env("MAX_SECONDS", None),
        help="wall-clock limit per child; training stops after the epoch that "
        "crosses it [NASRL_MAX_SECONDS]",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(_env("THREADS", "0") or 0),
        help="CPU threads for training; 0 = cores / slots [NASRL_THREADS]",
    )
    p.add_argument(
        "--simulate",
        type=float,
        metavar="SECONDS",
        default=_env("SIMULATE", None),
        help="benchmark mode: do not train; sleep SECONDS per child and return a "
        "deterministic surrogate accuracy (device 'simulated') [NASRL_SIMULATE]",
    )
    p.add_argument(
        "--table",
        type=Path,
        default=_env("TABLE", None),
        help="benchmark mode: answer Train from this tabular benchmark "
        "(bench/build_table.py) instead of training; device 'table' [NASRL_TABLE]",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=float(_env("TIME_SCALE", "0") or 0),
        help="with --table: sleep each recorded epoch's seconds times this "
        "(default 0: answer at once) [NASRL_TIME_SCALE]",
    )
    p.add_argument(
        "--supernet",
        action="store_true",
        default=(_env("SUPERNET", "") or "").lower() in ("1", "true", "yes", "on"),
        help="weight sharing (ENAS): train each child a few steps on a supernet shared by "
        "every child of its space and return its accuracy under the shared weights, "
        "marked evaluation SHARED [NASRL_SUPERNET=1]",
    )
    p.add_argument(
        "--supernet-steps",
        type=int,
        default=int(_env("SUPERNET_STEPS", "50") or 50),
        help="with --supernet: shared-weight steps per child when TrainRequest.shared.steps "
        "is 0 (default %(default)s) [NASRL_SUPERNET_STEPS]",
    )
    p.add_argument(
        "--supernet-dir",
        type=Path,
        default=_env("SUPERNET_DIR", None),
        help="with --supernet: folder of the supernets' checkpoints, loaded again by a "
        "trainer restarted on it (default: none kept) [NASRL_SUPERNET_DIR]",
    )
    p.add_argument(
        "--supernet-checkpoint-every",
        type=int,
        default=int(_env("SUPERNET_CHECKPOINT_EVERY", "100") or 100),
        help="with --supernet-dir: checkpoint a supernet every this many steps (and at "
        "shutdown); a kill -9 loses at most the steps since the last one "
        "[NASRL_SUPERNET_CHECKPOINT_EVERY]",
    )
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=_env("WEIGHTS_DIR", None),
        help="folder for the trained weights of recent children, served by "
        "GetWeights (default: a temporary folder removed at exit) [NASRL_WEIGHTS_DIR]",
    )
    p.add_argument(
        "--weights-max-mb",
        type=float,
        default=float(_env("WEIGHTS_MAX_MB", "1024") or 1024),
        help="megabytes of trained weights kept, oldest evicted first; 0 keeps none "
        "[NASRL_WEIGHTS_MAX_MB]",
    )
    add_server_flags(p)
    rpc.add_metrics_flag(p)
    args = p.parse_args(argv)
    rpc.check_metrics_port(p, args.metrics_port)
    if not 0 <= args.weights_max_mb <= 1e7:
        p.error(f"--weights-max-mb must be between 0 and 10000000, got {args.weights_max_mb}")
    if (
        args.weights_dir is not None
        and Path(args.weights_dir).exists()
        and not Path(args.weights_dir).is_dir()
    ):
        p.error(f"--weights-dir {args.weights_dir} exists and is not a folder")
    max_slots = 4096 if args.simulate is not None or args.table else 64
    if args.table is not None and args.simulate is not None:
        p.error("--table and --simulate are two different benchmark modes; give one")
    if args.supernet and (args.table is not None or args.simulate is not None):
        p.error("--supernet trains for real; it cannot be combined with --table or --simulate")
    if not 1 <= args.supernet_steps <= 100_000:
        p.error(f"--supernet-steps must be between 1 and 100000, got {args.supernet_steps}")
    if args.supernet_checkpoint_every < 0:
        p.error(
            f"--supernet-checkpoint-every must be 0 or more, got {args.supernet_checkpoint_every}"
        )
    if args.supernet_dir is not None and Path(args.supernet_dir).exists():
        if not Path(args.supernet_dir).is_dir():
            p.error(f"--supernet-dir {args.supernet_dir} exists and is not a folder")
    if args.table is not None and not Path(args.table).is_file():
        p.error(f"--table {args.table} is not a file")
    if not 0 <= args.time_scale <= 1000:
        p.error(f"--time-scale must be between 0 and 1000, got {args.time_scale}")
    if not 1 <= args.slots <= max_slots:
        p.error(f"--slots must be between 1 and {max_slots}, got {args.slots}")
    if args.simulate is not None and not 0 <= float(args.simulate) <= 86400:
        p.error(f"--simulate must be between 0 and 86400 seconds, got {args.simulate}")
    rpc.check_listen(p, args.port)
    if not DEVICE.fullmatch(args.device):
        p.error(
            f"--device must be auto, cpu, cuda, cuda:N, cuda:any or cuda:all, got {args.device!r}"
        )
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        p.error(f"--data-dir {args.data_dir} is not a folder")
    return TrainerConfig(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        device=args.device,
        slots=args.slots,
        grace=args.grace,
        max_seconds=float(args.max_seconds) if args.max_seconds else None,
        threads=max(0, args.threads),
        simulate=float(args.simulate) if args.simulate is not None else None,
        table=Path(args.table) if args.table else None,
        time_scale=float(args.time_scale),
        supernet=bool(args.supernet),
        supernet_steps=args.supernet_steps,
        supernet_dir=Path(args.supernet_dir) if args.supernet_dir else None,
        supernet_checkpoint_every=args.supernet_checkpoint_every,
        weights_dir=Path(args.weights_dir) if args.weights_dir else None,
        weights_max_mb=float(args.weights_max_mb),
        gpu_lock_dir=Path(args.gpu_lock_dir),
        metrics_port=args.metrics_port,
        security=server_security(args),
        log_level=rpc.log_level_from_env(p),
    )
