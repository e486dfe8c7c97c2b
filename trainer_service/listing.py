"""``Trainer/ListDatasets``: what each dataset a trainer can train on looks like — built-in
ones by their known shape, users' ones read (once, cached) to infer shape, classes, sizes and
normalisation."""

from __future__ import annotations

from pathlib import Path

from nasrl.core.datasets import DATASET_SHAPES
from protos import trainer_pb2
from trainer_service import data, user_data

__all__ = ["describe"]

_EMBEDDED = ("digits", "mnist5k")


def _builtin(name: str) -> trainer_pb2.DatasetInfo:
    s = DATASET_SHAPES[name]
    return trainer_pb2.DatasetInfo(
        name=name,
        source="embedded" if name in _EMBEDDED else "torchvision",
        channels=s.channels,
        height=s.height,
        width=s.width,
        classes=s.classes,
    )


def _user(name: str, data_dir: Path | None) -> trainer_pb2.DatasetInfo:
    path = user_data.find(data_dir, name)
    source = "npz" if path is not None and path.suffix == ".npz" else "image_folder"
    try:
        d = data.load(name, data_dir)
    except (data.DatasetInvalid, data.DatasetError, data.DatasetMissing) as exc:
        return trainer_pb2.DatasetInfo(
            name=name, source=source, path=str(path or ""), error=str(exc)
        )
    s = d.shape
    return trainer_pb2.DatasetInfo(
        name=name,
        source=d.source,
        channels=s.channels,
        height=s.height,
        width=s.width,
        classes=s.classes,
        train_examples=len(d.y_train),
        validation_examples=len(d.y_val),
        test_examples=len(d.y_test),
        mean=d.mean,
        std=d.std,
        path=d.origin,
        layout=d.layout,
        class_names=d.class_names,
    )


def describe(data_dir: Path | None, only: str = "") -> list[trainer_pb2.DatasetInfo]:
    """Built-in datasets, then users' datasets in ``data_dir``; just ``only`` when given."""
    builtin = [n for n in DATASET_SHAPES if not only or n == only]
    users = [
        n for n in user_data.names(data_dir) if n not in DATASET_SHAPES and (not only or n == only)
    ]
    return [_builtin(n) for n in builtin] + [_user(n, data_dir) for n in users]
