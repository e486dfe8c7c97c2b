"""The embedded datasets: shapes agree with nasrl.core.datasets, splits are fixed and disjoint,
and local datasets that are missing say where their files must be."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasrl.core.datasets import DATASET_SHAPES, input_shape
from trainer_service import data


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_embedded_shapes_and_splits(name: str) -> None:
    d = data.load(name)
    assert d.shape == DATASET_SHAPES[name]
    n_train, n_val = len(d.y_train), len(d.y_val)
    assert n_val == pytest.approx(0.2 * (n_train + n_val), abs=1)
    assert d.x_train.shape[1:] == (d.shape.channels, d.shape.height, d.shape.width)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    # normalised with training statistics
    assert abs(float(d.x_train.mean())) < 0.05 and abs(float(d.x_train.std()) - 1) < 0.05
    # every class present in every split
    for y in (d.y_train, d.y_val, d.y_test):
        assert set(y.tolist()) == set(range(d.shape.classes))


def test_split_indices_are_disjoint_and_complete() -> None:
    keep, held = data._split(1797, 0.2)
    assert len(held) == 359 and not set(keep) & set(held)
    assert sorted([*keep, *held]) == list(range(1797))


def test_splits_are_fixed_across_loads() -> None:
    a = data._digits(None)
    b = data._digits(None)
    assert torch.equal(a.y_val, b.y_val) and torch.equal(a.x_test, b.x_test)


def test_unknown_dataset() -> None:
    with pytest.raises(data.DatasetError, match="unknown dataset 'imagenet'"):
        data.load("imagenet")
    with pytest.raises(KeyError, match="unknown dataset"):
        input_shape("imagenet")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"])
def test_missing_local_dataset_says_where(name: str, tmp_path: Path) -> None:
    with pytest.raises(data.DatasetMissing, match="--data-dir"):
        data.load(name, None)
    with pytest.raises(data.DatasetMissing, match=str(tmp_path / name)):
        data.load(name, tmp_path)
