"""grpc level: server and channel helpers, security, the health probe, metrics and the clients
(``nasrl.rpc.client``). Imports only ``nasrl.core``, never ``nasrl.cli``."""
