"""The trainers a dashboard was given (``--trainers``): their health, the datasets they
serve, and the trained weights they still hold, which the pages offer as an exported model
(a Python module with its ``.pt`` in a zip, or ONNX). Weights are only fetched
(``GetWeights``): the dashboard never trains anything, so a child whose weights no trainer
holds any more has no download."""

from __future__ import annotations

import io
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.core.arch import parse
from nasrl.core.datasets import input_shape
from nasrl.core.results import weights_id
from nasrl.core.shapes import InputShape
from nasrl.rpc import rpc
from nasrl.rpc.client import Child, NasrlError, Search, TrainerClient
from nasrl.rpc.security import ClientSecurity

__all__ = ["Trainers", "Download", "NoWeights", "FORMATS"]

FORMATS = {"python": "zip", "onnx": "onnx"}  # download format -> file suffix
_HEALTH = {
    health_pb2.HealthCheckResponse.SERVING: "serving",
    health_pb2.HealthCheckResponse.NOT_SERVING: "not serving",
}


class NoWeights(LookupError):
    """No trainer holds the child's weights (or it has none: it failed, or was never
    trained); the message says which and what to do."""


@dataclass(frozen=True)
class Download:
    data: bytes
    filename: str
    media_type: str


def search_image(search: Search) -> InputShape:
    """The input shape and classes the search's children take."""
    return search.spec.dataset_shape or input_shape(search.spec.dataset)


class Trainers:
    """The trainers' addresses (``HOST:PORT`` each; a ``dns:///`` name is resolved again on
    every look) and the clients for them."""

    def __init__(self, spec: str, security: ClientSecurity | None = None) -> None:
        self.spec = spec
        self.security = security
        self._export_lock = threading.Lock()  # one export at a time: ONNX takes seconds

    @property
    def server_name(self) -> str | None:
        """``NAME:PORT`` of a ``dns:///`` spec: with TLS, what the certificates name."""
        if not self.spec.strip().startswith("dns:"):
            return None
        from nasrl.runner.targets import dns_name

        return ":".join(dns_name(self.spec.strip()))

    def targets(self) -> list[str]:
        """The trainers' addresses now; raises ValueError when a DNS name does not resolve."""
        if not self.spec:
            return []
        from nasrl.runner.targets import parse_trainers  # resolves dns:/// names

        return parse_trainers(self.spec)[0]

    def _client(self, target: str) -> TrainerClient:
        return TrainerClient(target, security=self.security, server_name=self.server_name)

    def status(self, target: str, timeout: float = 3.0) -> dict[str, Any]:
        """One trainer's health and datasets, or why it could not be asked."""
        began = time.perf_counter()
        row: dict[str, Any] = {"target": target, "health": "unreachable", "datasets": []}
        try:
            with rpc.channel(target, self.security, self.server_name) as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            row["health"] = _HEALTH.get(reply.status, "unknown")
            row["latency_ms"] = round((time.perf_counter() - began) * 1000, 1)
            with self._client(target) as client:
                row |= self._status(client, timeout)
                row["datasets"] = [
                    {"name": d.name, "source": d.source, "error": d.error}
                    for d in client.list_datasets(timeout=timeout)
                ]
        except grpc.RpcError as exc:
            row["error"] = str(NasrlError.from_rpc(exc, target))
        except NasrlError as exc:
            row["error"] = str(exc)
        return row

    @staticmethod
    def _status(client: TrainerClient, timeout: float) -> dict[str, Any]:
        """Slots, devices, mode and kept weights ({} from a trainer without GetStatus)."""
        try:
            s = client.status(timeout)
        except NasrlError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                return {}
            raise
        return {
            "slots": s.slots,
            "busy_slots": s.busy_slots,
            "ready": s.ready,
            "devices": sorted(set(s.devices)),
            "mode": s.mode,
            "weights_kept": s.weights_kept,
            "weights_mb": round(s.weights_bytes / 1e6, 1),
        }

    def _weights(self, wid: str) -> bytes:
        try:
            targets = self.targets()
        except ValueError as exc:
            raise NoWeights(f"the trainers cannot be reached: {exc}") from exc
        for target in targets:
            try:
                with self._client(target) as client:
                    blob = client.fetch_weights(wid, timeout=60.0)
            except NasrlError:
                continue  # another trainer may hold them
            if blob is not None:
                return blob
        raise NoWeights(
            "no trainer of --trainers holds this child's trained weights any more (trainers "
            "keep the most recent ones within --weights-max-mb); `nasrl export` can train it "
            "again"
        )

    def export(self, search: Search, child: Child, fmt: str) -> Download:
        """The child with its trained weights as ``fmt`` (python: a zip of the module and
        its ``.pt``; onnx: the ``.onnx`` file)."""
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        if child.result is None:
            raise NoWeights(f"child {child.candidate_id} has no trained weights: it has no result")
        wid = child.result.weights_id or weights_id(
            child.architecture, search.spec.dataset, search.spec.training
        )
        import torch

        saved = torch.load(io.BytesIO(self._weights(wid)), map_location="cpu", weights_only=True)
        state = dict(saved["state_dict"])
        name = f"search-{search.search_id}-child{child.candidate_id}"
        with self._export_lock, tempfile.TemporaryDirectory(prefix="nasrl-dashboard-") as tmp:
            if fmt == "python":
                return Download(
                    self._python_zip(Path(tmp), name, search, child, state),
                    f"{name}.zip",
                    "application/zip",
                )
            from nasrl.cli.export_formats import trained_net, write_onnx

            image = search_image(search)
            path = write_onnx(
                trained_net(parse(child.architecture), image, state),
                image,
                Path(tmp) / f"{name}.onnx",
            )
            return Download(path.read_bytes(), f"{name}.onnx", "application/octet-stream")

    @staticmethod
    def _python_zip(
        tmp: Path, name: str, search: Search, child: Child, state: dict[str, Any]
    ) -> bytes:
        from nasrl.cli.export import write_export

        assert child.result is not None
        title = (
            f"child {child.candidate_id} of search {search.search_id} "
            f"({child.result.validation_accuracy:.4f} val acc, "
            f"{child.result.test_accuracy:.4f} test acc)"
        )
        module = tmp / f"{name}.py"
        weights = write_export(
            module, parse(child.architecture), search_image(search), title=title, state_dict=state
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(module, module.name)
            if weights is not None:
                zf.write(weights, weights.name)
        return buffer.getvalue()
