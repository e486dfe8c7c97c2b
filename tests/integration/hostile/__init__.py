"""Hostile input for every RPC of both services, over real gRPC on loopback.

Random bytes, hand-made protobuf wire data (overlong varints, wrong wire types, overflowing
integers, deeply nested groups), hypothesis-built messages (0..300 layers, the whole int32 and
int64 ranges, NaN/inf floats, unknown enum values, skip lists up to 10,000 entries, unicode,
empty and 1 MB strings, repeated fields of 100,000 entries) and valid requests mutated one field
at a time. Every call must be answered with OK or a clear status (a code a client can act on
and a sentence written by the server, not a traceback; never DEADLINE_EXCEEDED); after every
test the server still answers health checks and a valid request, and the controller's database
passes ``PRAGMA integrity_check``.

The modules, by theme: ``test_transport`` (raw bytes, sizes grpc refuses, long values the
error sentence quotes, concurrent calls), ``test_trainer`` (Train), ``test_create_search``,
``test_sample_update`` (the other Controller methods) and ``test_sizes`` (the largest spaces,
counts and results). Each module has servers of its own; no test depends on another having run.

The default run is the representative part ``make test`` runs; ``NASRL_HOSTILE_EXAMPLES=N``
runs N hypothesis examples per fuzz test (randomised instead of derandomised) and enables the
heaviest cases. ``pytest --hypothesis-show-statistics`` gives how many inputs each test tried.
"""
