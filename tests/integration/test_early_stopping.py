"""Early stopping decided by the controller: Report over real gRPC (decisions, idempotence,
errors), a kill -9 of the controller mid-rung, and a real search whose runner ends children
on STOP."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from nasrl.cli.local import LocalService
from nasrl.core.results import TrainOutcome, TrainSettings
from nasrl.rpc.client import ControllerClient, NasrlError, wait_until_serving
from protos import controller_pb2 as cpb
from tests.helpers import nasrl_cli

from .conftest import start_trainer

TABLE = Path(__file__).resolve().parents[1] / "data" / "tiny_digits.jsonl.gz"
SMALL = cpb.SearchSpace(zoph=cpb.ZophSpace(max_layers=2, filters=[8, 16]))
EPOCHS = 9  # asha rungs at 1 and 3 (eta 3)


def _create(c: ControllerClient, rule: str, budget: int = 20) -> str:
    settings = TrainSettings(epochs=EPOCHS)
    from nasrl.core import codec

    return c.create_search(
        agent=cpb.AgentSpec(name="random"),
        dataset="digits",
        budget=budget,
        space=SMALL,
        training=codec.settings_to_proto(settings),
        early_stopping=cpb.EarlyStopping(rule=rule),
    ).search_id


def _outcome(text: str, curve: list[float]) -> TrainOutcome:
    from nasrl.core.results import EpochRecord

    records = tuple(
        EpochRecord(i + 1, EPOCHS, 1.0, v, v, float(i + 1)) for i, v in enumerate(curve)
    )
    return TrainOutcome(
        max(curve),
        max(curve[-5:]),
        0.5,
        100,
        1000,
        float(len(curve)),
        "cpu",
        text,
        records,
        stopped_early=len(curve) < EPOCHS,
    )


def test_asha_decisions_over_grpc(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c, "asha")
        assert c.get_search(sid).spec.early_stopping == "asha"
        a, b, d = c.sample(sid, 3).candidates
        assert c.report(sid, a.id, 1, 0.50)  # first at the rung
        assert not c.report(sid, b.id, 1, 0.40)  # below the 2/3 quantile of [0.50]
        assert c.report(sid, d.id, 1, 0.60)
        assert not c.report(sid, b.id, 1, 0.99)  # a repeat gets the first decision
        assert c.report(sid, a.id, 2, 0.55)  # between rungs
        # the stopped child reports the epochs it ran; its reward comes from them
        ack = c.update(sid, b.id, _outcome(b.text, [0.40]))
        assert ack.accepted and ack.reward == pytest.approx(0.40)
        board = {e.candidate_id: e for e in c.leaderboard(sid, top=10)}
        assert board[b.id].accuracy == pytest.approx(0.40)


@pytest.mark.parametrize(
    ("epoch", "accuracy", "code", "words"),
    [
        (3, 0.5, grpc.StatusCode.INVALID_ARGUMENT, "epoch 3 reported after 0"),
        (10, 0.5, grpc.StatusCode.INVALID_ARGUMENT, "between 1 and the search's 9"),
        (1, 1.5, grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
        (1, float("nan"), grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
    ],
)
def test_bad_reports_are_refused(
    controller: str, epoch: int, accuracy: float, code: grpc.StatusCode, words: str
) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c, "asha")
        cand = c.sample(sid, 1).candidates[0]
        with pytest.raises(NasrlError) as err:
            c.report(sid, cand.id, epoch, accuracy)
        assert err.value.code == code and words in str(err.value)


def test_reports_of_unknown_or_finished_children(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c, "median")
        cand = c.sample(sid, 1).candidates[0]
        with pytest.raises(NasrlError) as err:
            c.report(sid, 999, 1, 0.5)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(NasrlError) as err:
            c.report("nope", cand.id, 1, 0.5)
        assert err.value.code == grpc.StatusCode.NOT_FOUND
        c.update(sid, cand.id, _outcome(cand.text, [0.5] * EPOCHS))
        with pytest.raises(NasrlError) as err:
            c.report(sid, cand.id, 1, 0.5)
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "not out for training" in str(err.value)


def test_none_always_continues(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = _create(c, "none")
        cands = c.sample(sid, 5).candidates
        assert all(c.report(sid, x.id, 1, 0.1 * i) for i, x in enumerate(cands))


def _script(c: ControllerClient, sid: str, cands: list[int], start: int, stop: int) -> list[bool]:
    """Deterministic reports: child k's epoch e has accuracy ((k * 7 + e * 3) % 10) / 10."""
    out = []
    order = [(k, e) for e in (1, 2, 3) for k in range(len(cands))]
    for k, e in order[start:stop]:
        out.append(c.report(sid, cands[k], e, ((k * 7 + e * 3) % 10) / 10))
    return out


def test_kill_9_mid_rung_loses_no_decision(tmp_path: Path) -> None:
    """The same reports give the same decisions whether or not the controller was killed
    with kill -9 (and restarted on its database) halfway through a rung."""
    decisions = {}
    for name, kill in (("reference", False), ("killed", True)):
        db = tmp_path / f"{name}.db"
        controller = LocalService("controller_service", ["--db", str(db)], log_dir=tmp_path)
        controller.start()
        try:
            wait_until_serving(controller.target, timeout=60)
            with ControllerClient(controller.target) as c:
                sid = _create(c, "asha")
                cands = [x.id for x in c.sample(sid, 8).candidates]
                got = _script(c, sid, cands, 0, 11)
            if kill:
                controller.kill()
                controller.start()
                wait_until_serving(controller.target, timeout=60)
            with ControllerClient(controller.target) as c:
                got += _script(c, sid, cands, 11, 24)
                # repeats after the restart answer as before
                assert _script(c, sid, cands, 0, 11) == got[:11]
        finally:
            controller.stop()
        decisions[name] = got
    assert decisions["killed"] == decisions["reference"]
    assert False in decisions["reference"]  # the script does stop some children


def test_search_with_asha_ends_children_early(controller: str) -> None:
    """nasrl search --early-stopping asha through a trainer that takes time per epoch (the
    tiny table at 3x its recorded seconds, about 1 s an epoch): children that ASHA stops end after fewer epochs,
    and the search still spends its budget."""
    handle, _ = start_trainer(slots=2, table=TABLE, time_scale=3.0)
    try:
        r = nasrl_cli(
            "search",
            "--controller",
            controller,
            "--trainers",
            f"127.0.0.1:{handle.port}",
            "--slots-per-trainer",
            "2",
            "--agent",
            "random",
            "--space-from-table",
            str(TABLE),
            "--budget",
            "8",
            "--early-stopping",
            "asha",
            "--json",
            "--quiet",
        )
    finally:
        handle.stop(None)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["evaluated"] == 8 and summary["failed"] == 0
    assert summary["stopped_early_this_run"] >= 1
