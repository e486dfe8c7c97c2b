"""nasrl's core: architectures, shapes, results, datasets, the proto codec, the network builder
and training-free scoring. Imports nothing from ``nasrl.rpc`` or ``nasrl.cli`` and no grpc."""
