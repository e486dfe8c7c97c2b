"""A trained child network written in a format other systems load: ONNX, TorchScript, or the
standalone Python module of ``nasrl.cli.export``.

ONNX goes through ``torch.onnx.export`` (the torch.export-based exporter; needs the ``onnx``
extra: onnx + onnxscript) with a dynamic batch dimension, input ``images`` (N x C x H x W,
normalised as the trainer normalises) and output ``logits`` (N x classes); the file is checked
with ``onnx.checker`` before it is kept. TorchScript is ``torch.jit.trace`` of the trainer's
own ``ChildNet``: every spatial size is fixed by the architecture, so the trace is exact for any
batch size, and ``torch.jit.load`` needs no nasrl.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from nasrl.core.arch import Architecture
from nasrl.core.builder import build
from nasrl.core.shapes import InputShape

__all__ = [
    "FORMATS",
    "ExportFormatError",
    "format_for_path",
    "default_suffix",
    "trained_net",
    "write_onnx",
    "write_torchscript",
    "require_onnx",
]

FORMATS = ("python", "onnx", "torchscript")
_SUFFIXES = {
    ".py": "python",
    ".onnx": "onnx",
    ".pt": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
}


class ExportFormatError(ValueError):
    """An unknown format, a file name that names none, or a missing optional package."""


def format_for_path(path: str | Path, given: str | None = None) -> str:
    """The format ``given``, or the one the file's suffix names (.py, .onnx, .pt/.ts)."""
    if given:
        if given not in FORMATS:
            raise ExportFormatError(
                f"unknown export format {given!r}; choose one of {', '.join(FORMATS)}"
            )
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ExportFormatError(
            f"cannot tell the export format from {str(path)!r}: name the file .py (python), "
            ".onnx (onnx) or .pt/.ts (torchscript), or give --export-format"
        )
    return _SUFFIXES[suffix]


def default_suffix(fmt: str) -> str:
    return {"python": ".py", "onnx": ".onnx", "torchscript": ".ts"}[fmt]


def trained_net(
    arch: Architecture, image: InputShape, state_dict: dict[str, Any]
) -> torch.nn.Module:
    """The trainer's ChildNet for ``arch`` with ``state_dict`` loaded, in eval mode."""
    net = build(arch, image)
    net.load_state_dict(state_dict)
    return net.eval()


def _example(image: InputShape, batch: int = 2) -> torch.Tensor:
    return torch.randn(
        batch, image.channels, image.height, image.width, generator=torch.Generator().manual_seed(0)
    )


def write_torchscript(net: torch.nn.Module, image: InputShape, path: str | Path) -> Path:
    """Trace ``net`` and ``torch.jit.save`` it to ``path``."""
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        # The padding sizes in gather() are Python ints fixed by the architecture; the tracer
        # warns about them, rightly treating them as constants.
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        traced = torch.jit.trace(net, _example(image))  # type: ignore[no-untyped-call]
    torch.jit.save(traced, str(path))
    return path


def require_onnx() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx.export's translator)
    except ImportError as exc:
        raise ExportFormatError(
            f"ONNX export needs the onnx extra ({exc.name} is not installed): "
            "pip install 'nasrl[onnx]'"
        ) from exc
    return onnx


def write_onnx(net: torch.nn.Module, image: InputShape, path: str | Path) -> Path:
    """Export ``net`` to ONNX at ``path`` (batch dimension dynamic) and check the file with
    ``onnx.checker``."""
    import contextlib
    import io
    import logging

    onnx = require_onnx()
    path = Path(path)
    batch = torch.export.Dim("batch", min=1)
    quiet = io.StringIO()  # the exporter prints its progress on stdout
    previous = logging.getLogger("torch.onnx").level
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (_example(image),),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
        if program is None:  # pragma: no cover - dynamo=True always returns the program
            raise ExportFormatError("torch.onnx.export returned no program")
        program.save(str(path))
    finally:
        logging.getLogger("torch.onnx").setLevel(previous)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path
