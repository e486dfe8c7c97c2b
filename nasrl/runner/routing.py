"""Which trainers train which children of a SHARED search (weight sharing, ENAS).

A SHARED search's children come with ``Candidate.shared``; the top-k stage's come without it,
for full training. The runner reads the search's evaluation once when it starts and, for a
SHARED search, every trainer's ``GetStatus`` mode:

* every shared child goes to **one** ``--supernet`` trainer, the search's *owner*: the first
  supernet trainer of ``--trainers``, sticky, so that all of them train one supernet. When the
  owner is down (its calls end UNAVAILABLE and no health check has found it serving), the next
  supernet trainer that is up becomes the owner and stays it. The new owner continues the
  supernet from its last checkpoint only if it was started with the old owner's
  ``--supernet-dir``; otherwise the shared weights start again from scratch, and the scores
  before and after the change are not comparable;
* every full child (the top-k stage) goes to the trainers that are not supernet trainers: a
  supernet trainer cannot train a child fully. A SHARED search with a top-k stage needs one;
* a FULL search is not routed: every trainer takes every child, as always.

A trainer that cannot be asked when the run starts counts as an ordinary one; trainers that
join later (a ``dns:///`` name resolving to new replicas) get no children of a SHARED search.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from nasrl.rpc.client import NasrlError, Search
from nasrl.runner.pool import TrainerPool
from protos import controller_pb2 as cpb

__all__ = ["Routes", "NoSupernetTrainer", "routes_for", "check_trainers", "trainer_modes"]

log = logging.getLogger(__name__)

SUPERNET = "supernet"


class NoSupernetTrainer(NasrlError):
    """A SHARED search whose trainers cannot train it; the message says what to start."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.FAILED_PRECONDITION, message)


@dataclass
class Routes:
    """The supernet trainers (in the order given), the others, and the current owner."""

    search_id: str
    supernet: list[str]
    ordinary: list[str]
    owner: str

    def only(self, shared: bool, usable: Callable[[str], bool]) -> frozenset[str]:
        """The trainers that may train a shared (``shared``) or a full child now."""
        if not shared:
            return frozenset(self.ordinary)
        if not usable(self.owner):
            heir = next((t for t in self.supernet if t != self.owner and usable(t)), None)
            if heir is not None:
                log.warning(
                    "search %s: supernet trainer %s is down; %s trains its supernet from now "
                    "on (from the last checkpoint if it shares %s's --supernet-dir, otherwise "
                    "from scratch)",
                    self.search_id,
                    self.owner,
                    heir,
                    self.owner,
                )
                self.owner = heir
        return frozenset({self.owner})


def trainer_modes(pool: TrainerPool, timeout: float = 10.0) -> dict[str, str]:
    """Every trainer's GetStatus mode ("" when it cannot say), asked at once."""

    def mode(client: object) -> tuple[str, str]:
        target = str(getattr(client, "target"))
        try:
            return target, getattr(client, "status")(timeout=timeout).mode
        except NasrlError as exc:
            log.warning("trainer %s did not say its mode (%s): an ordinary trainer", target, exc)
            return target, ""

    clients = pool.clients()
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(clients)))) as threads:
        return dict(threads.map(mode, clients))


def check_trainers(pool: TrainerPool, search: str, top_k: int) -> tuple[list[str], list[str]]:
    """The supernet trainers of ``pool`` and the others, for a SHARED ``search`` (its name in
    messages) with a top-k stage of ``top_k``; NoSupernetTrainer when they cannot train it."""
    modes = trainer_modes(pool)
    supernet = [t for t, m in modes.items() if m == SUPERNET]
    ordinary = [t for t, m in modes.items() if m != SUPERNET]
    said = ", ".join(f"{t} ({m or 'no answer'})" for t, m in modes.items())
    if not supernet:
        raise NoSupernetTrainer(
            f"{search} evaluates its children under shared weights, but none of its trainers "
            f"is a --supernet trainer: {said}; start one with `python -m trainer_service "
            "--supernet` and add it to --trainers"
        )
    if top_k and not ordinary:
        raise NoSupernetTrainer(
            f"{search} trains its top {top_k} networks fully at the end, which a --supernet "
            f"trainer cannot; every trainer is one ({said}): add a trainer started without "
            "--supernet to --trainers"
        )
    return supernet, ordinary


def routes_for(search: Search, pool: TrainerPool) -> Routes | None:
    """The routes of ``search`` over ``pool`` (None for a FULL search); NoSupernetTrainer
    when no trainer can train its shared children, or its top-k stage has none to train on."""
    evaluation = search.spec.request.evaluation
    if evaluation.mode != cpb.SearchEvaluation.EVALUATION_MODE_SHARED:
        return None
    supernet, ordinary = check_trainers(pool, f"search {search.search_id}", evaluation.top_k)
    log.info(
        "search %s: shared children to %s, fully trained ones to %s",
        search.search_id,
        supernet[0],
        ", ".join(ordinary) or "none",
    )
    return Routes(search.search_id, supernet, ordinary, supernet[0])
