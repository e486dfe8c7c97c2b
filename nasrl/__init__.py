"""nasrl: neural architecture search with reinforcement learning, as gRPC services.

Three packages, by dependency direction: ``nasrl.core`` (architectures, shapes, results,
datasets, the proto codec, the network builder; no grpc), ``nasrl.rpc`` (grpc helpers and the
clients other systems import: ``nasrl.rpc.client.ControllerClient`` and ``TrainerClient``;
imports only ``nasrl.core``) and ``nasrl.cli`` (the ``nasrl`` command, the search runner,
exports; may import both)."""

__version__ = "0.1.0"
