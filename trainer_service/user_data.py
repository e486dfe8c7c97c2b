"""Users' own datasets in the trainer's ``--data-dir``, named by their file or folder stem:

- ``NAME.npz`` with ``x_train`` and ``y_train`` (and optionally ``x_test``, ``y_test``): images
  N x C x H x W or N x H x W x C (the channel axis is the one of size 1, 3 or 4 next to the
  batch axis or at the end; N x H x W is one channel), uint8 (divided by 255) or float (taken
  as they are); labels integers 0 .. K-1.
- ``NAME/train/CLASS/*.png`` (torchvision's ``ImageFolder`` layout; optionally
  ``NAME/test/CLASS/...`` with the same classes): every image the same size; grayscale when
  every image is, else RGB.

Without a test split, a fixed-seed 20 % of the training images is held out as test, as for
the embedded datasets. Anything wrong raises ``DatasetInvalid`` with a sentence naming the
file and what is wrong with it.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DatasetInvalid", "UserArrays", "find", "names", "read"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class DatasetInvalid(ValueError):
    """A user's dataset file that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class UserArrays:
    """A user's dataset as N x C x H x W float arrays and integer labels (test may be None)."""

    source: str  # "npz" or "image_folder"
    path: Path
    layout: str  # "NCHW", "NHWC", "NHW" or "image files"
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: tuple[str, ...]


def find(data_dir: Path | None, name: str) -> Path | None:
    """The file or folder of user dataset ``name`` in ``data_dir``, if there is one."""
    if data_dir is None or not NAME.match(name):
        return None
    npz, folder = data_dir / f"{name}.npz", data_dir / name
    if npz.is_file():
        return npz
    if (folder / "train").is_dir():
        return folder
    return None


def names(data_dir: Path | None) -> list[str]:
    """Every user dataset in ``data_dir``, by name."""
    if data_dir is None or not data_dir.is_dir():
        return []
    found = {p.stem for p in data_dir.glob("*.npz") if p.is_file()}
    found |= {p.name for p in data_dir.iterdir() if (p / "train").is_dir()}
    return sorted(n for n in found if NAME.match(n))


def read(path: Path) -> UserArrays:
    """Read a ``.npz`` file or an image-folder tree; raises DatasetInvalid."""
    return _read_npz(path) if path.suffix == ".npz" else _read_folder(path)


# --- .npz -------------------------------------------------------------------------------------


def _read_npz(path: Path) -> UserArrays:
    try:
        if not zipfile.is_zipfile(path):  # np.load would try to unpickle it
            raise zipfile.BadZipFile("it is not a zip archive")
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetInvalid(
            f"{path} is not a readable .npz file ({exc}); save it with "
            "numpy.savez(path, x_train=..., y_train=...)"
        ) from exc
    except ValueError as exc:  # object arrays need pickle, which is never loaded
        raise DatasetInvalid(
            f"{path} holds an array of Python objects ({exc}); store numbers only"
        ) from exc
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise DatasetInvalid(
                f"{path} has no array {key!r} (it has "
                f"{', '.join(sorted(arrays)) or 'none'}); a dataset needs "
                "x_train and y_train, and may have x_test and y_test"
            )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetInvalid(f"{path} has only one of x_test and y_test; give both or neither")
    x_train, layout = _images(path, "x_train", arrays["x_train"])
    y_train = _labels(path, "y_train", arrays["y_train"], len(x_train))
    x_test = y_test = None
    if "x_test" in arrays:
        x_test, test_layout = _images(path, "x_test", arrays["x_test"], prefer=layout)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DatasetInvalid(
                f"{path}: x_test images are {_chw(x_test)} ({test_layout}) but x_train images "
                f"are {_chw(x_train)} ({layout}); both splits need the same image shape"
            )
        y_test = _labels(path, "y_test", arrays["y_test"], len(x_test))
    classes = int(y_train.max()) + 1
    if y_test is not None and int(y_test.max()) >= classes:
        raise DatasetInvalid(
            f"{path}: y_test has label {int(y_test.max())} but y_train's "
            f"labels stop at {classes - 1}; every test class must be trained"
        )
    return UserArrays(
        "npz", path, layout, x_train, y_train, x_test, y_test, tuple(str(i) for i in range(classes))
    )


