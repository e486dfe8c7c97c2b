"""GPU claims for `--device cuda:any` with a fake device count, across real processes: N
processes get N distinct GPUs, the N+1-th waits, and `kill -9` of a holder frees its GPU for
the waiter (the kernel drops a dead process's flock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_service.gpus import GpuLockError, spread, try_claim, wait_for_gpu

ROOT = Path(__file__).resolve().parents[2]
COUNT = 3

CLAIMER = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from trainer_service.gpus import wait_for_gpu
    claim = wait_for_gpu(Path(sys.argv[1]), int(sys.argv[2]), threading.Event(), poll=0.02,
                         on_wait=lambda: print("waiting", flush=True))
    print(claim.index, flush=True)
    sys.stdin.read()  # hold the GPU until the test ends or kills this process
""")


@pytest.fixture()
def claimers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def claimer(lock_dir: Path, started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    p = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(lock_dir), str(COUNT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    started.append(p)
    return p


def first_line(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    return p.stdout.readline().strip()


def test_each_process_gets_its_own_gpu_and_a_killed_holder_frees_it(
    tmp_path: Path, claimers: list[subprocess.Popen[str]]
) -> None:
    holders = [claimer(tmp_path, claimers) for _ in range(COUNT)]
    indices = [int(first_line(p)) for p in holders]
    assert sorted(indices) == list(range(COUNT))

    waiter = claimer(tmp_path, claimers)
    assert first_line(waiter) == "waiting"  # all 3 claimed: the 4th waits

    victim = holders[indices.index(1)]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert first_line(waiter) == "1"  # the kernel dropped the dead holder's lock


def test_claims_in_one_process_and_release(tmp_path: Path) -> None:
    first, second = try_claim(tmp_path, 2), try_claim(tmp_path, 2)
    assert first is not None and second is not None
    assert (first.index, second.index, first.device) == (0, 1, "cuda:0")
    assert try_claim(tmp_path, 2) is None
    assert (tmp_path / "gpu0.lock").read_text() == f"{os.getpid()}\n"
    first.release()
    again = try_claim(tmp_path, 2)
    assert again is not None and again.index == 0
    again.release()
    second.release()


def test_waiting_ends_on_stop(tmp_path: Path) -> None:
    held = try_claim(tmp_path, 1)
    stop, waited = threading.Event(), threading.Event()
    result: list[object] = []
    t = threading.Thread(
        target=lambda: result.append(wait_for_gpu(tmp_path, 1, stop, poll=0.01, on_wait=waited.set))
    )
    t.start()
    assert waited.wait(30)
    stop.set()
    t.join(30)
    assert result == [None]
    assert held is not None
    held.release()


def test_an_unusable_lock_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(GpuLockError, match="cannot create the GPU lock folder .*--gpu-lock-dir"):
        try_claim(tmp_path / "file" / "locks", 1)


def test_spread_puts_slot_i_on_gpu_i_mod_n() -> None:
    assert spread(5, 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert spread(2, 4) == ["cuda:0", "cuda:1"]
