"""What the dashboard reads, and only through the controller's and trainers' read-only RPCs:
``ReadOnlyController`` exposes no call that changes a search, and ``ChildCache`` keeps each
search's settled children so that a refresh asks the controller only for what may have
changed (children from the first unsettled one on)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from nasrl.rpc.client import (
    Child,
    ChildStatus,
    ControllerClient,
    LeaderboardEntry,
    NasrlError,
    Search,
)
from nasrl.rpc.security import ClientSecurity

__all__ = ["ReadOnlyController", "ChildCache", "SearchChildren", "SETTLED", "PAGE"]

T = TypeVar("T")

#: a child in one of these states never changes again
SETTLED = frozenset(
    {ChildStatus.TRAINED, ChildStatus.FAILED, ChildStatus.CACHED, ChildStatus.INVALID}
)
PAGE = 10_000  # ListChildren's largest page without curves


class ReadOnlyController:
    """The controller calls a viewer may make: GetSearch, ListSearches, Leaderboard and
    ListChildren. Nothing here can create, sample, report to or stop a search.

    A call that finds the controller down drops the channel, so the next call connects
    afresh instead of waiting out gRPC's reconnect backoff (up to two minutes): the pages
    recover as soon as the controller is back."""

    def __init__(
        self, target: str, timeout: float = 10.0, security: ClientSecurity | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.security = security
        self._lock = threading.Lock()
        self._client = ControllerClient(target, timeout=timeout, security=security)

    def _call(self, call: Callable[[ControllerClient], T]) -> T:
        client = self._client
        try:
            return call(client)
        except NasrlError as exc:
            if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                with self._lock:
                    if self._client is client:
                        self._client = ControllerClient(
                            self.target, timeout=self.timeout, security=self.security
                        )
                        client.close()
            raise

    def search(self, search_id: str) -> Search:
        return self._call(lambda c: c.get_search(search_id))

    def searches(self) -> list[Search]:
        return self._call(lambda c: c.list_searches())

    def leaderboard(self, search_id: str, top: int, pareto: str = "") -> list[LeaderboardEntry]:
        return self._call(lambda c: c.leaderboard(search_id, top=top, pareto=pareto))

    def children(
        self, search_id: str, after: int = 0, limit: int = 0, detail: bool = False
    ) -> tuple[list[Child], bool]:
        return self._call(
            lambda c: c.list_children(search_id, after=after, limit=limit, detail=detail)
        )

    def close(self) -> None:
        self._client.close()


@dataclass
class SearchChildren:
    """A search's children as last read: ``settled`` (every child up to ``cursor``, none of
    which changes again) followed by ``tail`` (the rest, re-read on each refresh)."""

    settled: list[Child] = field(default_factory=list)
    tail: list[Child] = field(default_factory=list)
    read_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cursor(self) -> int:
        return self.settled[-1].candidate_id if self.settled else 0

    def all(self) -> list[Child]:
        return self.settled + self.tail


class ChildCache:
    """Children per search, shared by every page that shows them; a search is read again at
    most once per ``max_age`` seconds however many pages poll it (``clock`` for tests)."""

    def __init__(
        self,
        controller: ReadOnlyController,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.controller = controller
        self.max_age = max_age
        self.clock = clock
        self._searches: dict[str, SearchChildren] = {}
        self._lock = threading.Lock()

    def _entry(self, search_id: str) -> SearchChildren:
        with self._lock:
            return self._searches.setdefault(search_id, SearchChildren())

    def children(self, search_id: str) -> SearchChildren:
        """The search's children, read again if older than ``max_age``; raises NasrlError
        (NOT_FOUND, UNAVAILABLE, ...) as the controller answers."""
        entry = self._entry(search_id)
        with entry.lock:
            if self.clock() - entry.read_at >= self.max_age:
                self._refresh(search_id, entry)
            return entry

    def _refresh(self, search_id: str, entry: SearchChildren) -> None:
        fresh: list[Child] = []
        after, more = entry.cursor, True
        while more:
            page, more = self.controller.children(search_id, after=after, limit=PAGE)
            if not page:
                break
            fresh += page
            after = page[-1].candidate_id
        # children up to the first unsettled one never change again: keep them settled
        first_open = next((i for i, c in enumerate(fresh) if c.status not in SETTLED), len(fresh))
        entry.settled += fresh[:first_open]
        entry.tail = fresh[first_open:]
        entry.read_at = self.clock()

    def forget(self, search_id: str) -> None:
        with self._lock:
            self._searches.pop(search_id, None)
