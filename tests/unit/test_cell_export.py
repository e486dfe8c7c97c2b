"""A cell network exports as a standalone Python module, as ONNX and as TorchScript, each
giving the logits of the trainer's built network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasrl.cli.export import export_source, write_export
from nasrl.cli.export_formats import trained_net, write_onnx, write_torchscript
from nasrl.core.arch import ArchError, parse
from nasrl.core.builder import build
from nasrl.core.shapes import InputShape, analyze
from tests.helpers import load_module

DIGITS = InputShape(1, 8, 8, 10)
CIFAR = InputShape(3, 16, 16, 10)
CELL = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
CASES = {
    "digits": ("[C=8,N=1]" + CELL, DIGITS),
    "cifar": ("[C=4,N=2,S=2]" + CELL, CIFAR),
}

CHECK_SCRIPT = """
import importlib.util, json, sys
import torch
spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
net = module.Net()
out = net(torch.randn(2, *module.INPUT_SHAPE))
assert "nasrl" not in sys.modules and "trainer_service" not in sys.modules
print(json.dumps({"shape": list(out.shape), "params": sum(p.numel() for p in net.parameters())}))
"""

pytestmark = pytest.mark.usefixtures("one_thread")


def trained_like(text: str, image: InputShape) -> torch.nn.Module:
    """The builder's network with batch-norm statistics moved off their defaults."""
    torch.manual_seed(0)
    child = build(parse(text), image)
    with torch.no_grad():
        child.train()(torch.randn(8, image.channels, image.height, image.width) * 2 + 1)
    return child.eval()


@pytest.mark.parametrize("case", sorted(CASES))
def test_standalone_module_runs_without_nasrl(tmp_path: Path, case: str) -> None:
    text, image = CASES[case]
    path = tmp_path / "cellnet.py"
    write_export(path, parse(text), image, title=f"a cell on {case}")
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHECK_SCRIPT, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"shape": [2, 10], "params": analyze(parse(text), image).params}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loads_builder_weights_and_computes_the_same(tmp_path: Path, case: str) -> None:
    text, image = CASES[case]
    path = tmp_path / "net.py"
    write_export(path, parse(text), image)
    child = trained_like(text, image)
    net = load_module(path).Net()
    net.load_state_dict(child.state_dict())  # strict: same names and shapes
    net.eval()
    x = torch.randn(4, image.channels, image.height, image.width)
    with torch.no_grad():
        torch.testing.assert_close(net(x), child(x), rtol=0, atol=1e-5)


def test_source_names_the_cell_and_one_block_per_line() -> None:
    text, image = CASES["digits"]
    source = export_source(parse(text), image)
    assert "CELL_OPS = ('nor_conv_3x3', 'none', 'avg_pool_3x3', 'skip_connect'," in source
    assert "            stem(1, 8),\n" in source
    assert "            # 3: reduction to 16 -> 16x4x4\n            Reduction(8, 16),\n" in source
    assert "            CellModule(CELL_OPS, 32),\n" in source
    assert "        return self.classifier(torch.flatten(x7, 1))" in source
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == [
        "import torch",
        "from torch import nn",
        "from torch.nn import functional as F",
    ]


def test_constants_and_docstring(tmp_path: Path) -> None:
    text, image = CASES["cifar"]
    path = tmp_path / "c.py"
    write_export(path, parse(text), image, title="best cell")
    module = load_module(path)
    assert parse(module.ARCHITECTURE) == parse(text)
    assert module.INPUT_SHAPE == (3, 16, 16) and module.NUM_CLASSES == 10
    assert f"{analyze(parse(text), image).params:,} parameters" in (module.__doc__ or "")


def test_a_cell_that_does_not_fit_is_not_exported(tmp_path: Path) -> None:
    with pytest.raises(ArchError, match="receives a 1x1 map"):
        write_export(tmp_path / "bad.py", parse("[S=5]" + CELL), DIGITS)
    assert not (tmp_path / "bad.py").exists()


def test_torchscript_gives_the_builders_logits(tmp_path: Path) -> None:
    text, image = CASES["digits"]
    child = trained_like(text, image)
    net = trained_net(parse(text), image, child.state_dict())
    path = write_torchscript(net, image, tmp_path / "cell.ts")
    loaded = torch.jit.load(str(path))
    x = torch.randn(5, 1, 8, 8)  # another batch size than the trace's
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), child(x), rtol=1e-5, atol=1e-5)


def test_onnx_gives_the_builders_logits_in_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    text, image = CASES["digits"]
    child = trained_like(text, image)
    path = write_onnx(
        trained_net(parse(text), image, child.state_dict()), image, tmp_path / "c.onnx"
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(7, 1, 8, 8)
    logits = session.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        expected = child(x).numpy()
    assert logits.shape == (7, 10)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
