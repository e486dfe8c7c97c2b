"""The runner's asyncio clients to its trainers, and the watch that brings trainers that
were down back into the pool once a health check finds them serving."""

from __future__ import annotations

import asyncio
import logging

from nasrl.rpc.client import AsyncTrainerClient
from nasrl.runner import pool as pool_module
from nasrl.runner.pool import TrainerPool

__all__ = ["AsyncTrainers"]

log = logging.getLogger(__name__)


class AsyncTrainers:
    """One grpc.aio client per trainer of ``pool``, created in the runner's event loop."""

    def __init__(self, pool: TrainerPool) -> None:
        self.pool = pool
        self._clients: dict[str, AsyncTrainerClient] = {}
        self._retired: list[AsyncTrainerClient] = []  # replaced, closed at the end

    def client(self, target: str) -> AsyncTrainerClient:
        client = self._clients.get(target)
        if client is None:
            client = AsyncTrainerClient(
                target, self.pool.timeout, self.pool.security, self.pool.server_name
            )
            self._clients[target] = client
        return client

    async def watch_lost(self) -> None:
        """Health-check the trainers that are down until they serve again (until
        cancelled)."""
        while True:
            due = self.pool.probes_due()
            if due:
                await asyncio.gather(*(self._probe(t) for t in due))
            await asyncio.sleep(pool_module.PROBE_EVERY / 4)

    async def _probe(self, target: str) -> None:
        serving = await pool_module.probe(target, self.pool.security, self.pool.server_name)
        if serving:
            log.info("trainer %s is serving again", target)
            # a fresh channel: the old one may wait out its reconnect backoff (up to 2 min)
            old = self._clients.pop(target, None)
            if old is not None:
                self._retired.append(old)  # children still streaming on it keep it
        self.pool.probed(target, serving)

    async def close(self) -> None:
        for client in (*self._clients.values(), *self._retired):
            await client.close()
