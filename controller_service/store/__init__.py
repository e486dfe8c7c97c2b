"""SQLite storage: the only I/O of the controller.

- ``schema.py``: the tables of the newest schema version;
- ``migrations.py``: numbered steps (``PRAGMA user_version``) that bring an older database to
  it on open; the only place that knows what older versions stored;
- ``codec.py``: agent state as bytes (JSON with tensors tagged, or ``torch.save``), never
  unpickled;
- ``database.py``: connections, transactions; ``agent_tables.py`` and ``repository.py``: the
  typed reads and writes (``Store``).
"""

from __future__ import annotations

from controller_service.store.codec import dump_state, is_plain, load_state
from controller_service.store.database import StoreError
from controller_service.store.repository import Store
from controller_service.store.rows import CandidateRow, ChildRow, ResultRow, SearchRow, Trained

__all__ = [
    "Store",
    "StoreError",
    "dump_state",
    "load_state",
    "is_plain",
    "CandidateRow",
    "ChildRow",
    "ResultRow",
    "SearchRow",
    "Trained",
]
