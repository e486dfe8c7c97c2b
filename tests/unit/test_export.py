"""An exported network is a standalone module that matches the trainer's ChildNet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasrl.cli.export import export_source, write_export
from nasrl.core.arch import ArchError, parse
from nasrl.core.builder import build
from nasrl.core.shapes import InputShape, analyze
from tests.helpers import load_module as load

IMAGES = {
    "digits": InputShape(1, 8, 8, 10),
    "mnist": InputShape(1, 28, 28, 10),
    "cifar": InputShape(3, 32, 32, 10),
}
ARCHS = {
    "plain": "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)",
    "skips": "C(16,3,2) C(16,3,1)@[0] C(8,5,2)@[0,1] FC(32)@[3] C(4,3,1)@[1,3]",
    "fc_pools": "C(8,3,1) P(3,2) FC(64) FC(32)@[2,3] P(2,2)@[0]",
    "rectangular": "C(16,3x5,1x2) C(8,5x3,2x1) C(8,1x3,1x2)@[2,0] GAP@[1]",
}
CASES = [(a, i) for a in ARCHS for i in IMAGES]

# Runs in a fresh, isolated interpreter: loads every exported file by path, runs it, and
# checks that nothing from this project was imported along the way.
CHECK_SCRIPT = """
import importlib.util, json, sys
import torch
results = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("exported", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    out = net(torch.randn(2, *module.INPUT_SHAPE))
    assert "nasrl" not in sys.modules and "trainer_service" not in sys.modules, path
    params = sum(p.numel() for p in net.parameters())
    results[path] = {"shape": list(out.shape), "params": params, "classes": module.NUM_CLASSES}
print(json.dumps(results))
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Every case exported to a file and run in one fresh ``python -I`` process."""
    folder = tmp_path_factory.mktemp("exports")
    paths = []
    for arch, image in CASES:
        path = folder / f"{arch}_{image}.py"
        write_export(path, parse(ARCHS[arch]), IMAGES[image], title=f"{arch} on {image}")
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-I", "-c", CHECK_SCRIPT, *paths],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, dict[str, object]] = json.loads(done.stdout)
    return {Path(p).stem: r for p, r in results.items()}


@pytest.mark.parametrize(("arch", "image"), CASES)
def test_standalone_module_runs_without_nasrl(
    standalone: dict[str, dict[str, object]], arch: str, image: str
) -> None:
    analysis = analyze(parse(ARCHS[arch]), IMAGES[image])
    result = standalone[f"{arch}_{image}"]
    assert result["shape"] == [2, analysis.classes]
    assert result["params"] == analysis.params
    assert result["classes"] == analysis.classes


@pytest.mark.parametrize(("arch", "image"), CASES)
def test_loads_builder_weights_and_computes_the_same(tmp_path: Path, arch: str, image: str) -> None:
    spec, shape = parse(ARCHS[arch]), IMAGES[image]
    path = tmp_path / "net.py"
    write_export(path, spec, shape)
    torch.manual_seed(0)
    child = build(spec, shape)
    x = torch.randn(4, shape.channels, shape.height, shape.width)
    with torch.no_grad():
        child.train()(x * 2 + 1)  # moves batch-norm running statistics off their defaults
    net = load(path).Net()
    net.load_state_dict(child.state_dict())  # strict: same names and shapes
    child.eval()
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), child(x), rtol=0, atol=1e-5)


def test_forward_is_written_out_layer_by_layer() -> None:
    source = export_source(parse(ARCHS["skips"]), IMAGES["digits"])
    assert "        x1 = self.blocks[0](x0)\n" in source
    assert "        x3 = self.blocks[2](_cat([x0, x1]))\n" in source
    assert "        x5 = self.blocks[4](_cat([x1, x3]))\n" in source
    assert "return self.classifier(torch.flatten(_cat([x2, x4, x5]), 1))" in source


def test_constants_and_docstring(tmp_path: Path) -> None:
    spec, image = parse(ARCHS["rectangular"]), IMAGES["cifar"]
    path = tmp_path / "rect.py"
    write_export(path, spec, image, title='My "best" net \\ with """ quotes\nand a newline')
    module = load(path)
    assert module.INPUT_SHAPE == (3, 32, 32)
    assert module.NUM_CLASSES == 10
    assert parse(module.ARCHITECTURE) == spec
    doc = module.__doc__
    assert doc is not None
    assert doc.startswith('My "best" net \\ with """ quotes and a newline\n')
    assert "exported by nasrl" in doc.lower()
    assert ARCHS["rectangular"] in doc
    assert f"{analyze(spec, image).params:,} parameters" in doc
    assert "freshly initialised" in doc and "untrained" in doc
    assert not hasattr(module, "load_trained") and not path.with_suffix(".pt").exists()


def test_with_a_state_dict_the_weights_land_beside_the_module(tmp_path: Path) -> None:
    spec, image = parse(ARCHS["skips"]), IMAGES["mnist"]
    torch.manual_seed(7)
    child = build(spec, image)
    path = tmp_path / "found.py"
    weights = write_export(path, spec, image, state_dict=child.state_dict())
    assert weights == tmp_path / "found.pt" and weights.exists()
    module = load(path)
    assert "found.pt" in (module.__doc__ or "") and "load_trained()" in (module.__doc__ or "")
    net = module.load_trained()
    assert not net.training
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(net(x), child.eval()(x))


def test_imports_only_torch() -> None:
    source = export_source(parse(ARCHS["plain"]), IMAGES["mnist"])
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == [
        "import torch",
        "from torch import nn",
        "from torch.nn import functional as F",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "P(3,3) P(3,3) P(3,3)",  # shrinks an 8x8 map below 1x1
        "C(8,3,1)@[2] C(8,3,1)",  # reads a layer that comes later
        "C(8,3,1) SM(7)",  # the dataset has 10 classes
        "C(0,3,1)",  # no filters
    ],
)
def test_invalid_architecture_raises(tmp_path: Path, text: str) -> None:
    with pytest.raises(ArchError):
        export_source(parse(text), IMAGES["digits"])
    with pytest.raises(ArchError):
        write_export(tmp_path / "bad.py", parse(text), IMAGES["digits"])
    assert not (tmp_path / "bad.py").exists()
