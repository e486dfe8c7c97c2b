"""The reads a SHARED search's stages need: its top-k stage candidates (``final``) and the
networks whose best result is still a score under shared weights."""

from __future__ import annotations

from controller_service.states import Status
from controller_service.store.database import Database

__all__ = ["StageTables"]

#: shared-weights results of a search whose network no top-k candidate has taken yet
_UNTAKEN = (
    "FROM results r WHERE r.search_id = ? AND r.shared = 1 AND NOT EXISTS (SELECT 1 FROM "
    "candidates c WHERE c.search_id = r.search_id AND c.arch_hash = r.arch_hash AND c.final = 1)"
)


class StageTables(Database):
    def final_count(self, search_id: str) -> int:
        """Candidates the search's top-k stage has handed out."""
        row = self._read_one(
            "SELECT COUNT(*) AS n FROM candidates WHERE search_id = ? AND final = 1", (search_id,)
        )
        return int(row["n"]) if row else 0

    def final_ids(self, search_id: str, ids: list[int]) -> set[int]:
        """Which of the candidates ``ids`` the top-k stage handed out."""
        if not ids:
            return set()
        rows = self._read(
            f"SELECT id FROM candidates WHERE search_id = ? AND final = 1 "
            f"AND id IN ({', '.join('?' * len(ids))})",
            (search_id, *ids),
        )
        return {int(r["id"]) for r in rows}

    def shared_in_flight(self, search_id: str) -> bool:
        """Whether a candidate handed out for shared evaluation is not reported yet."""
        row = self._read_one(
            "SELECT 1 FROM candidates WHERE search_id = ? AND status = ? AND final = 0 LIMIT 1",
            (search_id, Status.LEASED),
        )
        return row is not None

    def untaken_shared(self, search_id: str, limit: int) -> list[tuple[str, str]]:
        """(hash, canonical text) of the best ``limit`` networks scored under shared weights
        and not yet handed out for full training, best first."""
        rows = self._read(
            f"SELECT r.arch_hash, r.arch {_UNTAKEN} ORDER BY r.accuracy DESC, r.candidate_id "
            "LIMIT ?",
            (search_id, limit),
        )
        return [(str(r["arch_hash"]), str(r["arch"])) for r in rows]

    def untaken_shared_count(self, search_id: str) -> int:
        row = self._read_one(f"SELECT COUNT(*) AS n {_UNTAKEN}", (search_id,))
        return int(row["n"]) if row else 0
