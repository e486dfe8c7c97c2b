"""Numbered migrations: the database's schema version is ``PRAGMA user_version`` and
``migrate`` brings any database to the newest one on open, one transaction per step.

Compatibility with what older versions stored lives here and only here: once migrated, a
database looks exactly as if the newest code had written it, so the repository and the
domain read one form. Databases from before versions were numbered have version 0; the
first migration gives them (and new databases) the tables of ``schema.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from controller_service.store.codec import dump_state, load_state
from controller_service.store.schema import COUNT_TRIGGERS, EVALUATION_INDEXES, TABLES

__all__ = ["MIGRATIONS", "LATEST", "migrate", "version_of"]

Migration = Callable[[sqlite3.Connection], None]


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run each statement of ``sql`` inside the current transaction (``executescript``
    would commit first)."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


def baseline(db: sqlite3.Connection) -> None:
    """1: the tables of ``schema.py``. Older databases: indexes that did not end in ``id``
    are replaced, and the per-status counts (kept by triggers since) are counted once."""
    _script(db, TABLES)
    for old in ("candidates_by_status", "candidates_by_hash", "candidates_by_request"):
        db.execute(f"DROP INDEX IF EXISTS {old}")
    counted = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'count_insert'"
    ).fetchone()
    if not counted:
        _script(db, COUNT_TRIGGERS)
        db.execute("DELETE FROM candidate_counts")
        db.execute(
            "INSERT INTO candidate_counts SELECT search_id, status, COUNT(*), SUM(reissued) "
            "FROM candidates GROUP BY search_id, status"
        )


def weights_apart(db: sqlite3.Connection) -> None:
    """2: an agent saved whole in agent_state (before its weights were stored apart) gets
    that whole state as its weights too. Loading lays the light part over the weights, so
    the agent loads as before, and its first save with new weights replaces the copy."""
    db.execute(
        "INSERT INTO agent_weights (search_id, state) SELECT search_id, state FROM agent_state "
        "WHERE search_id NOT IN (SELECT search_id FROM agent_weights)"
    )


def replay_log(db: sqlite3.Connection) -> None:
    """3: a replay memory stored in the agent's state as ``memory`` (before it was an
    append-only log) moves to agent_log, unless the search already logs."""
    for table in ("agent_state", "agent_weights"):
        for search_id, data in db.execute(f"SELECT search_id, state FROM {table}").fetchall():
            state = load_state(bytes(data))
            if "memory" not in state:
                continue
            memory = state.pop("memory")
            logged = db.execute(
                "SELECT 1 FROM agent_log WHERE search_id = ? LIMIT 1", (search_id,)
            ).fetchone()
            if not logged:
                db.executemany(
                    "INSERT INTO agent_log (search_id, seq, item) VALUES (?, ?, ?)",
                    [(search_id, i, json.dumps(item)) for i, item in enumerate(memory)],
                )
            db.execute(
                f"UPDATE {table} SET state = ? WHERE search_id = ?", (dump_state(state), search_id)
            )


#: a search's settings that older versions did not store, as those versions behaved
#: without them: never stop a child, no warm start, no constraints, no screening, a
#: built-in dataset
_SPEC_DEFAULTS: dict[str, Any] = {
    "early_stopping": {},
    "warm_start": {
        "architectures": [],
        "search_id": "",
        "top": 10,
        "pretrain_steps": 50,
        "pretrain_learning_rate": 0.01,
    },
    "constraints": {},
    "screening": {},
    "input": None,
}


def spec_settings(db: sqlite3.Connection) -> None:
    """4: every stored search spec names every setting (``SearchSpec.from_json`` reads
    them all); a MetaQNN space stored before ``pool_first`` allowed pooling first."""
    for search_id, text in db.execute("SELECT id, spec FROM searches").fetchall():
        spec = json.loads(text)
        new = {**_SPEC_DEFAULTS, **json.loads(text)}  # a copy: ``spec`` stays as stored
        if new["warm_start"] is None:
            new["warm_start"] = _SPEC_DEFAULTS["warm_start"]
        space = new.get("space")
        if space is not None and space.get("name") == "metaqnn":
            space.setdefault("pool_first", True)
        if new != spec:
            db.execute(
                "UPDATE searches SET spec = ? WHERE id = ?",
                (json.dumps(new, sort_keys=True), search_id),
            )


def _fill_reinforce_states(db: sqlite3.Connection, missing: dict[str, Any]) -> None:
    """Give every stored REINFORCE state the ``missing`` entries it lacks."""
    rows = db.execute(
        "SELECT a.search_id, a.state FROM agent_state a JOIN searches s ON s.id = a.search_id "
        "WHERE json_extract(s.spec, '$.agent') = 'reinforce'"
    ).fetchall()
    for search_id, data in rows:
        state = load_state(bytes(data))
        if not missing.keys() <= state.keys():
            db.execute(
                "UPDATE agent_state SET state = ? WHERE search_id = ?",
                (dump_state(missing | state), search_id),
            )


def reinforce_pretrained(db: sqlite3.Connection) -> None:
    """5: a REINFORCE agent saved before warm starts existed was pre-trained on nothing."""
    _fill_reinforce_states(db, {"pretrained": 0})


def reinforce_advantages(db: sqlite3.Connection) -> None:
    """7: a REINFORCE agent saved before ``standardize`` and ``elite`` existed (both off in its
    settings) had no reward variance and an empty elite."""
    _fill_reinforce_states(db, {"variance": None, "elite": []})


def q_table_entries(db: sqlite3.Connection) -> None:
    """6: a Q-learning agent saved with its whole Q-table in its state (``q``, before the
    table was stored entry by entry) gets the values as entries (those already stored as
    entries are newer and stay); one saved before results were recorded apart from learning
    had none queued."""
    agents = "SELECT id FROM searches WHERE json_extract(spec, '$.agent') = 'qlearning'"
    for table in ("agent_state", "agent_weights"):
        rows = db.execute(
            f"SELECT search_id, state FROM {table} WHERE search_id IN ({agents})"
        ).fetchall()
        for search_id, data in rows:
            state = load_state(bytes(data))
            changed = "q" in state or (table == "agent_state" and "queued" not in state)
            if not changed:
                continue
            db.executemany(
                "INSERT INTO agent_entries (search_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (search_id, key) DO NOTHING",
                [(search_id, k, json.dumps(v)) for k, v in state.pop("q", {}).items()],
            )
            if table == "agent_state":
                state.setdefault("queued", [])
            db.execute(
                f"UPDATE {table} SET state = ? WHERE search_id = ?", (dump_state(state), search_id)
            )


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def search_evaluation(db: sqlite3.Connection) -> None:
    """8: a search stored before evaluation settings trained every child fully; candidates
    get ``final`` (none was handed out by a top-k stage) and results ``shared``, read from
    the stored outcome (a search run on a --supernet trainer may have some); the leaderboard
    index puts trained results first."""
    if "final" not in _columns(db, "candidates"):
        db.execute("ALTER TABLE candidates ADD COLUMN final INTEGER NOT NULL DEFAULT 0")
    if "shared" not in _columns(db, "results"):
        db.execute("ALTER TABLE results ADD COLUMN shared INTEGER NOT NULL DEFAULT 0")
    db.execute(
        "UPDATE results SET shared = 1 WHERE json_extract(outcome, '$.evaluation') = 'shared'"
    )
    db.execute("DROP INDEX IF EXISTS results_by_accuracy")
    _script(db, EVALUATION_INDEXES)
    for search_id, text in db.execute("SELECT id, spec FROM searches").fetchall():
        spec = json.loads(text)
        if "evaluation" not in spec:
            spec["evaluation"] = {"mode": "full", "steps": 0, "warmup_children": 0, "top_k": 0}
            db.execute(
                "UPDATE searches SET spec = ? WHERE id = ?",
                (json.dumps(spec, sort_keys=True), search_id),
            )


MIGRATIONS: tuple[Migration, ...] = (
    baseline,
    weights_apart,
    replay_log,
    spec_settings,
    reinforce_pretrained,
    q_table_entries,
    reinforce_advantages,
    search_evaluation,
)
LATEST = len(MIGRATIONS)


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> None:
    """Bring ``db`` (autocommit mode) to ``LATEST``, each step in its own transaction. A
    database newer than this code is refused (ValueError): it may hold what this code
    would misread."""
    version = version_of(db)
    if version > LATEST:
        raise ValueError(f"schema version {version} is newer than this controller's {LATEST}")
    for number in range(version + 1, LATEST + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](db)
            db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
