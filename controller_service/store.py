"""SQLite storage of searches, candidates, results and agent state: the only module of the
controller that does I/O.

WAL journal, one transaction per change (``with store.transaction():``), so a kill -9 at any
moment loses nothing that was acknowledged. Agent state is JSON (plain data, tensors tagged) or
``torch.save`` bytes read back with ``torch.load(weights_only=True)``: nothing in the database
is unpickled.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from controller_service.states import Status, sql_in
from controller_service.stopping import Decision

__all__ = [
    "Store",
    "StoreError",
    "dump_state",
    "load_state",
    "CandidateRow",
    "ChildRow",
    "ResultRow",
    "SearchRow",
]

SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS searches (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS candidates (
    search_id TEXT NOT NULL REFERENCES searches(id),
    id INTEGER NOT NULL,
    arch TEXT NOT NULL,
    arch_hash TEXT NOT NULL,
    decisions TEXT NOT NULL,
    status TEXT NOT NULL {STATUS_CHECK},
    lease_deadline REAL,
    twin INTEGER,
    request_id TEXT,
    reissued INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    report TEXT,
    reward REAL,
    PRIMARY KEY (search_id, id)
);
-- with id last, so that "... ORDER BY id" reads only the matching rows instead of the planner
-- walking the whole search in id order (queries cost the same at 10 or 100,000 candidates)
DROP INDEX IF EXISTS candidates_by_status;
DROP INDEX IF EXISTS candidates_by_hash;
DROP INDEX IF EXISTS candidates_by_request;
CREATE INDEX IF NOT EXISTS candidates_by_request_id ON candidates (search_id, request_id, id);
CREATE INDEX IF NOT EXISTS candidates_by_status_id ON candidates (search_id, status, id);
CREATE INDEX IF NOT EXISTS candidates_by_hash_id ON candidates (search_id, arch_hash, id);
CREATE INDEX IF NOT EXISTS candidates_by_twin ON candidates (search_id, twin, id);
CREATE TABLE IF NOT EXISTS results (
    search_id TEXT NOT NULL REFERENCES searches(id),
    arch_hash TEXT NOT NULL,
    candidate_id INTEGER NOT NULL,
    arch TEXT NOT NULL,
    accuracy REAL NOT NULL,
    test_accuracy REAL NOT NULL,
    params INTEGER NOT NULL,
    flops INTEGER NOT NULL,
    seconds REAL NOT NULL,
    reward REAL NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (search_id, arch_hash)
);
CREATE INDEX IF NOT EXISTS results_by_accuracy ON results (search_id, accuracy DESC);
CREATE TABLE IF NOT EXISTS epoch_reports (
    search_id TEXT NOT NULL REFERENCES searches(id),
    candidate_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    decision TEXT NOT NULL {DECISION_CHECK},
    PRIMARY KEY (search_id, candidate_id, epoch)
);
CREATE TABLE IF NOT EXISTS agent_state (
    search_id TEXT PRIMARY KEY REFERENCES searches(id),
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_progress (
    search_id TEXT PRIMARY KEY REFERENCES searches(id),
    progress TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_weights (
    search_id TEXT PRIMARY KEY REFERENCES searches(id),
    state BLOB NOT NULL
);
-- keyed agent data (Q-values): each call upserts only the entries it changed
CREATE TABLE IF NOT EXISTS agent_entries (
    search_id TEXT NOT NULL REFERENCES searches(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (search_id, key)
);
-- append-only agent data (a replay memory): each call stores only the new entries
CREATE TABLE IF NOT EXISTS agent_log (
    search_id TEXT NOT NULL REFERENCES searches(id),
    seq INTEGER NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (search_id, seq)
);
-- candidates per status, kept by triggers in the same transaction: a search's counts cost
-- the same at 10 or 100,000 candidates
CREATE TABLE IF NOT EXISTS candidate_counts (
    search_id TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    reissued INTEGER NOT NULL,
    PRIMARY KEY (search_id, status)
);
"""
COUNT_TRIGGERS = """
CREATE TRIGGER count_insert AFTER INSERT ON candidates BEGIN
    INSERT INTO candidate_counts VALUES (NEW.search_id, NEW.status, 1, NEW.reissued)
    ON CONFLICT (search_id, status) DO UPDATE SET n = n + 1, reissued = reissued + excluded.reissued;
END;
CREATE TRIGGER count_update AFTER UPDATE OF status, reissued ON candidates BEGIN
    UPDATE candidate_counts SET n = n - 1, reissued = reissued - OLD.reissued
    WHERE search_id = OLD.search_id AND status = OLD.status;
    INSERT INTO candidate_counts VALUES (NEW.search_id, NEW.status, 1, NEW.reissued)
    ON CONFLICT (search_id, status) DO UPDATE SET n = n + 1, reissued = reissued + excluded.reissued;
END;
DELETE FROM candidate_counts;
INSERT INTO candidate_counts
    SELECT search_id, status, COUNT(*), SUM(reissued) FROM candidates GROUP BY search_id, status;
"""
SCHEMA = SCHEMA_TEMPLATE.replace("{STATUS_CHECK}", sql_in("status", Status)).replace(
    "{DECISION_CHECK}", sql_in("decision", Decision)
)


