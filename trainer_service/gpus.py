"""One GPU per trainer replica on a multi-GPU host (``--device cuda:any``).

Every replica sees every GPU and a shared lock folder (``--gpu-lock-dir``). A replica claims
GPU ``i`` by holding an exclusive ``fcntl.flock`` on ``gpu{i}.lock`` for its whole life; the
kernel drops the lock when the process ends, however it ends (``kill -9`` included), so a
crashed replica never keeps its GPU. A replica that finds every GPU claimed waits, checking
again every ``poll`` seconds, until one is freed.

``--device cuda:all`` is the other way: one trainer, every GPU, slot ``i`` on ``cuda:{i % n}``
(no locks; do not mix it with ``cuda:any`` replicas on one host).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GpuClaim",
    "GpuLockError",
    "prepare_lock_dir",
    "try_claim",
    "wait_for_gpu",
    "spread",
    "ANY",
    "ALL",
]

log = logging.getLogger(__name__)

ANY = "cuda:any"
ALL = "cuda:all"


class GpuLockError(OSError):
    """The lock folder cannot be created or written; the message says which and why."""


@dataclass
class GpuClaim:
    """An exclusive claim on GPU ``index``; it lasts while ``fd`` is open."""

    index: int
    path: Path
    fd: int

    @property
    def device(self) -> str:
        return f"cuda:{self.index}"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def prepare_lock_dir(lock_dir: Path) -> Path:
    """The lock folder, created if needed; GpuLockError says why it cannot be."""
    hint = "give a writable --gpu-lock-dir shared by every trainer on this host"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GpuLockError(
            f"cannot create the GPU lock folder {lock_dir}: {exc.strerror}; {hint}"
        ) from exc
    if not os.access(lock_dir, os.W_OK | os.X_OK):
        raise GpuLockError(f"the GPU lock folder {lock_dir} is not writable; {hint}")
    return lock_dir


def _open(path: Path) -> int:
    """The lock file, created if missing; read-only when another user created it (flock
    needs no write access)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        pass
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise GpuLockError(f"cannot open the GPU lock {path}: {exc.strerror}") from exc


def try_claim(lock_dir: Path, count: int) -> GpuClaim | None:
    """Claim the first of GPUs 0 … count−1 that no other process holds, or None."""
    lock_dir = prepare_lock_dir(lock_dir)
    for index in range(count):
        path = lock_dir / f"gpu{index}.lock"
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):  # for people: who holds it (a read-only fd can't)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return GpuClaim(index, path, fd)
    return None


def wait_for_gpu(
    lock_dir: Path,
    count: int,
    stop: threading.Event,
    poll: float = 1.0,
    on_wait: Callable[[], None] | None = None,
) -> GpuClaim | None:
    """Claim a free GPU, waiting while all ``count`` are claimed; None once ``stop`` is set.
    ``on_wait`` is called once, the first time no GPU is free."""
    waited = False
    while not stop.is_set():
        claim = try_claim(lock_dir, count)
        if claim is not None:
            return claim
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        stop.wait(poll)
    return None


def spread(slots: int, count: int) -> list[str]:
    """``cuda:all``: the device of each slot, round-robin over ``count`` GPUs."""
    return [f"cuda:{i % count}" for i in range(slots)]
