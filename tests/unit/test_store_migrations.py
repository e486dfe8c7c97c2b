"""Numbered migrations of the controller's database: each starts from a database written by
an older nasrl (SQL dumps in tests/data/store/, made by running that commit's code) and
checks what its step changed; every old database then serves its searches on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller_service.evaluation import SearchEvaluation
from controller_service.searches import Searches
from controller_service.spec import SearchSpec
from controller_service.store import Store, StoreError, load_state
from controller_service.store.migrations import LATEST
from nasrl.core.results import Evaluation
from tests.helpers import outcome, same_state

DUMPS = Path(__file__).resolve().parents[1] / "data" / "store"
#: the commit whose code wrote each dump, oldest first:
#: 844346d  agent state whole in one row (torch.save), replay memory inside it, specs
#:          without early stopping, warm starts, constraints, screening, datasets' shapes;
#:          indexes that do not end in id, no counts kept
#: 07a9f39  weights apart, progress stored, epoch reports; still no counts kept
#: 123ac95  counts kept by triggers, replay memory as a log; Q-table in the state
#: a77e8ea  the last database before schema versions were numbered (Q-table as entries)
COMMITS = ("844346d", "07a9f39", "123ac95", "a77e8ea")


def old_database(tmp_path: Path, commit: str) -> Path:
    path = tmp_path / f"{commit}.db"
    db = sqlite3.connect(path)
    db.executescript((DUMPS / f"unversioned-{commit}.sql").read_text())
    db.close()
    return path


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("commit", COMMITS)
def test_an_old_database_is_upgraded_on_open_and_its_searches_go_on(
    tmp_path: Path, commit: str
) -> None:
    path = old_database(tmp_path, commit)
    assert rows(path, "PRAGMA user_version") == [(0,)]
    expected: dict[str, dict[str, int]] = {}
    for sid, status, n in rows(
        path, "SELECT search_id, status, COUNT(*) FROM candidates GROUP BY search_id, status"
    ):
        expected.setdefault(str(sid), {"reissued": 0})[str(status)] = int(str(n))
    store = Store(path)
    assert store.schema_version() == LATEST
    searches = Searches(store)
    views = searches.all()
    assert sorted(v.spec.agent for v in views) == ["qlearning", "random", "reinforce"]
    for v in views:
        assert v.counts == expected[v.id] and v.counts["failed"] == 1
        handouts, done = searches.sample(v.id, 2)
        assert handouts and not done
        for h in handouts:
            if h.cached is None:
                assert searches.update(v.id, h.id, outcome(h.text, 0.6), None).accepted
        assert searches.view(v.id).progress  # the agent loaded and learnt
    store.close()
    again = Store(path)  # reopening an up-to-date database changes nothing
    assert again.schema_version() == LATEST
    again.close()


def test_1_baseline_keeps_counts_and_replaces_old_indexes(tmp_path: Path) -> None:
    path = old_database(tmp_path, "07a9f39")
    by_status = rows(
        path, "SELECT search_id, status, COUNT(*) FROM candidates GROUP BY search_id, status"
    )
    Store(path).close()
    names = {r[0] for r in rows(path, "SELECT name FROM sqlite_master")}
    assert {"count_insert", "count_update", "candidates_by_status_id"} <= names
    assert not names & {"candidates_by_status", "candidates_by_hash", "candidates_by_request"}
    assert sorted(rows(path, "SELECT search_id, status, n FROM candidate_counts")) == sorted(
        by_status
    )


def test_2_weights_apart_keeps_an_agent_saved_whole(tmp_path: Path) -> None:
    path = old_database(tmp_path, "844346d")
    whole = {
        sid: load_state(bytes(state))
        for sid, state in rows(path, "SELECT search_id, state FROM agent_state")
    }
    store = Store(path)
    stored = dict(rows(path, "SELECT search_id, state FROM agent_weights"))
    assert stored.keys() == whole.keys()
    for sid, state in whole.items():
        loaded = store.load_agent(sid)
        assert loaded is not None
        for key, value in state.items():
            if key not in ("memory", "q"):  # moved by migrations 3 and 6
                assert same_state(loaded[key], value), key
    store.close()


def test_3_replay_memory_moves_to_the_log(tmp_path: Path) -> None:
    path = old_database(tmp_path, "844346d")
    memories = {}
    for sid, state in rows(path, "SELECT search_id, state FROM agent_state"):
        old = load_state(bytes(state))
        if "memory" in old:
            memories[sid] = json.loads(json.dumps(old["memory"]))
    assert memories  # the Q-learning search kept one
    store = Store(path)
    for sid, memory in memories.items():
        state = store.load_agent(sid)
        assert state is not None and "memory" not in state and state["log"] == memory
        assert store.log_length(sid) == len(memory)
    for (blob,) in rows(
        path, "SELECT state FROM agent_state UNION ALL SELECT state FROM agent_weights"
    ):
        assert "memory" not in load_state(bytes(blob))
    store.close()


def test_4_stored_specs_name_every_setting(tmp_path: Path) -> None:
    path = old_database(tmp_path, "844346d")
    before = [json.loads(str(s)) for (s,) in rows(path, "SELECT spec FROM searches")]
    assert all("early_stopping" not in s and "screening" not in s for s in before)
    Store(path).close()
    for (text,) in rows(path, "SELECT spec FROM searches"):
        spec = json.loads(str(text))
        for key in ("early_stopping", "warm_start", "constraints", "screening", "input"):
            assert key in spec
        loaded = SearchSpec.from_json(spec)
        defaults = SearchSpec()
        assert loaded.early_stopping == defaults.early_stopping  # never stops a child
        assert loaded.warm_start == defaults.warm_start and not loaded.warm_start.active
        assert loaded.constraints == defaults.constraints
        assert loaded.screening == defaults.screening and loaded.input is None


def test_4_a_metaqnn_space_stored_before_pool_first_allows_pooling_first(
    tmp_path: Path,
) -> None:
    path = old_database(tmp_path, "a77e8ea")
    db = sqlite3.connect(path)
    ((sid, text),) = db.execute(
        "SELECT id, spec FROM searches WHERE json_extract(spec, '$.agent') = 'qlearning'"
    ).fetchall()
    spec = json.loads(text)
    assert spec["space"]["name"] == "metaqnn"
    del spec["space"]["pool_first"]
    db.execute("UPDATE searches SET spec = ? WHERE id = ?", (json.dumps(spec), sid))
    db.commit()
    db.close()
    searches = Searches(Store(path))
    space = searches.spec(sid).space
    assert space is not None and getattr(space, "pool_first") is True


def test_5_a_reinforce_agent_from_before_warm_starts_was_pretrained_on_nothing(
    tmp_path: Path,
) -> None:
    path = old_database(tmp_path, "844346d")
    store = Store(path)
    searches = Searches(store)
    (view,) = [v for v in searches.all() if v.spec.agent == "reinforce"]
    state = store.load_agent(view.id)
    assert state is not None and state["pretrained"] == 0
    assert "pretrained_on" not in searches.view(view.id).progress
    store.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this controller"):
        Store(path)


@pytest.mark.parametrize("commit", ["844346d", "123ac95"])
def test_6_a_q_table_kept_whole_becomes_entries(tmp_path: Path, commit: str) -> None:
    path = old_database(tmp_path, commit)
    (sid,) = [
        str(r[0])
        for r in rows(
            path, "SELECT id FROM searches WHERE json_extract(spec, '$.agent') = 'qlearning'"
        )
    ]
    table: dict[str, float] = {}
    tables = {str(r[0]) for r in rows(path, "SELECT name FROM sqlite_master")}
    for name in {"agent_state", "agent_weights"} & tables:
        for (blob,) in rows(path, f"SELECT state FROM {name} WHERE search_id = '{sid}'"):
            table.update(load_state(bytes(blob)).get("q", {}))
    assert table
    store = Store(path)
    state = store.load_agent(sid)
    assert state is not None and "q" not in state and state["entries"] == table
    assert state["queued"] == []
    store.close()


@pytest.mark.parametrize("commit", ["844346d", "a77e8ea"])
def test_7_a_reinforce_agent_from_before_standardize_and_elite_had_neither(
    tmp_path: Path, commit: str
) -> None:
    path = old_database(tmp_path, commit)
    store = Store(path)
    searches = Searches(store)
    (view,) = [v for v in searches.all() if v.spec.agent == "reinforce"]
    state = store.load_agent(view.id)
    assert state is not None and state["variance"] is None and state["elite"] == []
    handouts, _ = searches.sample(view.id, 2)  # the agent loads and goes on
    assert len(handouts) == 2
    store.close()


@pytest.mark.parametrize("commit", COMMITS)
def test_8_searches_from_before_evaluation_settings_trained_every_child_fully(
    tmp_path: Path, commit: str
) -> None:
    path = old_database(tmp_path, commit)
    db = sqlite3.connect(path)
    # a search of that time run on a --supernet trainer: one result says so
    ((sid, arch_hash, text),) = db.execute(
        "SELECT search_id, arch_hash, outcome FROM results ORDER BY accuracy DESC LIMIT 1"
    ).fetchall()
    shared = {**json.loads(text), "evaluation": "shared"}
    db.execute(
        "UPDATE results SET outcome = ? WHERE search_id = ? AND arch_hash = ?",
        (json.dumps(shared), sid, arch_hash),
    )
    db.commit()
    db.close()
    store = Store(path)
    searches = Searches(store)
    for view in searches.all():
        assert view.spec.evaluation == SearchEvaluation()  # FULL
    assert {r[0] for r in rows(path, "SELECT final FROM candidates")} == {0}
    assert rows(path, "SELECT search_id, arch_hash FROM results WHERE shared = 1") == [
        (sid, arch_hash)
    ]
    indexes = {str(r[0]) for r in rows(path, "SELECT name FROM sqlite_master")}
    assert "results_by_rank" in indexes and "results_by_accuracy" not in indexes
    board = searches.leaderboard(sid, 100)  # the best, a shared score, ranks last
    assert board[-1].outcome.evaluation is Evaluation.SHARED
    assert all(r.outcome.evaluation is not Evaluation.SHARED for r in board[:-1])
    for (text,) in rows(path, "SELECT spec FROM searches"):
        assert json.loads(str(text))["evaluation"]["mode"] == "full"
    store.close()
