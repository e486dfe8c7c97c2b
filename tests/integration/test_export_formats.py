"""nasrl export: a finished search's best (or N-th) network with its trained weights as ONNX,
TorchScript or a Python module; onnxruntime and torch.jit.load give the trainer's logits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nasrl.rpc.client import ControllerClient
from protos import controller_pb2 as cpb
from protos import trainer_pb2 as tpb
from tests.helpers import load_module, nasrl_cli
from trainer_service import data

from .conftest import start_controller, start_trainer


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A finished 3-child search on digits, run by `nasrl search --export-best best.onnx`."""
    folder = tmp_path_factory.mktemp("export")
    trainer, _ = start_trainer()
    controller, searches = start_controller(str(folder / "c.db"))
    env = {
        "controller": f"127.0.0.1:{controller.port}",
        "trainer": f"127.0.0.1:{trainer.port}",
        "folder": folder,
    }
    with ControllerClient(str(env["controller"])) as c:  # a small space: small children
        sid = c.create_search(
            agent=cpb.AgentSpec(name="random"),
            dataset="digits",
            budget=3,
            seed=1,
            space=cpb.SearchSpace(
                zoph=cpb.ZophSpace(filter_sizes=[3], strides=[1, 2], filters=[8, 16], max_layers=2)
            ),
            training=tpb.TrainingConfig(epochs=1),
        ).search_id
    run = nasrl_cli(
        "search",
        "--resume",
        sid,
        "--controller",
        str(env["controller"]),
        "--trainers",
        str(env["trainer"]),
        "--json",
        "--quiet",
        "--export-best",
        str(folder / "best.onnx"),
    )
    assert run.returncode == 0, run.stderr
    env["summary"] = json.loads(run.stdout)
    with ControllerClient(str(env["controller"])) as c:
        env["entries"] = c.leaderboard(env["summary"]["search_id"])  # type: ignore[index]
    yield env
    controller.stop(None)
    trainer.stop(None)
    searches.store.close()


def _export(env: dict[str, object], *args: str) -> dict[str, object]:
    sid = env["summary"]["search_id"]  # type: ignore[index]
    run = nasrl_cli(
        "export",
        sid,
        "--controller",
        str(env["controller"]),
        "--trainers",
        str(env["trainer"]),
        "--json",
        *args,
    )
    assert run.returncode == 0, run.stderr
    out: dict[str, object] = json.loads(run.stdout)
    return out


def _accuracy(logits: np.ndarray) -> float:
    return float((logits.argmax(1) == data.load("digits").y_test.numpy()).mean())


def _reference(env: dict[str, object], rank: int) -> torch.nn.Module:
    """The trained network as the python export loads it (nasrl's own state dict)."""
    out = _export(
        env,
        "--format",
        "python",
        "--rank",
        str(rank),
        "--output",
        str(Path(str(env["folder"])) / f"ref{rank}.py"),
    )
    net = load_module(Path(str(out["path"]))).load_trained()
    assert isinstance(net, torch.nn.Module)
    return net


def test_onnx_gives_pytorchs_logits_in_onnxruntime(finished: dict[str, object]) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = Path(str(finished["folder"])) / "net.onnx"
    out = _export(finished, "--format", "onnx", "--output", str(path))
    assert out["format"] == "onnx" and out["path"] == str(path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    x = data.load("digits").x_test  # 360 images: the batch dimension is dynamic
    logits = session.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        expected = _reference(finished, 1)(x).numpy()
    assert logits.shape == expected.shape == (len(x), 10)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    best = finished["entries"][0]  # type: ignore[index]
    assert _accuracy(logits) == pytest.approx(best.test_accuracy, abs=1e-6)  # trained weights


def test_export_best_writes_onnx_by_its_suffix(finished: dict[str, object]) -> None:
    onnx = pytest.importorskip("onnx")
    summary = finished["summary"]
    assert summary["exported"]["format"] == "onnx"  # type: ignore[index]
    path = Path(str(finished["folder"])) / "best.onnx"
    onnx.checker.check_model(onnx.load(str(path)))


def test_torchscript_loads_without_nasrl_and_gives_the_same_logits(
    finished: dict[str, object],
) -> None:
    path = Path(str(finished["folder"])) / "net.ts"
    out = _export(finished, "--format", "torchscript", "--output", str(path), "--rank", "2")
    assert out["format"] == "torchscript"
    second = finished["entries"][1]  # type: ignore[index]
    assert out["architecture"] == second.architecture
    net = torch.jit.load(str(path))
    x = data.load("digits").x_test
    with torch.no_grad():
        logits, expected = net(x).numpy(), _reference(finished, 2)(x).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert _accuracy(logits) == pytest.approx(second.test_accuracy, abs=1e-6)


def test_python_export_is_the_default_format(finished: dict[str, object], tmp_path: Path) -> None:
    out = _export(finished, "--output", str(tmp_path / "m.py"))
    assert out["format"] == "python" and out["weights"] == str(tmp_path / "m.pt")
    assert "class Net(nn.Module)" in (tmp_path / "m.py").read_text()


def test_a_rank_past_the_results_is_one_line_exit_1(finished: dict[str, object]) -> None:
    sid = finished["summary"]["search_id"]  # type: ignore[index]
    run = nasrl_cli("export", sid, "--controller", str(finished["controller"]), "--rank", "9")
    assert run.returncode == 1
    assert "has 3 result(s), so there is no rank 9" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--export-best", "best.txt"), "cannot tell the export format from 'best.txt'"),
    ],
)
def test_an_export_name_without_a_format_fails_before_the_search(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    run = nasrl_cli("search", "--controller", "127.0.0.1:1", "--trainers", "127.0.0.1:1", *args)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_an_unknown_search_is_not_found(finished: dict[str, object]) -> None:
    run = nasrl_cli("export", "nope", "--controller", str(finished["controller"]))
    assert run.returncode == 1 and "NOT_FOUND" in run.stderr
