"""A search whose controller is killed before its first result finishes after the restart.

Q-learning searches reloaded before any result once failed every call for ever (INTERNAL
"'memory'"), so `nasrl search --agent qlearning` across such a restart exited 1. Here a real
controller process is killed with -9 while the first children are still training (simulated
children of a few seconds), restarted on the same database, and the runner finishes the
search: DONE with exactly its budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nasrl.cli.local import LocalService
from nasrl.rpc.client import ControllerClient, NasrlError, SearchStatus, wait_until_serving
from tests.helpers import wait_for

BUDGET = 6
CHILD_SECONDS = 4.0  # long enough that no child finishes before the kill


def _counts(controller: str) -> tuple[str, int, int] | None:
    """(search id, candidates out for training, results) of the only search, if any."""
    try:
        with ControllerClient(controller) as c:
            searches = c.list_searches()
            if not searches:
                return None
            s = c.get_search(searches[0].search_id)
    except NasrlError:
        return None
    return s.search_id, s.counts.in_flight, s.counts.evaluated


@pytest.mark.parametrize("agent", ["qlearning", "reinforce"])  # the others: test_reload.py
def test_kill_9_before_the_first_result_then_done_with_its_budget(
    tmp_path: Path, agent: str
) -> None:
    db = tmp_path / "controller.db"
    controller = LocalService("controller_service", ["--db", str(db)], log_dir=tmp_path)
    trainer = LocalService(
        "trainer_service", ["--simulate", str(CHILD_SECONDS), "--slots", "2"], log_dir=tmp_path
    )
    try:
        for s in (controller, trainer):
            s.start()
            wait_until_serving(s.target)
        args = ["--controller", controller.target, "--trainers", trainer.target]
        args += ["--agent", agent, "--dataset", "digits", "--epochs", "1"]
        args += ["--budget", str(BUDGET), "--controller-wait", "120", "--json"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "nasrl.cli", "search", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[tuple[str, int, int]] = []

        def training() -> bool:
            found = _counts(controller.target)
            seen[:] = [found] if found else []
            return bool(found and found[1] > 0)

        wait_for(training, 120, "the first children out for training")
        controller.kill()
        assert seen[0][2] == 0, "a result arrived before the kill: the test proves nothing"
        controller.restart()
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        summary = json.loads(stdout)
        assert summary["evaluated"] == BUDGET and summary["failed"] == 0
        with ControllerClient(controller.target) as c:
            search = c.get_search(summary["search_id"])
        assert search.state == SearchStatus.DONE and search.counts.evaluated == BUDGET
    finally:
        for s in (controller, trainer):
            s.kill()
