"""The NB201 cell space through the real services: CreateSearch over gRPC (by name and as a
message, bad settings refused), and `nasrl search --space nb201` training real N = 1 cells on
digits with a real trainer."""

from __future__ import annotations

import json

import grpc
import pytest

from nasrl.core.arch import parse
from nasrl.rpc import rpc
from nasrl.rpc.client import ControllerClient
from protos import architecture_pb2 as apb
from protos import controller_pb2 as cpb
from protos import controller_pb2_grpc
from tests.helpers import nasrl_cli


def _create(target: str, space: cpb.SearchSpace, agent: str = "random") -> grpc.RpcError | str:
    request = cpb.CreateSearchRequest(agent=cpb.AgentSpec(name=agent), space=space, budget=4)
    with rpc.channel(target) as ch:
        try:
            return str(controller_pb2_grpc.ControllerStub(ch).CreateSearch(request).search_id)
        except grpc.RpcError as exc:
            return exc


@pytest.mark.parametrize("agent", ["reinforce", "qlearning", "random", "evolution"])
def test_every_agent_hands_out_cells_of_the_space(controller: str, agent: str) -> None:
    space = cpb.SearchSpace(
        nb201=cpb.Nb201Space(
            ops=[apb.CELL_OP_SKIP_CONNECT, apb.CELL_OP_NOR_CONV_3X3],
            skeleton=apb.Skeleton(cells_per_stage=1),
        )
    )
    sid = _create(controller, space, agent)
    assert isinstance(sid, str)
    with ControllerClient(controller) as c:
        got = c.get_search(sid)
        assert got.spec.request.space.nb201.skeleton.cells_per_stage == 1
        batch = c.sample(sid, 4)
    assert len(batch.candidates) == 4
    for cand in batch.candidates:
        cell = cand.arch.cell
        assert cell is not None and cell.skeleton.cells_per_stage == 1
        assert {op.value for op in cell.ops} <= {"skip_connect", "nor_conv_3x3"}


def test_the_space_by_name_is_nas_bench_201s(controller: str) -> None:
    sid = _create(controller, cpb.SearchSpace(name="nb201"), "evolution")
    assert isinstance(sid, str)
    with ControllerClient(controller) as c:
        space = c.get_search(sid).spec.request.space.nb201
    assert len(space.ops) == 5
    assert (space.skeleton.channels, space.skeleton.cells_per_stage, space.skeleton.stages) == (
        16,
        5,
        3,
    )


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            cpb.SearchSpace(nb201=cpb.Nb201Space(ops=[apb.CELL_OP_NONE, apb.CELL_OP_NONE])),
            "ops lists an operation twice",
        ),
        (
            cpb.SearchSpace(nb201=cpb.Nb201Space(ops=[apb.CELL_OP_UNSPECIFIED])),
            "has no operation",
        ),
        (
            cpb.SearchSpace(nb201=cpb.Nb201Space(skeleton=apb.Skeleton(stages=9))),
            "skeleton.stages must be between 1 and 6",
        ),
        (cpb.SearchSpace(name="nb202"), "unknown search space 'nb202'"),
    ],
)
def test_bad_nb201_settings_are_invalid_argument(
    controller: str, space: cpb.SearchSpace, message: str
) -> None:
    err = _create(controller, space)
    assert isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.details() or "")


def test_nasrl_search_trains_real_cells_on_digits(controller: str, trainer: str) -> None:
    run = nasrl_cli(
        "search",
        "--controller",
        controller,
        "--trainers",
        trainer,
        "--agent",
        "reinforce",
        "--agent-setting",
        "independent=true",
        "--space",
        "nb201",
        "--skeleton",
        "C=8,N=1",
        "--budget",
        "3",
        "--epochs",
        "1",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    with ControllerClient(controller) as c:
        s = c.get_search(report["search_id"])
        top = c.leaderboard(report["search_id"], top=3)
    assert s.counts.evaluated + s.counts.cached >= 3 and s.counts.failed == 0
    for entry in top:
        cell = parse(entry.architecture).cell
        assert cell is not None and cell.skeleton.channels == 8
        assert entry.params > 0 and 0.0 <= entry.accuracy <= 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "zoph", "--skeleton", "N=1"], "add --space nb201"),
        (["--space", "nb201", "--skeleton", "Q=1"], "unknown skeleton setting 'Q'"),
        (["--space", "nb201", "--cell-ops", "none,conv_7x7"], "'conv_7x7' is not one of"),
    ],
)
def test_bad_space_flags_are_one_line_errors(
    controller: str, trainer: str, args: list[str], message: str
) -> None:
    run = nasrl_cli("search", "--controller", controller, "--trainers", trainer, *args)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
