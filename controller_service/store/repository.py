"""The repository: searches, candidates, results and epoch reports as typed rows. Statuses
are bound as parameters from their enums, never spelt in SQL."""

from __future__ import annotations

import json
import time
from typing import Any

from controller_service.reports import Report, outcome_to_json, report_to_json
from controller_service.states import SearchState, Status
from controller_service.store.agent_tables import AgentTables
from controller_service.store.rows import (
    CandidateRow,
    ChildRow,
    ResultRow,
    SearchRow,
    Trained,
    candidate_row,
    report_of,
    result_row,
)
from controller_service.store.stage_tables import StageTables
from nasrl.core.results import Evaluation

__all__ = ["Store"]

#: statuses a Sample may have handed out under a request id
_HANDED_OUT = (Status.LEASED, Status.CACHED, Status.DONE, Status.FAILED)


class Store(AgentTables, StageTables):
    """SQLite storage of searches, candidates, results and agent state: the only I/O of the
    controller. WAL journal, one transaction per change (``with store.transaction():``)."""

    # ------------------------------------------------------------------ searches

    def add_search(self, search_id: str, name: str, spec: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO searches (id, name, created, spec, state) VALUES (?, ?, ?, ?, ?)",
            (search_id, name, time.time(), json.dumps(spec, sort_keys=True), SearchState.RUNNING),
        )

    def search(self, search_id: str) -> SearchRow | None:
        row = self._read_one("SELECT * FROM searches WHERE id = ?", (search_id,))
        if row is None:
            return None
        return SearchRow(
            row["id"], row["name"], row["created"], json.loads(row["spec"]), row["state"]
        )

    def search_ids(self) -> list[str]:
        rows = self._read("SELECT id FROM searches ORDER BY created DESC, id")
        return [r["id"] for r in rows]

    def set_search_state(self, search_id: str, state: str) -> None:
        self._exec("UPDATE searches SET state = ? WHERE id = ?", (state, search_id))

    # ------------------------------------------------------------------ candidates

    def add_candidate(
        self,
        search_id: str,
        arch: str,
        arch_hash: str,
        decisions: dict[str, Any],
        status: str,
        lease_deadline: float | None,
        twin: int | None = None,
        final: bool = False,
        report: Report | None = None,
        reward: float | None = None,
    ) -> int:
        """A new candidate's id; ``report`` and ``reward`` record a finished one (cached,
        rejected, screened out) in the same statement, as ``finish_candidate`` would."""
        row = self._exec(
            "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM candidates WHERE search_id = ?",
            (search_id,),
        ).fetchone()
        cid = int(row["next"])
        self._exec(
            "INSERT INTO candidates (search_id, id, arch, arch_hash, decisions, status, "
            "lease_deadline, twin, created, final, report, reward) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                search_id,
                cid,
                arch,
                arch_hash,
                json.dumps(decisions),
                status,
                lease_deadline,
                twin,
                time.time(),
                int(final),
                _report_json(report),
                reward,
            ),
        )
        return cid

    def candidate(self, search_id: str, cid: int) -> CandidateRow | None:
        row = self._read_one(
            "SELECT * FROM candidates WHERE search_id = ? AND id = ?", (search_id, cid)
        )
        return candidate_row(row) if row else None

    def expired_leases(self, search_id: str, before: float, limit: int) -> list[CandidateRow]:
        """Leased candidates whose lease ends before ``before`` (all of them: ``inf``)."""
        rows = self._read(
            "SELECT * FROM candidates WHERE search_id = ? AND status = ? "
            "AND lease_deadline < ? ORDER BY id LIMIT ?",
            (search_id, Status.LEASED, before, limit),
        )
        return [candidate_row(r) for r in rows]

    def renew_lease(
        self, search_id: str, cid: int, deadline: float, request_id: str | None
    ) -> None:
        self._exec(
            "UPDATE candidates SET lease_deadline = ?, reissued = reissued + 1, request_id = ? "
            "WHERE search_id = ? AND id = ?",
            (deadline, request_id, search_id, cid),
        )

    def set_request(self, search_id: str, cid: int, request_id: str | None) -> None:
        self._exec(
            "UPDATE candidates SET request_id = ? WHERE search_id = ? AND id = ?",
            (request_id, search_id, cid),
        )

    def release_lease(self, search_id: str, cid: int, deadline: float) -> bool:
        """End the lease ``deadline`` of candidate ``cid`` now and forget its request id, if
        it is still leased with exactly that deadline (not reported, not handed out again);
        ``expired_leases`` then finds it. Whether it was released."""
        cursor = self._exec(
            "UPDATE candidates SET lease_deadline = 0, request_id = NULL "
            "WHERE search_id = ? AND id = ? AND status = ? AND lease_deadline = ?",
            (search_id, cid, Status.LEASED, deadline),
        )
        return cursor.rowcount == 1

    def by_request(self, search_id: str, request_id: str) -> list[CandidateRow]:
        rows = self._read(
            "SELECT * FROM candidates WHERE search_id = ? AND request_id = ? "
            f"AND status IN ({', '.join('?' * len(_HANDED_OUT))}) ORDER BY id",
            (search_id, request_id, *_HANDED_OUT),
        )
        return [candidate_row(r) for r in rows]

    def in_flight_with_hash(self, search_id: str, arch_hash: str) -> CandidateRow | None:
        row = self._read_one(
            "SELECT * FROM candidates WHERE search_id = ? AND arch_hash = ? AND status = ? "
            "ORDER BY id LIMIT 1",
            (search_id, arch_hash, Status.LEASED),
        )
        return candidate_row(row) if row else None

    def has_hash(self, search_id: str, arch_hash: str) -> bool:
        """Whether any candidate of the search is this network."""
        return (
            self._read_one(
                "SELECT 1 FROM candidates WHERE search_id = ? AND arch_hash = ? LIMIT 1",
                (search_id, arch_hash),
            )
            is not None
        )

    def waiting_twins(self, search_id: str, cid: int) -> list[CandidateRow]:
        rows = self._read(
            "SELECT * FROM candidates WHERE search_id = ? AND twin = ? AND status = ? ORDER BY id",
            (search_id, cid, Status.WAITING),
        )
        return [candidate_row(r) for r in rows]

    def finish_candidate(
        self,
        search_id: str,
        cid: int,
        status: str,
        report: Report | None,
        reward: float | None,
    ) -> None:
        self._exec(
            "UPDATE candidates SET status = ?, report = ?, reward = ?, lease_deadline = NULL "
            "WHERE search_id = ? AND id = ?",
            (
                status,
                _report_json(report),
                reward,
                search_id,
                cid,
            ),
        )

    def counts(self, search_id: str) -> dict[str, int]:
        rows = self._read(
            "SELECT status, n, reissued FROM candidate_counts WHERE search_id = ?", (search_id,)
        )
        counts = {r["status"]: int(r["n"]) for r in rows if r["n"]}
        counts["reissued"] = sum(int(r["reissued"]) for r in rows)
        return counts

    def candidates_after(
        self, search_id: str, after: int, limit: int, curves: bool = True
    ) -> list[ChildRow]:
        """Up to ``limit`` candidates with an id above ``after``, in id order, as viewers see
        them (read-only; without the agent's decisions, and without the result's learning
        curve unless ``curves``: JSON that a listing of 10,000 children need not parse)."""
        report = "report" if curves else "json_remove(report, '$.result.curve')"
        rows = self._read(
            f"SELECT id, arch, status, reissued, {report} AS report, reward FROM candidates "
            "WHERE search_id = ? AND id > ? ORDER BY id LIMIT ?",
            (search_id, after, limit),
        )
        return [
            ChildRow(
                r["id"], r["arch"], r["status"], r["reissued"], report_of(r["report"]), r["reward"]
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ epoch reports

    def add_epoch_report(
        self, search_id: str, cid: int, epoch: int, accuracy: float, decision: str
    ) -> None:
        self._exec(
            "INSERT INTO epoch_reports (search_id, candidate_id, epoch, accuracy, "
            "decision) VALUES (?, ?, ?, ?, ?)",
            (search_id, cid, epoch, accuracy, decision),
        )

    def epoch_report(self, search_id: str, cid: int, epoch: int) -> str | None:
        """The decision stored for one (candidate, epoch), or None."""
        row = self._read_one(
            "SELECT decision FROM epoch_reports WHERE search_id = ? AND "
            "candidate_id = ? AND epoch = ?",
            (search_id, cid, epoch),
        )
        return None if row is None else str(row["decision"])

    def epoch_reports(self, search_id: str) -> list[tuple[int, int, float]]:
        """Every (candidate, epoch, accuracy) of a search in the order they were reported."""
        rows = self._read(
            "SELECT candidate_id, epoch, accuracy FROM epoch_reports "
            "WHERE search_id = ? ORDER BY rowid",
            (search_id,),
        )
        return [(int(r[0]), int(r[1]), float(r[2])) for r in rows]

    def epoch_reports_between(
        self, search_id: str, first: int, last: int
    ) -> list[tuple[int, int, float, str]]:
        """Every (candidate, epoch, accuracy, decision) of candidates ``first`` .. ``last``,
        by candidate and epoch."""
        rows = self._read(
            "SELECT candidate_id, epoch, accuracy, decision FROM epoch_reports "
            "WHERE search_id = ? AND candidate_id BETWEEN ? AND ? ORDER BY candidate_id, epoch",
            (search_id, first, last),
        )
        return [(int(r[0]), int(r[1]), float(r[2]), str(r[3])) for r in rows]

    # ------------------------------------------------------------------ results

    def add_result(
        self, search_id: str, arch_hash: str, row: ResultRow, replace: bool = False
    ) -> None:
        """Store a network's result; ``replace`` the one it has (a trained result replaces a
        shared-weights score)."""
        self._exec(
            f"INSERT {'OR REPLACE ' if replace else ''}INTO results (search_id, arch_hash, "
            "candidate_id, arch, accuracy, test_accuracy, params, flops, seconds, reward, "
            "outcome, shared) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                search_id,
                arch_hash,
                row.candidate_id,
                row.arch,
                row.accuracy,
                row.test_accuracy,
                row.params,
                row.flops,
                row.seconds,
                row.reward,
                json.dumps(outcome_to_json(row.outcome), sort_keys=True),
                int(row.outcome.evaluation is Evaluation.SHARED),
            ),
        )

    def result(self, search_id: str, arch_hash: str) -> ResultRow | None:
        row = self._read_one(
            "SELECT * FROM results WHERE search_id = ? AND arch_hash = ?", (search_id, arch_hash)
        )
        return result_row(row) if row else None

    def result_count(self, search_id: str) -> int:
        row = self._read_one("SELECT COUNT(*) AS n FROM results WHERE search_id = ?", (search_id,))
        return int(row["n"]) if row else 0

    def first_results(self, search_id: str, n: int) -> list[Trained]:
        """The search's first ``n`` results in the order they were recorded, as a predictor
        learns them."""
        return self._trained(search_id, "rowid", n)

    def known_streak(self, search_id: str) -> int:
        """How many of the agent's latest proposals in a row were networks already evaluated or
        in flight (candidates cached or waiting since its last new one; warm-start priors and
        the controller's exploration proposals are not the agent's and are not counted)."""
        own = (
            "json_extract(decisions, '$.prior') IS NULL "
            "AND json_extract(decisions, '$.explore') IS NULL"
        )
        row = self._read_one(
            f"SELECT COUNT(*) AS n FROM candidates WHERE search_id = ? AND {own} "
            "AND status IN (?, ?) AND id > COALESCE((SELECT MAX(id) FROM candidates "
            f"WHERE search_id = ? AND {own} AND status NOT IN (?, ?)), 0)",
            (search_id, Status.CACHED, Status.WAITING, search_id, Status.CACHED, Status.WAITING),
        )
        return int(row["n"]) if row else 0

    def best_results(self, search_id: str, k: int) -> list[Trained]:
        """The ``k`` results of highest reward, ties in the order they were recorded."""
        return self._trained(search_id, "reward DESC, rowid", k)

    def _trained(self, search_id: str, order: str, n: int) -> list[Trained]:
        rows = self._read(
            "SELECT arch, params, flops, reward FROM results WHERE search_id = ? "
            f"ORDER BY {order} LIMIT ?",
            (search_id, n),
        )
        return [
            Trained(r["arch"], int(r["params"]), int(r["flops"]), float(r["reward"])) for r in rows
        ]

    def top_results(self, search_id: str, k: int) -> list[ResultRow]:
        """The ``k`` best results: trained ones (full, table, simulated) before scores under
        shared weights, each by accuracy."""
        rows = self._read(
            "SELECT * FROM results WHERE search_id = ? "
            "ORDER BY shared, accuracy DESC, candidate_id LIMIT ?",
            (search_id, k),
        )
        return [result_row(r) for r in rows]


def _report_json(report: Report | None) -> str | None:
    return json.dumps(report_to_json(report), sort_keys=True) if report is not None else None
