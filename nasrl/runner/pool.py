"""The trainers a runner hands children to: free slots per trainer, cool-offs, and the
trainers that are down until a health check finds them serving again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from nasrl.rpc import rpc
from nasrl.rpc.client import TrainerClient
from nasrl.rpc.security import ClientSecurity
from nasrl.runner.targets import Resolver, dns_name, parse_trainers, resolve_dns

__all__ = ["TrainerPool", "probe", "PROBE_EVERY"]

log = logging.getLogger(__name__)

#: a trainer that is down is health-checked this often (seconds) until it serves again
PROBE_EVERY = 1.0
PROBE_TIMEOUT = 5.0
#: after its n-th loss in a row a trainer waits min(2^(n-1), this) seconds for its next check,
#: so one that says SERVING but whose Train calls keep ending UNAVAILABLE is tried ever less
PROBE_BACKOFF_MAX = 30.0


@dataclass
class _Down:
    """A trainer whose last call ended UNAVAILABLE, and what is known of it since."""

    target: str
    since: float  # when it was lost (its first loss since it last answered)
    reason: str  # the last loss's error
    losses: int = 0  # in a row, each after a health check had found it serving
    probe_at: float = 0.0  # its next health check
    serving: bool = False  # a health check found it SERVING: it may get work again


class TrainerPool:
    """Free slots per trainer address; DNS names are re-resolved so new replicas get work.

    A trainer whose call ended UNAVAILABLE is *down* (``lost``): ``take`` skips it until a
    health check finds it serving (``probes_due`` / ``probed``); it is up again once one of
    its calls is answered (``answered``). Each address resolved from ``dns:///NAME:PORT`` gets
    its own channel, which presents ``NAME:PORT`` as the server name: with TLS the certificates
    name the service, not every replica's IP. ``resolve`` maps the spec to addresses (default:
    the system resolver); ``clock`` (default ``time.monotonic``) times cool-offs and losses."""

    def __init__(
        self,
        spec: str,
        slots_per_trainer: int = 1,
        resolve_every: float = 30.0,
        timeout: float = 24 * 3600.0,
        security: ClientSecurity | None = None,
        resolve: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.security = security
        self._resolve = resolve or resolve_dns
        self._clock = clock
        targets, self.dns = parse_trainers(spec, self._resolve)
        self.server_name = ":".join(dns_name(self.dns)) if self.dns else None
        self.slots_per_trainer = slots_per_trainer
        self.resolve_every = resolve_every
        self.timeout = timeout
        self._lock = threading.Lock()
        self._free: dict[str, int] = {}
        self._cooling: dict[str, float] = {}
        self._down: dict[str, _Down] = {}
        self._clients: dict[str, TrainerClient] = {}
        self._resolved_at = clock()
        self._add(targets)

    def _add(self, targets: list[str]) -> None:
        for t in targets:
            if t not in self._free:
                self._free[t] = self.slots_per_trainer
                self._clients[t] = TrainerClient(
                    t, timeout=self.timeout, security=self.security, server_name=self.server_name
                )
                log.info("trainer %s joined (%d slot(s))", t, self.slots_per_trainer)

    def total_slots(self) -> int:
        with self._lock:
            if self.dns and self._clock() - self._resolved_at > self.resolve_every:
                self._resolved_at = self._clock()
                try:
                    self._add(self._resolve(self.dns))
                except ValueError as exc:
                    log.warning("%s", exc)
            return len(self._free) * self.slots_per_trainer

    def take(
        self, avoid: frozenset[str] | set[str] = frozenset(), only: frozenset[str] | None = None
    ) -> str | None:
        """A trainer that is up with a free slot now (preferring ones not in ``avoid``; one
        of ``only`` when given), or None."""
        with self._lock:
            now = self._clock()
            ready = [
                t
                for t, n in self._free.items()
                if n > 0
                and self._cooling.get(t, 0.0) <= now
                and self._usable(t)
                and (only is None or t in only)
            ]
            if not ready:
                return None
            fresh = [t for t in ready if t not in avoid]
            choice = max(fresh or ready, key=lambda t: self._free[t])
            self._free[choice] -= 1
            return choice

    def usable(self, target: str) -> bool:
        """Whether ``target`` may get work (it is not down)."""
        with self._lock:
            return self._usable(target)

    def _usable(self, target: str) -> bool:
        down = self._down.get(target)
        return down is None or down.serving

    def release(self, target: str, cool_off: float = 0.0) -> None:
        with self._lock:
            self._free[target] += 1
            if cool_off:
                self._cooling[target] = self._clock() + cool_off

    def lost(self, target: str, reason: str) -> None:
        """A call to ``target`` ended UNAVAILABLE: it is down until a health check finds it
        serving, the first check 1 s from now (later after each loss in a row)."""
        with self._lock:
            now = self._clock()
            down = self._down.setdefault(target, _Down(target, since=now, reason=reason))
            down.reason = reason
            if down.losses == 0 or down.serving:  # calls that were running when it died: one
                down.losses += 1
            down.serving = False
            down.probe_at = now + min(PROBE_BACKOFF_MAX, 2.0 ** (down.losses - 1))

    def answered(self, target: str) -> None:
        """A call to ``target`` got an answer (a result or an error of its own): it is up."""
        with self._lock:
            self._down.pop(target, None)

    def probes_due(self) -> list[str]:
        """The trainers that are down and due for a health check."""
        with self._lock:
            now = self._clock()
            return [t for t, d in self._down.items() if not d.serving and d.probe_at <= now]

    def probed(self, target: str, serving: bool) -> None:
        """A health check's verdict: serving, it may get work again; otherwise it is checked
        again in ``PROBE_EVERY`` seconds."""
        with self._lock:
            down = self._down.get(target)
            if down is None:
                return
            down.serving = serving
            if not serving:
                down.probe_at = self._clock() + PROBE_EVERY

    def unreachable(self, only: frozenset[str] | None = None) -> tuple[float, str] | None:
        """(seconds, why) when every trainer (of ``only``, when given) is down and none is
        serving: how long since the last of them was lost, and which it was with its error;
        None while any may get work."""
        with self._lock:
            among = self._free.keys() if only is None else only
            down = [d for t, d in self._down.items() if t in among]
            if not down or len(down) < len(among) or any(d.serving for d in down):
                return None
            last = max(down, key=lambda d: d.since)
            return self._clock() - last.since, f"{last.target}: {last.reason}"

    def clients(self) -> list[TrainerClient]:
        """A client for every trainer known now (for calls outside the search, e.g. weights)."""
        with self._lock:
            return list(self._clients.values())

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


async def probe(target: str, security: ClientSecurity | None, server_name: str | None) -> bool:
    """Whether ``target``'s health service says SERVING (a trainer that answers without a
    health service counts as serving)."""
    channel, metadata = rpc.aio_channel(target, security, server_name)
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT, metadata=metadata
        )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError as exc:  # UNIMPLEMENTED: it answers, without a health service
        return bool(exc.code() == grpc.StatusCode.UNIMPLEMENTED)
    finally:
        await channel.close()
