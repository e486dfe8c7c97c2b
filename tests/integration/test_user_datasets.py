"""Users' datasets: a trainer serves NAME.npz and NAME/train/CLASS/*.png from --data-dir,
reports their shape, classes and normalisation (ListDatasets), trains them over gRPC, and
answers bad files with FAILED_PRECONDITION naming the file; `nasrl search` learns the shape
from the trainer so the controller checks proposals before training."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from nasrl.core.results import TrainSettings
from nasrl.rpc.client import ControllerClient, NasrlError, TrainerClient
from protos import controller_pb2 as cpb
from tests.helpers import nasrl_cli

from .conftest import start_controller, start_trainer

SIZE = 8  # 8x8 images keep a default-space child to a second or two


def _blobs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Separable images: class k is bright in the k-th horizontal band (plus noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, SIZE, SIZE, 3)).astype(np.uint8)
    band = SIZE // classes
    for i, k in enumerate(y):
        x[i, k * band : (k + 1) * band, :, :] += 180
    return x, y


def _write_npz(folder: Path) -> None:
    x, y = _blobs(200, 4, 0)
    xt, yt = _blobs(60, 4, 1)
    np.savez(folder / "bands.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)  # NHWC uint8


def _write_folder(
    folder: Path, name: str = "shapes", classes: tuple[str, ...] = ("dark", "light"), n: int = 20
) -> Path:
    root = folder / name
    for k, cls in enumerate(classes):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(n):
            value = 40 + 150 * k + (i % 7)
            Image.new("RGB", (SIZE, SIZE), (value, 255 - value, 90)).save(
                root / "train" / cls / f"{i}.png"
            )
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("data")
    _write_npz(folder)
    _write_folder(folder)
    bad = folder  # malformed datasets live beside the good ones
    np.savez(bad / "nolabels.npz", x_train=np.zeros((20, 8, 8), np.uint8))
    np.savez(
        bad / "mismatch.npz", x_train=np.zeros((20, 8, 8), np.uint8), y_train=np.zeros(19, np.int64)
    )
    np.savez(
        bad / "fivechannels.npz",
        x_train=np.zeros((20, 5, 8, 8), np.float32),
        y_train=np.zeros(20, np.int64),
    )
    (bad / "notzip.npz").write_bytes(b"this is not a zip file")
    root = _write_folder(bad, "ragged")
    Image.new("RGB", (SIZE + 1, SIZE), (0, 0, 0)).save(root / "train" / "light" / "odd.png")
    root = _write_folder(bad, "garbage")
    (root / "train" / "dark" / "broken.png").write_bytes(b"not a png")
    (bad / "oneclass" / "train" / "only").mkdir(parents=True)
    trainer, _ = start_trainer(data_dir=folder)
    controller, searches = start_controller(str(tmp_path_factory.mktemp("db") / "c.db"))
    yield {
        "trainer": f"127.0.0.1:{trainer.port}",
        "controller": f"127.0.0.1:{controller.port}",
        "folder": str(folder),
    }
    controller.stop(None)
    trainer.stop(None)
    searches.store.close()


def test_listing_reports_inferred_shapes_classes_and_normalisation(served: dict[str, str]) -> None:
    with TrainerClient(served["trainer"]) as t:
        listed = {d.name: d for d in t.list_datasets()}
    assert {"digits", "mnist5k", "cifar10"} <= set(listed)
    bands, shapes = listed["bands"], listed["shapes"]
    assert (bands.source, bands.layout, bands.error) == ("npz", "NHWC", "")
    assert (bands.channels, bands.height, bands.width, bands.classes) == (3, SIZE, SIZE, 4)
    assert bands.train_examples + bands.validation_examples == 200 and bands.test_examples == 60
    assert len(bands.mean) == len(bands.std) == 3 and 0.1 < bands.mean[0] < 0.9
    assert (shapes.source, shapes.classes, list(shapes.class_names)) == (
        "image_folder",
        2,
        ["dark", "light"],
    )
    assert (shapes.channels, shapes.height, shapes.width) == (3, SIZE, SIZE)
    assert shapes.test_examples == 8  # no test/ folder: a fixed-seed 20 % of 40 images
    assert "nolabels.npz has no array 'y_train'" in listed["nolabels"].error


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("nolabels", "nolabels.npz has no array 'y_train' (it has x_train)"),
        ("mismatch", "mismatch.npz: y_train has shape (19,) but there are 20 images"),
        ("fivechannels", "fivechannels.npz: x_train has shape (20, 5, 8, 8); images must be"),
        ("notzip", "notzip.npz is not a readable .npz file"),
        ("ragged", "odd.png is 9x8 pixels but"),
        ("garbage", "broken.png is not a readable image"),
        ("oneclass", "must hold one folder per class (at least 2)"),
    ],
)
def test_malformed_files_get_failed_precondition_naming_the_file(
    served: dict[str, str], name: str, fragment: str
) -> None:
    with TrainerClient(served["trainer"]) as t, pytest.raises(NasrlError) as err:
        t.train("C(4,3,1) GAP", name, TrainSettings(epochs=1))
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert fragment in str(err.value) and served["folder"] in str(err.value)


def test_an_unknown_name_says_where_datasets_go(served: dict[str, str]) -> None:
    with TrainerClient(served["trainer"]) as t, pytest.raises(NasrlError) as err:
        t.train("C(4,3,1) GAP", "nowhere", TrainSettings(epochs=1))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "put nowhere.npz or nowhere/train/CLASS/*.png in the trainer's --data-dir" in str(
        err.value
    )


@pytest.mark.parametrize("name", ["bands", "shapes"])
def test_a_search_on_a_users_dataset_runs_end_to_end(
    served: dict[str, str], name: str, tmp_path: Path
) -> None:
    """`nasrl search --dataset NAME` reads the shape from the trainer, the controller checks
    proposals against it, the trainer trains on the user's files, the export has its shape."""
    run = nasrl_cli(
        "search",
        "--controller",
        served["controller"],
        "--trainers",
        served["trainer"],
        "--dataset",
        name,
        "--agent",
        "random",
        "--budget",
        "2",
        "--epochs",
        "2",
        "--json",
        "--quiet",
        "--export-best",
        str(tmp_path / "best.ts"),
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["evaluated"] == 2 and summary["failed"] == 0
    assert summary["best"]["accuracy"] > 0.5  # the classes are easy to tell apart
    with ControllerClient(served["controller"]) as c:
        search = c.get_search(summary["search_id"])
    classes = 4 if name == "bands" else 2
    shape = search.spec.dataset_shape
    assert shape is not None
    assert (shape.channels, shape.height, shape.classes) == (3, SIZE, classes)
    import torch

    logits = torch.jit.load(str(tmp_path / "best.ts"))(torch.zeros(2, 3, SIZE, SIZE))
    assert logits.shape == (2, classes)


def test_the_controller_checks_proposals_against_the_given_shape(served: dict[str, str]) -> None:
    with ControllerClient(served["controller"]) as c:
        with pytest.raises(NasrlError) as err:
            c.create_search(dataset="bands")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "give its dataset_shape" in str(err.value)
        shape = cpb.DatasetShape(channels=3, height=SIZE, width=SIZE, classes=4)
        with pytest.raises(NasrlError) as err:  # a prior whose classifier does not fit
            c.create_search(
                dataset="bands",
                dataset_shape=shape,
                warm_start=cpb.WarmStart(architectures=["C(24,3,1) SM(10)"]),
            )
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "SM(10)" in str(err.value)
        with pytest.raises(NasrlError) as err:
            c.create_search(dataset="digits", dataset_shape=shape)
        assert "does not match the built-in dataset 'digits'" in str(err.value)
        with pytest.raises(NasrlError) as err:
            c.create_search(
                dataset="bands",
                dataset_shape=cpb.DatasetShape(channels=3, height=0, width=SIZE, classes=4),
            )
        assert "dataset_shape.height must be between 1 and 4,096, got 0" in str(err.value)


def test_nasrl_search_names_a_dataset_no_trainer_has(served: dict[str, str]) -> None:
    run = nasrl_cli(
        "search",
        "--controller",
        served["controller"],
        "--trainers",
        served["trainer"],
        "--dataset",
        "nowhere",
        "--budget",
        "1",
        "--quiet",
    )
    assert run.returncode == 1 and "no trainer in --trainers serves it" in run.stderr
    run = nasrl_cli(
        "search",
        "--controller",
        served["controller"],
        "--trainers",
        served["trainer"],
        "--dataset",
        "mismatch",
        "--budget",
        "1",
        "--quiet",
    )
    assert run.returncode == 1 and "FAILED_PRECONDITION" in run.stderr
    assert "mismatch.npz: y_train has shape (19,)" in run.stderr


def test_nasrl_datasets_lists_them(served: dict[str, str]) -> None:
    run = nasrl_cli("datasets", "--trainer", served["trainer"], "--json")
    assert run.returncode == 0, run.stderr
    listed = {d["name"]: d for d in json.loads(run.stdout)}
    assert listed["bands"]["classes"] == 4 and listed["shapes"]["class_names"] == ["dark", "light"]
