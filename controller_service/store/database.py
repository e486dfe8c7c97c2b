"""The SQLite connections: one writer shared behind a lock, one read-only reader per thread,
transactions, and the schema brought up to date on open."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller_service.store.migrations import migrate

__all__ = ["Database", "StoreError"]


class StoreError(RuntimeError):
    """The database cannot be written or read (disk full, read-only, corrupt)."""


class Database:
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
            migrate(self._db)
        except (sqlite3.Error, OSError, ValueError) as exc:
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

    def integrity_check(self) -> str:
        return str(self._exec("PRAGMA integrity_check").fetchone()[0])

    def schema_version(self) -> int:
        return int(self._exec("PRAGMA user_version").fetchone()[0])
