"""The dashboard's parts without a server: the network drawing, the numbers (the CLI's),
the children cache's settled/tail split, and the package data a wheel ships."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from nasrl.cli.search_display import leaderboard_table
from nasrl.core.arch import parse
from nasrl.core.results import TrainOutcome
from nasrl.core.shapes import InputShape
from nasrl.dashboard.graph import architecture_svg, graph_nodes
from nasrl.dashboard.source import ChildCache
from nasrl.dashboard.views import entry_row
from nasrl.rpc.client import Child, ChildStatus, LeaderboardEntry

ROOT = Path(__file__).resolve().parents[2]
DIGITS = InputShape(1, 8, 8, 10)


def test_graph_resolves_inputs_and_feeds_unread_outputs_to_the_classifier() -> None:
    nodes = graph_nodes(parse("C(16,3,1) P(2,2) C(8,3,1)@[0,2] GAP"), DIGITS)
    assert [n.label for n in nodes] == ["image", "C(16,3,1)", "P(2,2)", "C(8,3,1)", "GAP", "SM(10)"]
    assert [n.inputs for n in nodes[1:]] == [(0,), (1,), (0, 2), (3,), (4,)]
    assert nodes[1].shape == "16×8×8" and nodes[3].shape == "8×8×8"
    # an output nobody reads (layer 1 here) goes to the classifier beside the last layer
    assert graph_nodes(parse("C(8,3,1) C(8,3,1)@[0]"), DIGITS)[-1].inputs == (1, 2)


def test_svg_draws_every_node_and_skip_and_escapes() -> None:
    svg = architecture_svg("C(16,3,1) P(2,2) C(8,3,1)@[0,2] GAP", DIGITS)
    assert svg.count('<g class="node') == 6
    assert svg.count('class="edge skip"') == 1  # image -> layer 3
    assert svg.count('class="edge"') == 5  # image-1, 1-2, 2-3, 3-GAP, GAP-SM
    assert "<script" not in svg
    # without a known input the network is drawn without shapes
    assert "×" not in architecture_svg("C(16,3,1) GAP", None)


def test_leaderboard_numbers_are_the_clis() -> None:
    e = LeaderboardEntry(7, "C(16,3,1) GAP", 0.91234, 0.9, 1_234_567, 98_765_432, 12.345, 0.75)
    row = entry_row(1, e)
    console = Console(width=200, record=True)
    console.print(leaderboard_table([e], "t"))
    cli = console.export_text()
    for key in (
        "accuracy_text",
        "test_accuracy_text",
        "params_text",
        "mflops_text",
        "seconds_text",
    ):
        assert row[key] in cli, (key, row[key], cli)
    assert (row["params_text"], row["mflops_text"], row["seconds_text"]) == (
        "1,234,567",
        "98.8",
        "12.3",
    )


def _child(cid: int, status: ChildStatus) -> Child:
    result = TrainOutcome(0.5, 0.5, 0.5, 1, 1, 1.0, "cpu", "GAP") if status == "trained" else None
    return Child(cid, "GAP", status, result, "", None, 0, None, ())


class FakeController:
    def __init__(self, children: list[Child]) -> None:
        self.children_list = children
        self.calls: list[int] = []

    def children(self, search_id: str, after: int = 0, limit: int = 0, detail: bool = False):
        self.calls.append(after)
        page = [c for c in self.children_list if c.candidate_id > after][:limit]
        more = (
            any(c.candidate_id > page[-1].candidate_id for c in self.children_list)
            if page
            else False
        )
        return page, more


def test_cache_keeps_settled_children_and_rereads_from_the_first_open_one() -> None:
    now = [0.0]
    fake = FakeController(
        [
            _child(1, ChildStatus.TRAINED),
            _child(2, ChildStatus.FAILED),
            _child(3, ChildStatus.LEASED),
            _child(4, ChildStatus.TRAINED),
        ]
    )
    cache = ChildCache(fake, max_age=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    entry = cache.children("s")
    assert [c.candidate_id for c in entry.settled] == [1, 2]
    assert [c.candidate_id for c in entry.tail] == [3, 4]
    assert cache.children("s") is entry and fake.calls == [0]  # fresh enough: not read again
    fake.children_list[2] = _child(3, ChildStatus.TRAINED)
    fake.children_list.append(_child(5, ChildStatus.LEASED))
    now[0] = 1.0
    entry = cache.children("s")
    assert fake.calls == [0, 2]  # from the first child that could still change
    assert [c.candidate_id for c in entry.settled] == [1, 2, 3, 4]
    assert [c.candidate_id for c in entry.tail] == [5]


@pytest.mark.timeout(300)
def test_a_wheel_ships_the_pages_and_the_vendored_chart_library(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=280,
    )
    (wheel,) = tmp_path.glob("nasrl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "templates/search.html",
        "templates/base.html",
        "static/dashboard.js",
        "static/dashboard.css",
        "static/vendor/uplot/uPlot.iife.min.js",
        "static/vendor/uplot/uPlot.min.css",
        "static/vendor/uplot/LICENSE",
    ):
        assert f"nasrl/dashboard/{name}" in names, name
