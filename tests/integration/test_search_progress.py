"""`nasrl search` with its output on pipes (as in `make demo > log 2>&1` or CI): one full line
per finished child on stderr, none cut at 80 columns, and no progress bar drawn."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from nasrl.rpc.client import ControllerClient
from tests.helpers import nasrl_cli

from .conftest import start_trainer

BUDGET = 5
LINE = re.compile(
    r"child (\d+)/(\d+)  #(\d+)  (.+)  val (\d\.\d{4})  best (\d\.\d{4})  "
    r"\d+\.\d s on (127\.0\.0\.1:\d+)"
)


@pytest.fixture()
def simulated() -> Iterator[str]:
    handle, _ = start_trainer(slots=2, simulate=0.0)
    yield f"127.0.0.1:{handle.port}"
    handle.stop(None)


def test_piped_search_prints_one_full_line_per_child(controller: str, simulated: str) -> None:
    r = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        simulated,
        "--slots-per-trainer",
        "2",
        "--agent",
        "random",
        "--budget",
        str(BUDGET),
        "--epochs",
        "1",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert not [line for line in lines if line.rstrip().endswith("…")], r.stderr
    children = [m for line in lines if (m := LINE.fullmatch(line))]
    assert [int(m.group(1)) for m in children] == list(range(1, BUDGET + 1)), r.stderr
    assert {int(m.group(2)) for m in children} == {BUDGET}
    assert {m.group(7) for m in children} == {simulated}
    best = [float(m.group(6)) for m in children]
    assert best == [max(float(m.group(5)) for m in children[: i + 1]) for i in range(BUDGET)]
    assert not [line for line in lines if line.startswith("search ")], r.stderr  # no bar
    with ControllerClient(controller) as c:
        (s,) = c.list_searches()
        trained = {e.architecture for e in c.leaderboard(s.search_id, top=100)}
    assert {m.group(4) for m in children} == trained  # each network in full
