"""The trainer's store of recent children's trained weights: one ``torch.save`` file per
weights id in a folder, bounded in bytes (the oldest files go first).

Files are written to a temporary name and renamed, so a reader never sees half a file and a
kill -9 leaves at most a stray ``.tmp`` (removed at the next start). The folder may outlive
the process (``--weights-dir``): the store picks up what is there.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from pathlib import Path

import torch

__all__ = ["WeightStore", "valid_id"]

log = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{32}")


def valid_id(weights_id: str) -> bool:
    """True for a well-formed id (32 lower-case hex digits); nothing else names a file."""
    return bool(_ID.fullmatch(weights_id))


class WeightStore:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        for stray in folder.glob("*.tmp"):
            stray.unlink(missing_ok=True)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _path(self, weights_id: str) -> Path:
        if not valid_id(weights_id):
            raise ValueError(f"weights id must be 32 hex digits, got {weights_id[:80]!r}")
        return self.folder / f"{weights_id}.pt"

    def put(self, weights_id: str, state: dict[str, torch.Tensor], architecture: str) -> bool:
        """Keep ``state`` under ``weights_id``; False when it does not fit the budget."""
        buffer = io.BytesIO()
        torch.save({"architecture": architecture, "state_dict": state}, buffer)
        data = buffer.getvalue()
        if not self.enabled or len(data) > self.max_bytes:
            return False
        path = self._path(weights_id)
        with self._lock:
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self._evict(keep=path)
        return True

    def get(self, weights_id: str) -> bytes | None:
        """The saved file's bytes, or None when this store does not hold it."""
        path = self._path(weights_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        path.touch()  # recently asked for: evicted last
        return data

    def usage(self) -> tuple[int, int]:
        """How many weights files are kept and their bytes."""
        sizes = []
        for f in self.folder.glob("*.pt"):
            try:
                sizes.append(f.stat().st_size)
            except FileNotFoundError:  # evicted meanwhile
                continue
        return len(sizes), sum(sizes)

    def _evict(self, keep: Path) -> None:
        files = sorted(self.folder.glob("*.pt"), key=lambda f: f.stat().st_mtime)
        total = sum(f.stat().st_size for f in files)
        for f in files:
            if total <= self.max_bytes:
                break
            if f != keep:
                total -= f.stat().st_size
                f.unlink(missing_ok=True)
                log.info("evicted the weights %s (store over %d bytes)", f.stem, self.max_bytes)
