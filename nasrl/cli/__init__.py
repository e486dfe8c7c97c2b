"""The ``nasrl`` command line (entry point). It dispatches before importing anything heavy:
``nasrl health`` is a probe run every few seconds and loads only grpc and the health stubs
(``nasrl.cli.health``); every other command loads the full CLI (``nasrl.cli.commands``).

    nasrl train "C(32,3,1) P(2,2) C(64,3,1) GAP SM(10)" --trainer HOST:PORT --dataset digits
    nasrl health 127.0.0.1:50051
    nasrl demo
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["health"]:
        from nasrl.cli import health

        return health.main(args)
    from nasrl.cli import commands

    return commands.main(args)