def _chw(x: np.ndarray) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _images(path: Path, key: str, x: np.ndarray, prefer: str = "NCHW") -> tuple[np.ndarray, str]:
    """``x`` as float32 N x C x H x W and the layout it was given in; where both axis 1 and
    axis 3 could be channels, ``prefer`` decides (NCHW, or the training split's layout)."""
    if x.dtype.kind not in "uif":
        raise DatasetInvalid(f"{path}: {key} has dtype {x.dtype}; use uint8 (0..255) or float")
    if x.ndim == 3:
        x, layout = x[:, None], "NHW"
    elif (
        x.ndim == 4
        and x.shape[1] in (1, 3, 4)
        and not (prefer == "NHWC" and x.shape[3] in (1, 3, 4))
    ):
        layout = "NCHW"
    elif x.ndim == 4 and x.shape[3] in (1, 3, 4):
        x, layout = x.transpose(0, 3, 1, 2), "NHWC"
    else:
        raise DatasetInvalid(
            f"{path}: {key} has shape {x.shape}; images must be N x C x H x W or N x H x W x C "
            "with 1, 3 or 4 channels, or N x H x W"
        )
    if len(x) == 0:
        raise DatasetInvalid(f"{path}: {key} holds no images")
    out = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    if not np.isfinite(out).all():
        raise DatasetInvalid(f"{path}: {key} contains NaN or infinite values")
    return out, layout


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DatasetInvalid(
            f"{path}: {key} has shape {y.shape} but there are {n} images; "
            "labels must be one integer per image"
        )
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise DatasetInvalid(
            f"{path}: {key} holds fractional values; labels are class numbers 0 .. K-1"
        )
    if y.dtype.kind not in "uif":
        raise DatasetInvalid(f"{path}: {key} has dtype {y.dtype}; labels are integers 0 .. K-1")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        raise DatasetInvalid(
            f"{path}: {key} has the negative label {int(labels.min())}; "
            "labels are class numbers 0 .. K-1"
        )
    if int(labels.max()) > 100_000:
        raise DatasetInvalid(
            f"{path}: {key} has label {int(labels.max())}; at most 100,000 classes"
        )
    return labels


# --- image folders ----------------------------------------------------------------------------


def _read_folder(root: Path) -> UserArrays:
    classes = _classes(root / "train")
    train, y_train, files = _load_split(root / "train", classes)
    test: list[np.ndarray] | None = None
    y_test = None
    if (root / "test").is_dir():
        test_classes = _classes(root / "test")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DatasetInvalid(
                f"{root / 'test'} has class folder(s) {', '.join(unknown)} "
                f"that {root / 'train'} does not have"
            )
        test, y_test, test_files = _load_split(root / "test", classes)
        if not test:
            raise DatasetInvalid(
                f"{root / 'test'} holds no images; remove it (a fixed-seed "
                "20 % of train is then the test split) or fill it"
            )
        files += test_files
    gray = all(mode in ("L", "1", "I;16", "I") for _, mode in files)
    channels = 1 if gray else 3
    x_test = None if test is None else _to_channels(test, channels)
    return UserArrays(
        "image_folder",
        root,
        "image files",
        _to_channels(train, channels),
        y_train,
        x_test,
        y_test,
        tuple(classes),
    )


def _classes(split: Path) -> list[str]:
    classes = sorted(p.name for p in split.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetInvalid(
            f"{split} must hold one folder per class (at least 2), with the "
            f"images inside: {split}/CLASS/*.png; it has {len(classes)}"
        )
    return classes


def _load_split(
    split: Path, classes: list[str]
) -> tuple[list[np.ndarray], np.ndarray, list[tuple[Path, str]]]:
    from PIL import Image, UnidentifiedImageError

    images, labels, files = [], [], []
    size: tuple[tuple[int, int], Path] | None = None
    for label, name in enumerate(classes):
        if not (split / name).is_dir():  # a test split may lack a class
            continue
        paths = sorted(
            p
            for p in (split / name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not paths and split.name == "train":
            raise DatasetInvalid(f"{split / name} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        for p in paths:
            try:
                with Image.open(p) as im:
                    im.load()
                    mode, pixels = im.mode, im
                    if size is None:
                        size = (im.size, p)
                    elif im.size != size[0]:
                        raise DatasetInvalid(
                            f"{p} is {im.size[0]}x{im.size[1]} pixels but {size[1]} is "
                            f"{size[0][0]}x{size[0][1]}; every image must have the same size "
                            "(resize them first)"
                        )
                    array = _pixels(pixels)
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise DatasetInvalid(f"{p} is not a readable image ({exc})") from exc
            images.append(array)
            labels.append(label)
            files.append((p, mode))
    return images, np.asarray(labels, dtype=np.int64), files


def _pixels(im: object) -> np.ndarray:
    """H x W x C float32 in [0, 1]: grayscale kept as one channel, anything else as RGB."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    if im.mode in ("I;16", "I"):
        a = np.asarray(im, dtype=np.float32)
        return (a / (65535.0 if im.mode == "I;16" else max(float(a.max()), 1.0)))[:, :, None]
    if im.mode in ("L", "1"):
        return (np.asarray(im.convert("L"), dtype=np.float32) / 255.0)[:, :, None]
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _to_channels(images: list[np.ndarray], channels: int) -> np.ndarray:
    """N x C x H x W; grayscale images repeated to RGB when other images are in colour."""
    x = np.stack([a if a.shape[2] == channels else np.repeat(a, channels, axis=2) for a in images])
    return x.transpose(0, 3, 1, 2).copy()
