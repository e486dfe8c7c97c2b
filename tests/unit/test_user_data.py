"""Users' .npz datasets: every documented layout and dtype gives the same N x C x H x W
floats; a test split must match the training images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainer_service import data, user_data

RNG = np.random.default_rng(0)
NHWC = RNG.integers(0, 256, (30, 6, 5, 3)).astype(np.uint8)
LABELS = np.arange(30) % 3


@pytest.mark.parametrize(
    ("x", "layout"),
    [
        (NHWC, "NHWC"),
        (NHWC.transpose(0, 3, 1, 2), "NCHW"),
        (NHWC.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, "NCHW"),
    ],
)
def test_layouts_and_dtypes_read_alike(tmp_path: Path, x: np.ndarray, layout: str) -> None:
    np.savez(tmp_path / "d.npz", x_train=x, y_train=LABELS)
    arrays = user_data.read(tmp_path / "d.npz")
    assert arrays.layout == layout and arrays.x_train.shape == (30, 3, 6, 5)
    np.testing.assert_allclose(arrays.x_train, NHWC.transpose(0, 3, 1, 2) / 255.0, atol=1e-6)
    assert arrays.class_names == ("0", "1", "2")


def test_grayscale_nhw_and_float_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", x_train=NHWC[..., 0], y_train=LABELS.astype(np.float64))
    d = data.load("g", tmp_path)
    assert (d.shape.channels, d.shape.height, d.shape.width, d.shape.classes) == (1, 6, 5, 3)
    assert d.layout == "NHW" and d.source == "npz" and len(d.mean) == 1


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"x_test": NHWC[:5, :4], "y_test": LABELS[:5]}, "x_test images are 3x4x5 (NHWC)"),
        ({"x_test": NHWC[:5]}, "only one of x_test and y_test"),
        ({"x_test": NHWC[:5], "y_test": np.array([0, 1, 2, 3, 0])}, "y_test has label 3"),
    ],
)
def test_a_test_split_must_fit_the_training_split(
    tmp_path: Path, extra: dict[str, np.ndarray], fragment: str
) -> None:
    arrays: dict[str, Any] = {"x_train": NHWC, "y_train": LABELS, **extra}
    np.savez(tmp_path / "t.npz", **arrays)
    with pytest.raises(
        user_data.DatasetInvalid, match=fragment.replace("(", r"\(").replace(")", r"\)")
    ):
        user_data.read(tmp_path / "t.npz")


def test_names_are_file_and_folder_stems(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x_train=NHWC, y_train=LABELS)
    (tmp_path / "b" / "train").mkdir(parents=True)
    (tmp_path / "c").mkdir()  # no train/: not a dataset (e.g. torchvision's own folders)
    assert user_data.names(tmp_path) == ["a", "b"]
    assert user_data.find(tmp_path, "../a") is None
