"""An agent's stored state: its light part (every call), its weights (when they change), its
progress (what views show), an append-only log and keyed entries."""

from __future__ import annotations

import json
import math
from typing import Any

from controller_service.store.codec import dump_state, load_state
from controller_service.store.database import Database

__all__ = ["AgentTables"]


def _dumps(value: Any) -> str:
    """``json.dumps(value)``; a finite float (a Q-value: hundreds per result) by its repr,
    which is what json writes for it, without the encoder's overhead."""
    if type(value) is float and math.isfinite(value):
        return repr(value)
    return json.dumps(value)


class AgentTables(Database):
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
            [(search_id, k, _dumps(v)) for k, v in entries.items()],
        )

    def log_length(self, search_id: str) -> int:
        row = self._read_one(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS n FROM agent_log WHERE search_id = ?",
            (search_id,),
        )
        return int(row["n"]) if row else 0

    def agent_progress(self, search_id: str) -> dict[str, float] | None:
        """The progress saved with the agent's last state (None if none was saved)."""
        row = self._read_one(
            "SELECT progress FROM agent_progress WHERE search_id = ?", (search_id,)
        )
        return (
            None if row is None else {k: float(v) for k, v in json.loads(row["progress"]).items()}
        )

    def load_agent(self, search_id: str) -> dict[str, Any] | None:
        """The saved state: its weights with the light part laid over them, the agent's whole
        log as ``"log"`` and its keyed entries as ``"entries"`` (both always present)."""
        row = self._read_one("SELECT state FROM agent_state WHERE search_id = ?", (search_id,))
        if row is None:
            return None
        weights = self._read_one(
            "SELECT state FROM agent_weights WHERE search_id = ?", (search_id,)
        )
        state = {} if weights is None else load_state(bytes(weights["state"]))
        state.update(load_state(bytes(row["state"])))
        # The log and the entries are always given, empty before the first result: an agent
        # reloaded then (a restart, or a failed call) must load like any other.
        log = self._read(
            "SELECT item FROM agent_log WHERE search_id = ? ORDER BY seq", (search_id,)
        )
        state["log"] = [json.loads(r["item"]) for r in log]
        entries = self._read(
            "SELECT key, value FROM agent_entries WHERE search_id = ?", (search_id,)
        )
        state["entries"] = {r["key"]: json.loads(r["value"]) for r in entries}
        return state
