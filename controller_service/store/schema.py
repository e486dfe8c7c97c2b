"""The database's tables as the newest schema version has them. Old databases reach this
shape through ``migrations.py``; a new one is created by its first migration."""

from __future__ import annotations

from controller_service.states import Status, sql_in
from controller_service.stopping import Decision

__all__ = ["TABLES", "COUNT_TRIGGERS", "EVALUATION_INDEXES"]

TABLES = f"""
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
    status TEXT NOT NULL {sql_in("status", Status)},
    lease_deadline REAL,
    twin INTEGER,
    request_id TEXT,
    reissued INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    report TEXT,
    reward REAL,
    -- 1: handed out by a SHARED search's top-k stage for full training
    final INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (search_id, id)
);
-- with id last, so that "... ORDER BY id" reads only the matching rows instead of the planner
-- walking the whole search in id order (queries cost the same at 10 or 100,000 candidates)
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
    -- 1: evaluated under shared weights (ranks after every trained result)
    shared INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (search_id, arch_hash)
);
CREATE TABLE IF NOT EXISTS epoch_reports (
    search_id TEXT NOT NULL REFERENCES searches(id),
    candidate_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    decision TEXT NOT NULL {sql_in("decision", Decision)},
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
CREATE TRIGGER IF NOT EXISTS count_insert AFTER INSERT ON candidates BEGIN
    INSERT INTO candidate_counts VALUES (NEW.search_id, NEW.status, 1, NEW.reissued)
    ON CONFLICT (search_id, status) DO UPDATE SET n = n + 1, reissued = reissued + excluded.reissued;
END;
CREATE TRIGGER IF NOT EXISTS count_update AFTER UPDATE OF status, reissued ON candidates BEGIN
    UPDATE candidate_counts SET n = n - 1, reissued = reissued - OLD.reissued
    WHERE search_id = OLD.search_id AND status = OLD.status;
    INSERT INTO candidate_counts VALUES (NEW.search_id, NEW.status, 1, NEW.reissued)
    ON CONFLICT (search_id, status) DO UPDATE SET n = n + 1, reissued = reissued + excluded.reissued;
END;
"""

#: made by migration 8 (on columns that older databases get there): the leaderboard's order
#: (trained results before shared-weights scores, then by accuracy) and a SHARED search's
#: top-k stage candidates
EVALUATION_INDEXES = """
CREATE INDEX IF NOT EXISTS results_by_rank ON results (search_id, shared, accuracy DESC);
CREATE INDEX IF NOT EXISTS candidates_final ON candidates (search_id, arch_hash) WHERE final = 1;
"""