_TENSOR = "__tensor__"
_DTYPES = {str(d): d for d in (torch.uint8, torch.int64, torch.int32, torch.float32, torch.float64)}


def is_plain(value: Any) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (tensors tagged)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k != _TENSOR and is_plain(v) for k, v in value.items())
    return isinstance(value, torch.Tensor) and str(value.dtype) in _DTYPES and value.is_contiguous()


def _tag(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        data = base64.b64encode(value.detach().cpu().numpy().tobytes()).decode()
        return {_TENSOR: [str(value.dtype), list(value.shape), data]}
    raise TypeError(f"cannot store {type(value).__name__}")


def _untag(obj: dict[str, Any]) -> Any:
    if _TENSOR in obj and len(obj) == 1:
        dtype, shape, data = obj[_TENSOR]
        raw = bytearray(base64.b64decode(data))
        return (
            torch.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(shape).clone()
            if raw
            else (torch.zeros(shape, dtype=_DTYPES[dtype]))
        )
    return obj


def dump_state(part: dict[str, Any], plain: bool | None = None) -> bytes:
    """An agent state part as bytes: JSON (tensors tagged) when it is made of plain data —
    ten times cheaper to write than ``torch.save`` — else ``torch.save``. Both read back by
    ``load_state`` without unpickling anything. ``plain`` True skips the check (an agent's
    light state is plain by contract; the conformance tests check it)."""
    if plain or (plain is None and is_plain(part)):
        return json.dumps(part, default=_tag, separators=(",", ":")).encode()
    buf = io.BytesIO()
    torch.save(part, buf)
    return buf.getvalue()


def load_state(data: bytes) -> dict[str, Any]:
    if data[:1] == b"{":
        state: dict[str, Any] = json.loads(data, object_hook=_untag)
        return state
    loaded: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return loaded


class StoreError(RuntimeError):
    """The database cannot be written or read (disk full, read-only, corrupt)."""


@dataclass(frozen=True)
class SearchRow:
    id: str
    name: str
    created: float
    spec: dict[str, Any]
    state: str


@dataclass(frozen=True)
class CandidateRow:
    search_id: str
    id: int
    arch: str
    arch_hash: str
    decisions: dict[str, Any]
    status: str
    lease_deadline: float | None
    twin: int | None
    reissued: int
    report: dict[str, Any] | None
    reward: float | None


@dataclass(frozen=True)
class ChildRow:
    """A candidate as a viewer lists it (``Store.candidates_after``)."""

    id: int
    arch: str
    status: str
    reissued: int
    report: dict[str, Any] | None
    reward: float | None


@dataclass(frozen=True)
class ResultRow:
    candidate_id: int
    arch: str
    accuracy: float
    test_accuracy: float
    params: int
    flops: int
    seconds: float
    reward: float
    outcome: dict[str, Any]


def _candidate(row: sqlite3.Row) -> CandidateRow:
    return CandidateRow(
        row["search_id"],
        row["id"],
        row["arch"],
        row["arch_hash"],
        json.loads(row["decisions"]),
        row["status"],
        row["lease_deadline"],
        row["twin"],
        row["reissued"],
        json.loads(row["report"]) if row["report"] else None,
        row["reward"],
    )


def _result(row: sqlite3.Row) -> ResultRow:
    return ResultRow(
        row["candidate_id"],
        row["arch"],
        row["accuracy"],
        row["test_accuracy"],
        row["params"],
        row["flops"],
        row["seconds"],
        row["reward"],
        json.loads(row["outcome"]),
    )


class Store:
    """One writing SQLite connection shared by the server's threads behind a lock, and one
    read-only connection per thread for reads outside a transaction: WAL lets those run
    while another thread writes, so a view or another search never waits for a write.

    Writes go through ``transaction()``; a thread inside its own transaction reads through
    the writing connection (it sees its own uncommitted writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._writer: int | None = None  # the thread inside a transaction
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        try:
            if self.path != ":memory:":
                # Owner-only permissions: the database holds every search's results.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                os.close(fd)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            if not self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'count_insert'"
            ).fetchone():  # a new database, or one written before the counts were kept
                self._db.executescript(f"BEGIN IMMEDIATE; {COUNT_TRIGGERS} COMMIT;")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write the database {self.path}: {exc}") from exc
            self._writer = threading.get_ident()
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise StoreError(f"cannot write the database {self.path}: {exc}") from exc
            finally:
                self._writer = None

    def _rollback(self) -> None:
        # SQLite rolls back by itself on some errors (a full disk, for one).
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """A statement on the writing connection."""
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StoreError(f"database error in {self.path}: {exc}") from exc

    def _exec_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One statement for many rows on the writing connection."""
        try:
            with self._lock:
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise StoreError(f"database error in {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """A query: on this thread's read-only connection, or on the writing one inside this
        thread's transaction (and for an in-memory database, which one connection holds)."""
        if self._writer == threading.get_ident() or self.path == ":memory:":
            return self._exec(sql, args).fetchall()
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error in {self.path}: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            with self._lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the store is closed")
                reader = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                reader.row_factory = sqlite3.Row
                reader.execute("PRAGMA query_only=ON")
                reader.execute("PRAGMA busy_timeout=5000")
                self._readers.append(reader)
            self._local.reader = reader
        return reader

    def _read_one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = self._read(sql, args)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ searches

    def add_search(self, search_id: str, name: str, spec: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO searches (id, name, created, spec, state) VALUES (?, ?, ?, ?, 'running')",
            (search_id, name, time.time(), json.dumps(spec, sort_keys=True)),
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
    ) -> int:
        row = self._exec(
            "SELECT COALESCE(MAX(id), 0) + 1 AS next FROM candidates WHERE search_id = ?",
            (search_id,),
        ).fetchone()
        cid = int(row["next"])
        self._exec(
            "INSERT INTO candidates (search_id, id, arch, arch_hash, decisions, status, "
            "lease_deadline, twin, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        return cid

    def candidate(self, search_id: str, cid: int) -> CandidateRow | None:
        row = self._read_one(
            "SELECT * FROM candidates WHERE search_id = ? AND id = ?", (search_id, cid)
        )
        return _candidate(row) if row else None

    def expired_leases(self, search_id: str, before: float, limit: int) -> list[CandidateRow]:
        """Leased candidates whose lease ends before ``before`` (all of them: ``inf``)."""
        rows = self._read(
            "SELECT * FROM candidates WHERE search_id = ? AND status = 'leased' "
            "AND lease_deadline < ? ORDER BY id LIMIT ?",
            (search_id, before, limit),
        )
        return [_candidate(r) for r in rows]

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
            "WHERE search_id = ? AND id = ? AND status = 'leased' AND lease_deadline = ?",
            (search_id, cid, deadline),
        )
        return cursor.rowcount == 1

    def by_request(self, search_id: str, request_id: str) -> list[CandidateRow]:
        rows = self._read(
            "SELECT * FROM candidates WHERE search_id = ? AND request_id = ? "
            "AND status IN ('leased', 'cached', 'done', 'failed') ORDER BY id",
            (search_id, request_id),
        )
        return [_candidate(r) for r in rows]

    def in_flight_with_hash(self, search_id: str, arch_hash: str) -> CandidateRow | None:
        row = self._read_one(
            "SELECT * FROM candidates WHERE search_id = ? AND arch_hash = ? AND status = 'leased' "
            "ORDER BY id LIMIT 1",
            (search_id, arch_hash),
        )
        return _candidate(row) if row else None

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
            "SELECT * FROM candidates WHERE search_id = ? AND twin = ? AND status = 'waiting' "
            "ORDER BY id",
            (search_id, cid),
        )
        return [_candidate(r) for r in rows]

    def finish_candidate(
        self,
        search_id: str,
        cid: int,
        status: str,
        report: dict[str, Any] | None,
        reward: float | None,
    ) -> None:
        self._exec(
            "UPDATE candidates SET status = ?, report = ?, reward = ?, lease_deadline = NULL "
            "WHERE search_id = ? AND id = ?",
            (
                status,
                json.dumps(report, sort_keys=True) if report is not None else None,
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
                r["id"],
                r["arch"],
                r["status"],
                r["reissued"],
                json.loads(r["report"]) if r["report"] else None,
                r["reward"],
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

    def add_result(self, search_id: str, arch_hash: str, row: ResultRow) -> None:
        self._exec(
            "INSERT INTO results (search_id, arch_hash, candidate_id, arch, accuracy, "
            "test_accuracy, params, flops, seconds, reward, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                json.dumps(row.outcome, sort_keys=True),
            ),
        )

    def result(self, search_id: str, arch_hash: str) -> ResultRow | None:
        row = self._read_one(
            "SELECT * FROM results WHERE search_id = ? AND arch_hash = ?", (search_id, arch_hash)
        )
        return _result(row) if row else None

    def top_results(self, search_id: str, k: int) -> list[ResultRow]:
        rows = self._read(
            "SELECT * FROM results WHERE search_id = ? ORDER BY accuracy DESC, candidate_id "
            "LIMIT ?",
            (search_id, k),
        )
        return [_result(r) for r in rows]

    # ------------------------------------------------------------------ agent state

    def save_agent(
        self,
        search_id: str,
        state: dict[str, Any],
        heavy: dict[str, Any] | None = None,
        progress: dict[str, float] | None = None,
    ) -> None:
        """Save an agent's state: ``state`` every call; ``heavy`` (weights, optimiser) only
        when it changed — the last one saved stays and is merged in by ``load_agent``;
        ``progress`` (what views show) so that a view never needs to load the agent."""
        self.write_agent(
            search_id, dump_state(state), None if heavy is None else dump_state(heavy), progress
        )

    def write_agent(
        self,
        search_id: str,
        light: bytes,
        heavy: bytes | None = None,
        progress: dict[str, float] | None = None,
    ) -> None:
        """``save_agent`` with the parts already serialised by ``dump_state`` (outside the
        transaction, so that a large agent does not hold the writing connection)."""
        if progress is not None:
            self._exec(
                "INSERT INTO agent_progress (search_id, progress) VALUES (?, ?) "
                "ON CONFLICT (search_id) DO UPDATE SET progress = excluded.progress",
                (search_id, json.dumps(progress, sort_keys=True)),
            )
        for table, part in (("agent_state", light), ("agent_weights", heavy)):
            if part is not None:
                self._exec(
                    f"INSERT INTO {table} (search_id, state) VALUES (?, ?) "
                    "ON CONFLICT (search_id) DO UPDATE SET state = excluded.state",
                    (search_id, part),
                )

    def append_log(self, search_id: str, start: int, items: list[Any]) -> None:
        """Store ``items`` as entries ``start``, ``start + 1``, ... of the search's agent log."""
        self._exec_many(
            "INSERT INTO agent_log (search_id, seq, item) VALUES (?, ?, ?)",
            [(search_id, start + i, json.dumps(item)) for i, item in enumerate(items)],
        )

    def write_entries(self, search_id: str, entries: dict[str, Any]) -> None:
        """Upsert keyed agent entries (``load_agent`` gives them back as ``entries``)."""
        self._exec_many(
            "INSERT INTO agent_entries (search_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (search_id, key) DO UPDATE SET value = excluded.value",
            [(search_id, k, json.dumps(v)) for k, v in entries.items()],
        )

    def log_length(self, search_id: str) -> int:
        row = self._read_one(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS n FROM agent_log WHERE search_id = ?",
            (search_id,),
        )
        return int(row["n"]) if row else 0

    def has_agent_weights(self, search_id: str) -> bool:
        """Whether the agent's heavy part is stored apart (databases written before the split
        keep the whole state in agent_state)."""
        return (
            self._read_one("SELECT 1 FROM agent_weights WHERE search_id = ?", (search_id,))
            is not None
        )

    def agent_progress(self, search_id: str) -> dict[str, float] | None:
        """The progress saved with the agent's last state (None if none was saved)."""
        row = self._read_one(
            "SELECT progress FROM agent_progress WHERE search_id = ?", (search_id,)
        )
        return (
            None if row is None else {k: float(v) for k, v in json.loads(row["progress"]).items()}
        )

    def load_agent(self, search_id: str) -> dict[str, Any] | None:
        """The saved state, its heavy part merged in, with the agent's whole log as ``"log"``
        and its keyed entries as ``"entries"`` (both always present)."""
        row = self._read_one("SELECT state FROM agent_state WHERE search_id = ?", (search_id,))
        if row is None:
            return None
        state = load_state(bytes(row["state"]))
        weights = self._read_one(
            "SELECT state FROM agent_weights WHERE search_id = ?", (search_id,)
        )
        if weights is not None:
            state.update(load_state(bytes(weights["state"])))
        # The log and the entries are always given, empty before the first result: an agent
        # reloaded then (a restart, or a failed call) must load like any other.
        log = self._read(
            "SELECT item FROM agent_log WHERE search_id = ? ORDER BY seq", (search_id,)
        )
        # databases written before the replay memory was a log keep it as "memory"
        old_log = state.pop("memory", [])
        state["log"] = [json.loads(r["item"]) for r in log] if log else old_log
        entries = self._read(
            "SELECT key, value FROM agent_entries WHERE search_id = ?", (search_id,)
        )
        state["entries"] = {r["key"]: json.loads(r["value"]) for r in entries}
        return state

    @staticmethod
    def canonical(report: dict[str, Any]) -> dict[str, Any]:
        """``report`` as it reads back from the store (tuples become lists), so that a report
        sent again compares equal to the stored one."""
        data: dict[str, Any] = json.loads(json.dumps(report, sort_keys=True))
        return data

    def integrity_check(self) -> str:
        return str(self._exec("PRAGMA integrity_check").fetchone()[0])
