"""The NAS-Bench-201 table through the whole stack: a real controller process and a real table
trainer process (``python -m trainer_service --table``, no CIFAR-10 files anywhere) serving the
table converted from the benchmark's CSV (not shipped: tests/nb201_data.py says where it is
looked for; the tests skip without it), and ``nasrl search --space-from-table`` with each agent
finishing DONE with its budget, every result being the table's numbers for its cell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nasrl.cli.local import LocalService
from nasrl.core.table import Table, read_table
from nasrl.rpc.client import (
    ControllerClient,
    NasrlError,
    SearchStatus,
    TrainerClient,
    wait_until_serving,
)
from tests.helpers import nasrl_cli
from tests.nb201_data import CELLS, converted_table

BUDGET = 12
SLOTS = 8


@pytest.fixture(scope="module")
def nb201(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Table]:
    path = converted_table(tmp_path_factory)
    return path, read_table(path)


@pytest.fixture(scope="module")
def stack(
    nb201: tuple[Path, Table], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(controller, trainer) targets: two real processes; the trainer has no --data-dir."""
    logs = tmp_path_factory.mktemp("nb201-stack")
    controller = LocalService("controller_service", ["--db", str(logs / "c.db")], log_dir=logs)
    trainer = LocalService(
        "trainer_service",
        ["--table", str(nb201[0]), "--slots", str(SLOTS), "--threads", "1"],
        log_dir=logs,
    )
    try:
        for s in (controller, trainer):
            s.start()
        for s in (controller, trainer):
            wait_until_serving(s.target, timeout=120)
        yield controller.target, trainer.target
    finally:
        for s in (trainer, controller):
            s.stop()


def test_the_table_trainer_serves_cifar10_without_its_files(
    stack: tuple[str, str], nb201: tuple[Path, Table]
) -> None:
    _, trainer = stack
    client = TrainerClient(trainer)
    try:
        (info,) = client.list_datasets("cifar10")
        assert (info.channels, info.height, info.width, info.classes) == (3, 32, 32, 10)
        assert client.status().mode == "table"
    finally:
        client.close()


@pytest.mark.parametrize("agent", ["reinforce", "qlearning", "random", "evolution"])
def test_every_agent_searches_the_nb201_table(
    stack: tuple[str, str], nb201: tuple[Path, Table], agent: str
) -> None:
    controller, trainer = stack
    path, table = nb201
    r = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        trainer,
        "--slots-per-trainer",
        str(SLOTS),
        "--agent",
        agent,
        "--space-from-table",
        str(path),
        "--budget",
        str(BUDGET),
        "--seed",
        "3",
        "--json",
        "--quiet",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["state"] == SearchStatus.DONE.value
    assert summary["evaluated"] == BUDGET and summary["failed"] == 0
    with ControllerClient(controller) as c:
        s = c.get_search(summary["search_id"])
        assert s.spec.dataset == "cifar10" and s.spec.request.space.HasField("nb201")
        entries = c.leaderboard(summary["search_id"], top=100)
    # one leaderboard entry per trained result; cached handouts (isomorphic cells) are not entries
    assert len(entries) == summary["evaluated"] == BUDGET
    rows = table.primary()
    assert len(rows) == CELLS
    for e in entries:
        row = rows[e.architecture]  # a cell of the table, by its bare NAS-Bench-201 string
        assert e.architecture.startswith("|") and "~" in e.architecture
        assert e.accuracy == pytest.approx(row.best_validation, abs=1e-6)
        assert e.test_accuracy == pytest.approx(row.test_accuracy, abs=1e-6)
        assert (e.params, e.flops) == (row.params, row.flops)
        assert e.seconds == pytest.approx(row.seconds, rel=1e-6)
    best = summary["best"]
    assert best["accuracy"] == pytest.approx(max(e.accuracy for e in entries))


def test_a_network_outside_the_table_is_refused_naming_it(stack: tuple[str, str]) -> None:
    """A cell on another skeleton is no row of the table: INVALID_ARGUMENT, not a made-up
    answer."""
    from nasrl.core.arch import parse
    from nasrl.core.results import TrainSettings

    _, trainer = stack
    client = TrainerClient(trainer)
    try:
        with pytest.raises(NasrlError, match="not in the table 'nb201_cifar10'"):
            client.train(
                parse("[N=1]|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|none~2|"),
                "cifar10",
                TrainSettings(epochs=1),
            )
    finally:
        client.close()
