"""The controller writes an agent's weights only when they change (REINFORCE: once per
policy-gradient step), its small state on every call — and a restart continues exactly."""

from __future__ import annotations

from pathlib import Path

from controller_service.agents.qlearning import QLearningAgent
from controller_service.searches import Searches
from controller_service.spec import SearchSpec
from controller_service.store import Store
from tests.helpers import outcome, same_state


def _weights(store: Store, search_id: str) -> bytes:
    row = store._exec(
        "SELECT state FROM agent_weights WHERE search_id = ?", (search_id,)
    ).fetchone()
    return bytes(row["state"])


def test_reinforce_weights_are_written_once_per_step(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    sid = searches.create(SearchSpec(agent="reinforce", agent_settings={"batch": 4}, budget=20)).id
    written = [_weights(store, sid)]
    handouts, _ = searches.sample(sid, 8)
    assert _weights(store, sid) == written[0]  # sampling never changes the weights
    for i, h in enumerate(handouts, start=1):
        searches.update(sid, h.id, outcome(h.text, 0.1 * i), None)
        if _weights(store, sid) != written[-1]:
            written.append(_weights(store, sid))
    # A full batch is learnt at the search's next call, outside its write transaction.
    searches.sample(sid, 1)
    if _weights(store, sid) != written[-1]:
        written.append(_weights(store, sid))
    assert len(written) == 3  # the initial weights, then one write per step of 4 results
    # a fresh controller on the same database has the same agent, weights included
    again = Searches(Store(tmp_path / "c.db"))
    before = searches.live.get(sid).agent(searches.store).state_dict()
    assert same_state(again.live.get(sid).agent(again.store).state_dict(), before)


def test_views_after_a_restart_do_not_load_agents(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    ids = [
        searches.create(SearchSpec(agent=a, budget=5)).id
        for a in ("reinforce", "qlearning", "evolution")
    ]
    for sid in ids:
        searches.sample(sid, 2)
    progress = {v.id: v.progress for v in searches.all()}
    again = Searches(Store(tmp_path / "c.db"))
    views = again.all()
    assert not again.live.loaded()  # listed from the stored progress alone
    assert {v.id: v.progress for v in views} == progress


def test_a_database_written_before_the_split_keeps_its_weights(tmp_path: Path) -> None:
    """An agent saved whole in agent_state (as before weights were stored apart) loads, and
    its weights are written to agent_weights at the next save, not lost."""
    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    sid = searches.create(SearchSpec(agent="reinforce", budget=20)).id
    whole = searches.live.get(sid).agent(searches.store).state_dict()
    with store.transaction():
        store.save_agent(sid, whole)  # the old layout: everything in one row
        store._exec("DELETE FROM agent_weights WHERE search_id = ?", (sid,))
        store._exec("PRAGMA user_version = 1")  # before migration 2 kept weights apart
    old = Searches(Store(tmp_path / "c.db"))
    old.sample(sid, 2)
    expected = old.live.get(sid).agent(old.store).state_dict()
    again = Searches(Store(tmp_path / "c.db"))
    assert same_state(again.live.get(sid).agent(again.store).state_dict(), expected)


def test_state_bytes_round_trip_exactly() -> None:
    """Plain states (every call's light part) are stored as JSON with tensors tagged; states
    JSON would change (integer keys, as in an optimiser's) fall back to torch.save."""
    import torch

    from controller_service.store import dump_state, load_state

    plain = {
        "rng": [3, list(range(625)), None],
        "generator": torch.arange(7, dtype=torch.uint8),
        "baseline": 0.1 + 0.2,
        "pending": [{"tokens": [[1, 2]], "advantage": -1e-300}],
        "empty": torch.zeros(0, dtype=torch.float32),
    }
    data = dump_state(plain)
    assert data[:1] == b"{"
    assert same_state(load_state(data), plain)
    keyed = {"optimizer": {"state": {0: {"step": torch.tensor(3.0)}}}}
    data = dump_state(keyed)
    assert data[:2] == b"PK"  # torch.save's zip
    assert same_state(load_state(data), keyed)


def test_counts_are_kept_by_triggers_and_rebuilt_for_an_older_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    sid = searches.create(SearchSpec(agent="random", budget=4)).id
    handouts, _ = searches.sample(sid, 3)
    searches.update(sid, handouts[0].id, outcome(handouts[0].text, 0.5), None)
    searches.update(sid, handouts[1].id, None, "out of memory")
    expected = {"leased": 1, "done": 1, "failed": 1, "reissued": 0}
    assert store.counts(sid) == expected
    with store.transaction():  # a database written before the counts were kept
        store._exec("DROP TRIGGER count_insert")
        store._exec("DROP TRIGGER count_update")
        store._exec("DELETE FROM candidate_counts")
        store._exec("PRAGMA user_version = 0")  # unversioned, as such databases are
    store.close()
    again = Store(tmp_path / "c.db")
    assert again.counts(sid) == expected
    Searches(again).sample(sid, 1, reclaim=True)  # the leased one handed out again
    assert again.counts(sid) == {**expected, "reissued": 1}


def test_qlearning_memory_is_stored_as_a_log_of_new_entries(tmp_path: Path) -> None:
    """The replay memory grows with the unique models: each call stores only its new
    entries, the Q-table alone is the heavy state, and a restart has the whole memory."""
    from controller_service.spec import named_space

    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    sid = searches.create(SearchSpec(agent="qlearning", budget=30, space=named_space("metaqnn"))).id
    handouts, _ = searches.sample(sid, 6)
    for i, h in enumerate(handouts):
        searches.update(sid, h.id, outcome(h.text, 0.1 + 0.1 * i), None)
    searches.sample(sid, 1)  # the last result is learnt (and logged) at the next call
    agent = searches.live.get(sid).agent(searches.store)
    assert isinstance(agent, QLearningAgent)
    assert store.log_length(sid) == len(agent.memory) == len({h.text for h in handouts})
    heavy = store._exec("SELECT state FROM agent_weights WHERE search_id = ?", (sid,)).fetchone()
    assert b"memory" not in bytes(heavy["state"])
    again = Searches(Store(tmp_path / "c.db"))
    assert same_state(again.live.get(sid).agent(again.store).state_dict(), agent.state_dict())


def test_qlearning_q_table_is_stored_entry_by_entry(tmp_path: Path) -> None:
    """A result writes only the Q-values it changed; a restart has the whole table."""
    from controller_service.agents.qlearning import QLearningAgent
    from controller_service.spec import named_space

    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    spec = SearchSpec(agent="qlearning", budget=400, space=named_space("metaqnn"))
    sid = searches.create(spec).id
    written: list[int] = []
    original = store.write_entries

    def counting(search_id: str, entries: dict[str, object]) -> None:
        written.append(len(entries))
        original(search_id, entries)

    store.write_entries = counting  # type: ignore[method-assign]
    for i in range(200):  # enough stored models that 100 replays touch only part of the table
        (h,), _ = searches.sample(sid, 1)
        if h.cached is None:
            searches.update(sid, h.id, outcome(h.text, 0.2 + 0.003 * i), None)
    agent = searches.live.get(sid).agent(searches.store)
    assert isinstance(agent, QLearningAgent)
    assert written[-1] < len(agent.q) / 2, (written[-5:], len(agent.q))
    assert sum(written) >= len(agent.q)
    again = Searches(Store(tmp_path / "c.db"))
    assert same_state(again.live.get(sid).agent(again.store).state_dict(), agent.state_dict())


def test_a_search_stored_before_a_bound_was_lowered_keeps_working(tmp_path: Path) -> None:
    """reinforce.hidden went from at most 1,024 to at most 256: a new search with more is
    refused, one stored with more before still loads and samples."""
    import json

    import pytest

    from controller_service.spec import SpecError
    from nasrl.core.agent_settings import AgentSettingsError

    store = Store(tmp_path / "c.db")
    searches = Searches(store)
    with pytest.raises((SpecError, AgentSettingsError), match="hidden must be between 1 and 256"):
        searches.create(SearchSpec(agent="reinforce", agent_settings={"hidden": 300}, budget=5))
    sid = searches.create(SearchSpec(agent="reinforce", agent_settings={"hidden": 8}, budget=5)).id
    row = store._exec("SELECT spec FROM searches WHERE id = ?", (sid,)).fetchone()
    spec = json.loads(row["spec"])
    spec["agent_settings"]["hidden"] = 300  # as a search created before the bound was lowered
    with store.transaction():
        store._exec("DELETE FROM agent_state WHERE search_id = ?", (sid,))
        store._exec("DELETE FROM agent_weights WHERE search_id = ?", (sid,))
        store._exec("UPDATE searches SET spec = ? WHERE id = ?", (json.dumps(spec), sid))
    again = Searches(Store(tmp_path / "c.db"))
    handouts, _ = again.sample(sid, 2)
    assert len(handouts) == 2
    assert again.live.get(sid).agent(again.store).settings.hidden == 300  # type: ignore[attr-defined]


def test_reinforce_weights_are_written_as_json_and_old_torch_states_still_load() -> None:
    """The policy and Adam moments change on every step: written as JSON (plain data, the
    optimiser's integer keys as strings), several times cheaper than torch.save; a state
    written by torch.save before that loads the same, and both continue identically."""
    import io

    import torch

    from controller_service.agents.reinforce import ReinforceAgent
    from controller_service.spaces import ZophSpace
    from controller_service.store import dump_state, load_state
    from nasrl.core.presets import preset_settings

    for settings in (None, preset_settings("reinforce", "efficient")):
        agent = ReinforceAgent(ZophSpace(), settings, seed=3)
        for i in range(4):
            agent.update(agent.sample(1)[0].decisions, 0.1 * i)
        data = dump_state(agent.heavy_state())
        assert data[:1] == b"{"
        old = io.BytesIO()
        whole = agent.state_dict()
        torch.save({k: whole[k] for k in ("policy", "optimizer")}, old)  # the former layout
        copies = []
        for heavy in (load_state(data), load_state(old.getvalue())):
            twin = ReinforceAgent(ZophSpace(), settings, seed=0)
            twin.load_state_dict({**agent.light_state(), **heavy})
            assert same_state(twin.state_dict(), agent.state_dict())
            copies.append(twin)
        agent.update(agent.sample(1)[0].decisions, 0.7)
        for twin in copies:
            twin.update(twin.sample(1)[0].decisions, 0.7)
            assert same_state(twin.state_dict(), agent.state_dict())
