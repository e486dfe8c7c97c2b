"""``nasrl export`` and ``--export-best`` with trained weights: ask the trainers for a finished
child's weights (``GetWeights``), and when none of them holds them any more, train the child
again with the search's settings and say so; then write the network as a Python module (+ its
``.pt``), an ONNX file or a TorchScript file (``nasrl.cli.export_formats``)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasrl.cli.export import write_export
from nasrl.core.arch import canonical, format_arch, parse
from nasrl.core.datasets import input_shape
from nasrl.core.results import TrainSettings, weights_id
from nasrl.core.shapes import InputShape
from nasrl.rpc.client import NasrlError, TrainerClient

__all__ = ["ExportReport", "UntrainedExport", "export_trained"]

log = logging.getLogger(__name__)


class UntrainedExport(RuntimeError):
    """No trainer holds the child's weights and none could train it again (ONNX and
    TorchScript are never written with untrained weights)."""


@dataclass(frozen=True)
class ExportReport:
    module: Path  # the file written (the module, the .onnx or the TorchScript file)
    weights: Path | None  # python format: the .pt beside the module; else None
    retrained_on: str | None  # the trainer that trained the child again, if one had to
    note: str  # one sentence for the user
    format: str = "python"


def _fetch(clients: list[TrainerClient], wid: str) -> bytes | None:
    for client in clients:
        try:
            blob = client.fetch_weights(wid)
        except NasrlError as exc:
            log.warning("weights from %s: %s", client.target, exc)
            continue
        if blob is not None:
            return blob
    return None


def _retrain(
    clients: list[TrainerClient], text: str, dataset: str, settings: TrainSettings
) -> tuple[bytes | None, str | None]:
    for client in clients:
        try:
            outcome = client.train(text, dataset, settings)
        except NasrlError as exc:
            log.warning("retraining on %s failed: %s", client.target, exc)
            continue
        blob = client.fetch_weights(outcome.weights_id) if outcome.weights_id else None
        return blob, client.target
    return None, None


def fetch_state(
    clients: list[TrainerClient], text: str, dataset: str, settings: TrainSettings
) -> tuple[dict[str, Any] | None, str | None]:
    """The trained state dict of the canonical network ``text`` (None when no trainer holds it
    and none could train it again) and the trainer that retrained it, if one had to."""
    import torch

    blob = _fetch(clients, weights_id(text, dataset, settings))
    retrained_on = None
    if blob is None:
        blob, retrained_on = _retrain(clients, text, dataset, settings)
    if blob is None:
        return None, retrained_on
    saved = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    return dict(saved["state_dict"]), retrained_on


def export_trained(
    clients: list[TrainerClient],
    architecture: str,
    dataset: str,
    settings: TrainSettings,
    path: str | Path,
    title: str,
    *,
    fmt: str = "python",
    image: InputShape | None = None,
) -> ExportReport:
    """Write ``architecture`` trained on ``dataset`` with ``settings`` to ``path`` in ``fmt``
    (python: the module and its ``.pt``; onnx; torchscript); retrains it on the first trainer
    that can when no trainer still holds its weights. ``image`` is the dataset's input shape
    (default: the built-in dataset's)."""
    text = format_arch(canonical(parse(architecture)))
    image = image or input_shape(dataset)
    state, retrained_on = fetch_state(clients, text, dataset, settings)
    path = Path(path)
    again = (
        (
            f"no trainer still held this child's weights, so {retrained_on} trained it "
            "again with the search's settings; "
        )
        if retrained_on
        else ""
    )
    if fmt == "python":
        weights = write_export(path, parse(text), image, title=title, state_dict=state)
        if weights is None:
            note = (
                "no trainer holds this child's weights and none could train it again: "
                f"{path} is the architecture with untrained weights"
            )
        else:
            note = again + (
                f"weights in {weights}"
                if again
                else f"trained weights in {weights} (load_trained() in {path.name})"
            )
        return ExportReport(path, weights, retrained_on, note, fmt)
    if state is None:
        raise UntrainedExport(
            f"no trainer holds the weights of {text} and none could train it again; start a "
            f"trainer that can read dataset {dataset!r} (--trainers) and export again"
        )
    from nasrl.cli.export_formats import trained_net, write_onnx, write_torchscript

    net = trained_net(parse(text), image, state)
    if fmt == "onnx":
        write_onnx(net, image, path)
        note = (
            f"ONNX (checked with onnx.checker): input 'images' N x {image.channels} x "
            f"{image.height} x {image.width}, output 'logits' N x {image.classes}"
        )
    else:
        write_torchscript(net, image, path)
        note = (
            f"TorchScript: torch.jit.load({str(path)!r}) maps N x {image.channels} x "
            f"{image.height} x {image.width} images to N x {image.classes} logits"
        )
    return ExportReport(path, None, retrained_on, again + note, fmt)
