"""The dashboard over HTTP against a real controller and trainer on 127.0.0.1:0: its pages and
JSON, numbers formatted as the CLI formats them, the 404 page, downloads of trained models,
and that it is read-only (only GET routes; only the controller's viewing RPCs are called).
The browser tests are in test_dashboard_browser.py."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nasrl.core import formats
from nasrl.dashboard.app import DashboardConfig
from nasrl.dashboard.server import Running
from nasrl.rpc.client import ControllerClient
from tests.dashboard_world import Recorder, World, build, serve_controller
from tests.helpers import load_module, nasrl_cli

from .conftest import start_trainer

VIEWING = {"GetSearch", "ListSearches", "Leaderboard", "ListChildren"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    db = str(tmp_path_factory.mktemp("dash") / "controller.db")
    recorder = Recorder()
    handle, searches = serve_controller(db, recorder=recorder)
    trainer, _ = start_trainer()
    controller = f"127.0.0.1:{handle.port}"
    with ControllerClient(controller) as c:
        world = build(c, f"127.0.0.1:{trainer.port}")
    recorder.methods.clear()  # what the dashboard calls from here on
    with Running(
        DashboardConfig(controller, trainers=f"127.0.0.1:{trainer.port}", refresh=0.2)
    ) as dash:
        yield {"url": dash.url, "world": world, "controller": controller, "recorder": recorder}
    trainer.stop(None)
    handle.stop(None)
    searches.store.close()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> Any:
    status, _, data = get(url)
    assert status == 200, data[:500]
    return json.loads(data)


def test_searches_are_listed_with_the_cli_formats(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    rows = {r["id"]: r for r in get_json(stack["url"] + "/api/searches")["searches"]}
    assert set(rows) == {world.done, world.running}
    with ControllerClient(stack["controller"]) as c:
        done = c.get_search(world.done)
        children, _ = c.list_children(world.done)
    row = rows[world.done]
    assert done.best is not None
    assert row["best_text"] == formats.accuracy(done.best.accuracy)
    assert row["state"] == "done" and row["agent"] == "evolution" and row["dataset"] == "digits"
    assert row["evaluated_text"] == f"{done.counts.evaluated + done.counts.failed} / 12"
    trained = sum(ch.result.seconds for ch in children if ch.status == "trained" and ch.result)
    assert row["trainer_seconds_text"] == f"{trained:.0f}"
    assert rows[world.running]["state"] == "running"


def test_search_summary_holds_leaderboard_failures_and_progress(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    summary = get_json(f"{stack['url']}/api/searches/{world.done}")
    with ControllerClient(stack["controller"]) as c:
        board = c.leaderboard(world.done, top=100)
        search = c.get_search(world.done)
    assert [e["id"] for e in summary["leaderboard"]] == [e.candidate_id for e in board]
    first, entry = summary["leaderboard"][0], board[0]
    assert first["params_text"] == f"{entry.params:,}"
    assert first["mflops_text"] == f"{entry.flops / 1e6:.1f}"
    assert first["seconds_text"] == f"{entry.seconds:.1f}"
    assert first["accuracy_text"] == f"{entry.accuracy:.4f}"
    assert summary["failures"] == [
        {
            "id": world.failed_child,
            "architecture": summary["failures"][0]["architecture"],
            "reason": world.failure,
        }
    ]
    assert summary["failed_count"] == 1
    assert summary["progress"] == dict(sorted(search.progress.items()))
    assert summary["settings"]["early_stopping"] == "asha"


def test_children_columns_and_cursor(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    data = get_json(f"{stack['url']}/api/searches/{world.done}/children")
    with ControllerClient(stack["controller"]) as c:
        children, _ = c.list_children(world.done)
    trained = [ch.candidate_id for ch in children if ch.status == "trained"]
    assert data["settled"]["id"] == trained and data["tail"]["id"] == []
    assert data["cursor"] == children[-1].candidate_id  # a finished search is all settled
    again = get_json(f"{stack['url']}/api/searches/{world.done}/children?after={data['cursor']}")
    assert again["settled"]["id"] == [] and again["cursor"] == data["cursor"]
    # a running search: children still in flight stay out of the settled part
    running = get_json(f"{stack['url']}/api/searches/{world.running}/children")
    with ControllerClient(stack["controller"]) as c:
        s = c.get_search(world.running)
    assert len(running["settled"]["id"]) + len(running["tail"]["id"]) == s.counts.evaluated
    status, _, body = get(f"{stack['url']}/api/searches/{world.done}/children?after=-3")
    assert status == 400 and b"after must be a whole number" in body


def test_curves_carry_reports_and_stop_decisions(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    curves = {
        c["id"]: c for c in get_json(f"{stack['url']}/api/searches/{world.done}/curves")["curves"]
    }
    stopped = curves[world.stopped_child]
    assert stopped["stopped_early"] and stopped["reports"] == [
        {"epoch": 1, "accuracy": pytest.approx(0.3), "stop": True}
    ]
    assert len(stopped["validation"]) == 1
    assert world.failed_child not in curves  # no result, no reports: nothing to draw


def test_child_detail_draws_the_graph(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    assert world.real_child is not None
    detail = get_json(f"{stack['url']}/api/searches/{world.done}/children/{world.real_child}")
    layers = len(detail["architecture"].split())
    assert detail["svg"].startswith("<svg") and detail["svg"].count('<g class="node') == layers + 2
    assert set(detail["downloads"]) == {"python", "onnx"}
    status, _, _ = get(f"{stack['url']}/api/searches/{world.done}/children/9999")
    assert status == 404


def test_unknown_search_is_a_404_page_with_a_sentence(stack: dict[str, Any]) -> None:
    status, headers, body = get(stack["url"] + "/searches/no-such-search")
    text = body.decode()
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "There is no search with id &#39;no-such-search&#39; on this controller" in text
    status, _, body = get(stack["url"] + "/searches/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 404 and b"<script>alert" not in body  # the id is escaped
    assert get(stack["url"] + "/api/searches/no-such-search")[0] == 404
    assert get(stack["url"] + "/nowhere")[0] == 404


def test_assets_are_served_from_the_package_under_a_strict_policy(stack: dict[str, Any]) -> None:
    status, headers, body = get(stack["url"] + "/")
    assert status == 200
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert b"http://" not in body and b"https://" not in body  # nothing from a CDN
    status, _, js = get(stack["url"] + "/static/vendor/uplot/uPlot.iife.min.js")
    assert status == 200 and b"uPlot" in js


def test_only_get_routes_and_only_viewing_rpcs(stack: dict[str, Any]) -> None:
    world: World = stack["world"]
    for path in ("/", f"/searches/{world.running}", f"/api/searches/{world.running}"):
        request = urllib.request.Request(stack["url"] + path, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 405
    for path in (
        "/",
        "/api/searches",
        f"/api/searches/{world.running}",
        f"/api/searches/{world.running}/children",
        f"/api/searches/{world.running}/curves",
    ):
        get(stack["url"] + path)
    called = stack["recorder"].methods
    assert called and called <= VIEWING, called


def test_downloads_are_the_trained_model(stack: dict[str, Any], tmp_path: Path) -> None:
    world: World = stack["world"]
    base = f"{stack['url']}/searches/{world.done}/children/{world.real_child}"
    status, headers, data = get(base + "/model.zip")
    assert status == 200 and "attachment" in headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        zf.extractall(tmp_path)
    assert [Path(n).suffix for n in names] == [".pt", ".py"]
    module = load_module(tmp_path / names[1])
    import torch

    net = module.load_trained()
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    status, _, onnx_bytes = get(base + "/model.onnx")
    assert status == 200
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes)
    assert [i.name for i in session.get_inputs()] == ["images"]
    # a child without weights on any trainer has no download, and says why
    status, _, body = get(
        f"{stack['url']}/searches/{world.done}/children/{world.failed_child}/model.zip"
    )
    assert status == 404 and b"no trained weights" in body


def test_trainers_page_shows_health_and_datasets(stack: dict[str, Any]) -> None:
    rows = get_json(stack["url"] + "/api/trainers")["trainers"]
    assert len(rows) == 1 and rows[0]["health"] == "serving"
    assert (rows[0]["slots"], rows[0]["busy_slots"], rows[0]["mode"]) == (1, 0, "train")
    assert rows[0]["devices"] == ["cpu"] and rows[0]["weights_kept"] >= 1  # the real child's
    assert "digits" in {d["name"] for d in rows[0]["datasets"]}


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--trainers", "not-an-address"], "is not HOST:PORT"),
        (["--refresh", "0"], "--refresh must be a positive number"),
        (["--trainers", "dns:///trainer"], "is not dns:///NAME:PORT"),
    ],
)
def test_bad_flags_fail_before_serving(flags: list[str], words: str) -> None:
    result = nasrl_cli("dashboard", "--controller", "127.0.0.1:1", "--port", "0", *flags)
    assert result.returncode == 2 and words in result.stderr, result.stderr
