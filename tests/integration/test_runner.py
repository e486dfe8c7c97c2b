"""`nasrl search` as a real process against a real controller and two real trainers,
including the faults a fleet meets: a trainer killed mid-search, the controller killed and
restarted, the runner killed and resumed, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller_service.store import Store
from nasrl.cli.local import LocalService
from nasrl.rpc.client import ControllerClient, NasrlError, wait_until_serving
from tests.helpers import wait_for

BUDGET = 12


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "controller.db"
        self.controller = LocalService("controller_service", ["--db", str(self.db)], log_dir=tmp)
        self.trainers = [
            LocalService("trainer_service", ["--threads", "1"], log_dir=tmp) for _ in range(2)
        ]

    def start(self) -> Fleet:
        for s in (self.controller, *self.trainers):
            s.start()
            wait_until_serving(s.target)
        return self

    def stop(self) -> None:
        for s in (self.controller, *self.trainers):
            s.kill()

    def search(self, *extra: str, ctrl_c: bool = False) -> subprocess.Popen[str]:
        """The runner as a user starts it; ``ctrl_c``: with SIGINT's default action even when
        pytest itself runs as a background job (whose SIGINT is ignored, and a Python started
        with SIGINT ignored never raises KeyboardInterrupt)."""
        args = [
            sys.executable,
            "-m",
            "nasrl.cli",
            "search",
            "--controller",
            self.controller.target,
            "--trainers",
            ",".join(t.target for t in self.trainers),
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--budget",
            str(BUDGET),
            "--json",
            *extra,
        ]
        default_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if ctrl_c else None
        return subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_sigint,
        )

    def counts(self, sid: str) -> tuple[int, int]:
        with ControllerClient(self.controller.target) as c:
            s = c.get_search(sid)
        return s.counts.evaluated, s.counts.failed

    def only_search(self) -> str:
        with ControllerClient(self.controller.target) as c:
            (s,) = c.list_searches()
        return s.search_id

    def wait_for_evaluated(self, n: int, timeout: float = 120) -> str:
        """The search's id once it has ``n`` results (another process runs it: nothing to
        wait on but the controller's counts)."""
        found: list[str] = []

        def evaluated() -> bool:
            try:
                sid = self.only_search()
            except (NasrlError, ValueError):  # not created yet
                return False
            found[:] = [sid]
            return self.counts(sid)[0] >= n

        wait_for(evaluated, timeout, f"{n} results")
        return found[0]


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path).start()
    yield f
    f.stop()


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> dict[str, Any]:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    summary: dict[str, Any] = json.loads(stdout)
    return summary


def reported_once(db: Path, sid: str) -> None:
    """Every trained candidate was reported exactly once and none is left in flight."""
    store = Store(db)
    counts = store.counts(sid)
    archs = store._exec(
        "SELECT arch FROM candidates WHERE search_id = ? AND status = 'done'", (sid,)
    ).fetchall()
    store.close()
    assert counts.get("leased", 0) == 0
    assert len(archs) == len({a[0] for a in archs}) == BUDGET, "a network was trained twice"


def test_search_over_two_trainers(fleet: Fleet, tmp_path: Path) -> None:
    plot, best = tmp_path / "search.png", tmp_path / "best.py"
    summary = finish(fleet.search("--plot", str(plot), "--export-best", str(best)))
    assert summary["evaluated"] == BUDGET and summary["failed"] == 0
    assert set(summary["best"]) >= {"arch", "accuracy", "params"}
    assert summary["best"]["accuracy"] > 0.5
    split = summary["per_trainer"]
    assert len(split) == 2 and all(n >= 1 for n in split.values()), split
    assert sum(split.values()) == BUDGET
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The exported network runs in a fresh Python that never imports nasrl.
    check = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import importlib.util, sys, torch\n"
            f"spec = importlib.util.spec_from_file_location('best', {str(best)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "y = m.Net()(torch.randn(2, *m.INPUT_SHAPE))\n"
            "assert 'nasrl' not in sys.modules and y.shape == (2, m.NUM_CLASSES)\n"
            "print('ok', m.ARCHITECTURE)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split(" ", 1)[1].strip() == summary["best"]["arch"]
    reported_once(fleet.db, summary["search_id"])


def test_trainer_killed_mid_search(fleet: Fleet) -> None:
    proc = fleet.search()
    fleet.wait_for_evaluated(3)
    fleet.trainers[0].kill()  # kill -9, probably mid-child
    summary = finish(proc)
    assert summary["evaluated"] == BUDGET and summary["failed"] == 0
    assert summary["per_trainer"].get(fleet.trainers[1].target, 0) >= BUDGET - 3
    reported_once(fleet.db, summary["search_id"])


def test_controller_killed_and_restarted_mid_search(fleet: Fleet) -> None:
    proc = fleet.search("--controller-wait", "120")
    fleet.wait_for_evaluated(3)
    fleet.controller.kill()  # the runner's calls fail (UNAVAILABLE) until it is back
    fleet.controller.restart()
    summary = finish(proc)
    assert summary["evaluated"] == BUDGET
    reported_once(fleet.db, summary["search_id"])


def test_runner_killed_then_resumed(fleet: Fleet) -> None:
    proc = fleet.search()
    sid = fleet.wait_for_evaluated(4)
    proc.kill()  # kill -9 of the runner: its in-flight children stay leased
    proc.wait()
    evaluated, _ = fleet.counts(sid)
    assert evaluated < BUDGET
    summary = finish(fleet.search("--resume", sid))
    assert summary["search_id"] == sid and summary["evaluated"] == BUDGET
    assert summary["trained_this_run"] == BUDGET - evaluated
    reported_once(fleet.db, sid)


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_cleanly_and_resume_finishes(
    fleet: Fleet, stop: signal.Signals, code: int
) -> None:
    """Ctrl-C, and SIGTERM as ``docker stop`` or systemd send it, stop the search the same
    way: children cancelled, nothing half-written, resumable."""
    proc = fleet.search(ctrl_c=True)
    sid = fleet.wait_for_evaluated(2)
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-3000:]
    assert f"--resume {sid}" in stderr and "Traceback" not in stderr
    summary = finish(fleet.search("--resume", sid))
    assert summary["evaluated"] == BUDGET
    reported_once(fleet.db, sid)
