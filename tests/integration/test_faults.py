"""Fault suite: kill -9 of the controller during a burst of concurrent Updates, SIGTERM of the
controller under load, a full disk and a read-only database. After each: no acknowledged
result is lost, none is duplicated, and the database passes PRAGMA integrity_check."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from controller_service.store import Store
from nasrl.cli.local import LocalService
from nasrl.core.results import EpochRecord, TrainOutcome
from nasrl.rpc.client import Candidate, ControllerClient, NasrlError, wait_until_serving
from protos import controller_pb2 as cpb
from tests import helpers

from .conftest import start_controller

CLIENTS = 16


def outcome(text: str, acc: float = 0.6) -> TrainOutcome:
    return helpers.outcome(text, acc)


def db_state(db: Path, sid: str) -> tuple[dict[str, int], int, str]:
    store = Store(db)
    try:
        results = store._exec(
            "SELECT COUNT(*) FROM results WHERE search_id = ?", (sid,)
        ).fetchone()[0]
        return store.counts(sid), int(results), store.integrity_check()
    finally:
        store.close()


def test_kill_9_during_a_burst_of_updates(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    # enough workers that one search admits all 32 clients at once (half of the admitted calls)
    args = ["--db", str(db), "--workers", "72"]
    controller = LocalService("controller_service", args, log_dir=tmp_path).start()
    go = threading.Event()
    first_few = threading.Event()  # 4 acknowledged: the burst is under way
    killed, restarted = threading.Event(), threading.Event()
    try:
        wait_until_serving(controller.target)
        with ControllerClient(controller.target) as c:
            sid = c.create_search(
                agent=cpb.AgentSpec(name="reinforce"), dataset="digits", budget=CLIENTS * 4
            ).search_id
            batch = c.sample(sid, CLIENTS * 4).candidates
        assert len(batch) == CLIENTS * 4
        acknowledged: list[int] = []
        lock = threading.Lock()
        held_back = batch[-1]  # sent only after the kill: not every report is in before it

        def report(share: list[Candidate]) -> None:
            w = ControllerClient(controller.target, timeout=5)
            try:
                go.wait()
                for cand in share:
                    if cand is held_back:
                        killed.wait()
                    for _ in range(20):  # retried until the restarted controller answers
                        try:
                            w.update(sid, cand.id, outcome(cand.text))
                            with lock:
                                acknowledged.append(cand.id)
                                if len(acknowledged) >= 4:
                                    first_few.set()
                            break
                        except NasrlError as exc:
                            assert exc.code in (
                                grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.DEADLINE_EXCEEDED,
                            ), exc
                            restarted.wait()  # no use retrying before the restart
                            # a fresh channel connects at once; the old one would wait out
                            # its reconnect backoff first
                            w.close()
                            w = ControllerClient(controller.target, timeout=5)
            finally:
                w.close()

        threads = [
            threading.Thread(target=report, args=(batch[i::CLIENTS],)) for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        go.set()
        assert first_few.wait(60), f"only {len(acknowledged)} Updates acknowledged"
        controller.kill()  # mid-burst: the first few are in, the held-back one is not
        with lock:
            killed_at = len(acknowledged)
        killed.set()
        controller.restart()
        wait_until_serving(controller.target)
        restarted.set()
        for t in threads:
            t.join(120)
        assert 4 <= killed_at < len(batch), killed_at
        assert sorted(acknowledged) == sorted(c.id for c in batch)  # each reported once
        counts, results, integrity = db_state(db, sid)
        assert integrity == "ok"
        assert counts.get("done", 0) + counts.get("cached", 0) == len(batch)
        assert counts.get("leased", 0) == 0 and results == len({c.text for c in batch})
    finally:
        killed.set()  # no client thread is left waiting when the test fails early
        restarted.set()
        controller.kill()


def test_sigterm_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    controller = LocalService(
        "controller_service", ["--db", str(db), "--grace", "2"], log_dir=tmp_path
    ).start()
    acknowledged: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    under_load = threading.Event()  # as many Updates acknowledged as there are clients
    try:
        wait_until_serving(controller.target)
        with ControllerClient(controller.target) as c:
            sid = c.create_search(
                agent=cpb.AgentSpec(name="random"), dataset="digits", budget=100_000
            ).search_id

        def load() -> None:
            with ControllerClient(controller.target, timeout=5) as w:
                while not stop.is_set():
                    try:
                        for cand in w.sample(sid, 1).candidates:
                            if cand.cached is None:
                                w.update(sid, cand.id, outcome(cand.text))
                                with lock:
                                    acknowledged.add(cand.id)
                                    if len(acknowledged) >= len(threads):
                                        under_load.set()
                    except NasrlError:
                        return  # the controller went away: stop this client

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        assert under_load.wait(60), f"only {len(acknowledged)} Updates acknowledged"
        assert controller.stop(timeout=30) == 0  # SIGTERM: graceful, exit 0
        stop.set()
        for t in threads:
            t.join(30)
        assert "received SIGTERM" in controller.log()
        store = Store(db)
        done = {
            r[0]
            for r in store._exec(
                "SELECT id FROM candidates WHERE search_id = ? AND status = 'done'", (sid,)
            )
        }
        assert store.integrity_check() == "ok"
        store.close()
        assert acknowledged and acknowledged <= done  # every acknowledged Update is stored
    finally:
        stop.set()
        controller.kill()


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
def test_unwritable_database_is_unavailable_and_recovers(tmp_path: Path, fault: str) -> None:
    handle, searches = start_controller(str(tmp_path / "c.db"))
    target = f"127.0.0.1:{handle.port}"
    store = searches.store
    try:
        with ControllerClient(target) as c:
            sid = c.create_search(
                agent=cpb.AgentSpec(name="reinforce"), dataset="digits", budget=10
            ).search_id
            first = c.sample(sid, 2).candidates
            c.update(sid, first[0].id, outcome(first[0].text))
            before = store.counts(sid)
            pages = store._exec("PRAGMA page_count").fetchone()[0]
            if fault == "disk full":  # SQLite sees a full disk: no page can be added
                store._exec(f"PRAGMA max_page_count = {pages}")
                big = replace(
                    outcome(first[1].text),
                    curve=tuple(  # ~150 kB: needs new pages
                        EpochRecord(e, 1000, 0.5, 0.5, 0.5, float(e)) for e in range(1, 1001)
                    ),
                )
                with pytest.raises(NasrlError) as info:
                    c.update(sid, first[1].id, big)
            else:
                store._exec("PRAGMA query_only = ON")
                with pytest.raises(NasrlError) as info:
                    c.update(sid, first[1].id, outcome(first[1].text))
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert "database" in str(info.value) and "Traceback" not in str(info.value)
            assert store.counts(sid) == before  # nothing half-written
            if fault == "read-only":  # (a full disk may still take a write that fits)
                with pytest.raises(NasrlError) as info:
                    c.sample(sid, 1)
                assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert store.integrity_check() == "ok"
            # The fault clears: the same report goes through, the agent continues.
            store._exec("PRAGMA query_only = OFF")
            store._exec("PRAGMA max_page_count = 1073741823")
            assert c.update(sid, first[1].id, outcome(first[1].text)).accepted
            assert c.sample(sid, 1).candidates
            assert c.get_search(sid).counts.evaluated == 2
    finally:
        handle.stop(None)
        store.close()


def test_database_file_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    Store(db).close()
    mode = stat.S_IMODE(os.stat(db).st_mode)
    assert mode & 0o077 == 0, oct(mode)
