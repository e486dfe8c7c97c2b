"""``--export-best`` with trained weights: ask the trainers for a finished child's weights
(``GetWeights``), and when none of them holds them any more, train the child again with the
search's settings and say so."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from nasrl.arch import canonical, format_arch, parse
from nasrl.client import NasrlError, TrainerClient
from nasrl.datasets import input_shape
from nasrl.export import write_export
from nasrl.results import TrainSettings, weights_id

__all__ = ["ExportReport", "export_trained"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    module: Path
    weights: Path | None
    retrained_on: str | None  # the trainer that trained the child again, if one had to
    note: str  # one sentence for the user


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


def export_trained(clients: list[TrainerClient], architecture: str, dataset: str,
                   settings: TrainSettings, path: str | Path, title: str) -> ExportReport:
    """Write ``path`` (the module) and its ``.pt`` (the trained weights) for ``architecture``
    trained on ``dataset`` with ``settings``; retrains it on the first trainer that can when no
    trainer still holds its weights."""
    import torch

    text = format_arch(canonical(parse(architecture)))
    wid = weights_id(text, dataset, settings)
    blob = _fetch(clients, wid)
    retrained_on = None
    if blob is None:
        for client in clients:
            try:
                outcome = client.train(text, dataset, settings)
            except NasrlError as exc:
                log.warning("retraining on %s failed: %s", client.target, exc)
                continue
            retrained_on = client.target
            blob = client.fetch_weights(outcome.weights_id) if outcome.weights_id else None
            break
    state = None
    if blob is not None:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["state_dict"]
    weights = write_export(path, parse(text), input_shape(dataset), title=title, state_dict=state)
    if weights is None:
        note = ("no trainer holds this child's weights and none could train it again: "
                f"{path} is the architecture with untrained weights")
    elif retrained_on is not None:
        note = (f"no trainer still held this child's weights, so {retrained_on} trained it "
                f"again with the search's settings; weights in {weights}")
    else:
        note = f"trained weights in {weights} (load_trained() in {Path(path).name})"
    return ExportReport(Path(path), weights, retrained_on, note)
