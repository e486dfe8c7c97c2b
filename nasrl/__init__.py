"""nasrl: neural architecture search with reinforcement learning, as gRPC services.

``nasrl.Client`` / ``nasrl.ControllerClient`` and ``nasrl.TrainerClient`` are what other
systems import."""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "ControllerClient", "TrainerClient", "NasrlError"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import nasrl.arch` does not pull grpc in.
    if name in ("Client", "ControllerClient"):
        from nasrl.client import ControllerClient

        return ControllerClient
    if name in ("TrainerClient", "NasrlError"):
        from nasrl import client

        return getattr(client, name)
    raise AttributeError(name)
