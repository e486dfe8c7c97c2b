"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real controller and trainer on 127.0.0.1:0 holding a finished and a running search:
the pages render, the live chart gains a point when an Update lands, the Pareto front is the
controller's, the leaderboard sorts and shows a network, an unknown id is a 404 page, and the
banner shows while the controller is down and goes when it is back. Pages fit 1280 px and a
phone's 390 px in light and dark.

Chromium comes from ``make browser-tool`` (apt-get, as root); without it these tests skip.
``NASRL_DASHBOARD_SCREENSHOTS=docs`` makes test_layouts write docs/dashboard_*.png (what
``python scripts/dashboard_screenshots.py`` runs)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nasrl.core import codec, formats
from nasrl.core.results import TrainSettings
from nasrl.dashboard.app import DashboardConfig
from nasrl.dashboard.server import Running
from nasrl.rpc.client import ControllerClient
from protos import controller_pb2 as cpb
from tests.dashboard_world import World, build, curve_outcome, serve_controller

from .conftest import start_trainer

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
#: the screenshots the README shows (NASRL_DASHBOARD_SCREENSHOTS)
KEPT = {
    "searches_desktop_light",
    "search_desktop_light",
    "search_desktop_dark",
    "search_phone_light",
    "trainers_desktop_light",
}  # how long a wait for the page may take before the test fails


def chromium() -> str | None:
    return (
        os.environ.get("NASRL_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[dev]' (PyPI playwright)")
    path = chromium()
    if path is None:
        pytest.skip(
            "Debian's chromium is not installed: `make browser-tool` (as root) or "
            "`sudo apt-get install chromium` installs it (or set NASRL_CHROMIUM=/path)"
        )
    with sync_playwright() as pw:
        # Playwright gives every launch a fresh, empty profile (user data dir)
        b = pw.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    handle, searches = serve_controller(str(tmp_path_factory.mktemp("web") / "controller.db"))
    trainer, _ = start_trainer()
    controller, trainers = f"127.0.0.1:{handle.port}", f"127.0.0.1:{trainer.port}"
    with ControllerClient(controller) as c:
        world = build(c, trainers)
    with Running(DashboardConfig(controller, trainers=trainers, refresh=0.25)) as dash:
        yield {"url": dash.url, "world": world, "controller": controller}
    trainer.stop(None)
    handle.stop(None)
    searches.store.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.errors = errors
    yield p
    context.close()


def loaded(page: Any, url: str) -> Any:
    response = page.goto(url)
    page.wait_for_selector("body[data-loaded='1']")
    return response


def test_pages_render(stack: dict[str, Any], page: Any) -> None:
    world: World = stack["world"]
    page.goto(stack["url"] + "/")
    page.wait_for_selector(f"#searches tr[data-search-id='{world.running}']")
    assert page.locator("#searches tbody tr").count() == 2
    with ControllerClient(stack["controller"]) as c:
        done = c.get_search(world.done)
    assert done.best is not None
    row = page.locator(f"#searches tr[data-search-id='{world.done}']")
    assert formats.accuracy(done.best.accuracy) in row.inner_text()

    loaded(page, f"{stack['url']}/searches/{world.done}")
    assert page.locator("#chart-evals canvas").count() == 1
    assert page.locator("#chart-cost canvas").count() == 1
    assert page.locator("#chart-curves canvas").count() == 1
    assert page.get_attribute("#chart-evals", "data-points") == str(done.counts.evaluated)
    assert page.get_attribute("#chart-evals", "data-best") == formats.accuracy(done.best.accuracy)
    assert page.locator("#leaderboard tbody tr").count() == done.counts.evaluated
    assert world.failure in page.inner_text("#failures")
    assert str(world.stopped_child) in page.get_attribute("#chart-curves", "data-stops").split(",")
    assert page.inner_text("#fact-best") == formats.accuracy(done.best.accuracy)
    assert "population" in page.inner_text("#progress")  # the evolution agent's progress map
    assert page.errors == []


def test_live_chart_gains_a_point_when_an_update_lands(stack: dict[str, Any], page: Any) -> None:
    world: World = stack["world"]
    loaded(page, f"{stack['url']}/searches/{world.running}")
    before = int(page.get_attribute("#chart-evals", "data-points"))
    with ControllerClient(stack["controller"]) as c:
        children, _ = c.list_children(world.running)
        leased = [ch for ch in children if ch.status == "leased"]
        assert leased, "the running search has children in flight"
        c.update(
            world.running,
            leased[0].candidate_id,
            curve_outcome(leased[0].architecture, [0.5, 0.6, 0.99], 7),
        )
    # the page polls; wait for its chart (attribute selectors: the page's CSP allows no eval) to show the new result (no reload)
    page.wait_for_selector(f"#chart-evals[data-points='{before + 1}']")
    page.wait_for_selector("#chart-evals[data-best='0.9900']")
    assert page.errors == []


def test_pareto_front_is_the_controllers(stack: dict[str, Any], page: Any) -> None:
    world: World = stack["world"]
    loaded(page, f"{stack['url']}/searches/{world.done}")
    with ControllerClient(stack["controller"]) as c:
        fronts = {
            m: [e.candidate_id for e in c.leaderboard(world.done, 1000, m)]
            for m in ("params", "flops")
        }
    shown = page.get_attribute("#chart-cost", "data-front")
    assert [int(i) for i in shown.split(",")] == fronts["params"]
    page.select_option("#cost-metric", "flops")
    page.wait_for_selector("#chart-cost[data-metric='flops']")
    shown = page.get_attribute("#chart-cost", "data-front")
    assert [int(i) for i in shown.split(",")] == fronts["flops"]


def test_leaderboard_sorts_and_shows_a_network(stack: dict[str, Any], browser: Any) -> None:
    world: World = stack["world"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack["url"])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    loaded(page, f"{stack['url']}/searches/{world.done}")
    page.click("#leaderboard th[data-key='params']")
    params = [
        int(t.replace(",", ""))
        for t in page.locator("#leaderboard tbody td:nth-child(5)").all_inner_texts()
    ]
    assert params == sorted(params) and len(params) > 3
    page.click("#leaderboard th[data-key='params']")  # again: descending
    params = [
        int(t.replace(",", ""))
        for t in page.locator("#leaderboard tbody td:nth-child(5)").all_inner_texts()
    ]
    assert params == sorted(params, reverse=True)

    page.click(f"#leaderboard tr[data-child='{world.real_child}']")
    page.wait_for_selector("#child-arch")
    text = page.inner_text("#child-arch")
    assert len(page.locator("#child-detail svg.arch-graph g.node").all()) == len(text.split()) + 2
    assert page.locator("#child-detail a[data-format='onnx']").count() == 1
    page.click("#child-detail button.copy")
    page.wait_for_selector("#child-detail button.copy:text-is('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == text
    context.close()


def test_unknown_id_is_a_404_page(stack: dict[str, Any], page: Any) -> None:
    response = page.goto(stack["url"] + "/searches/not-a-search")
    assert response.status == 404
    assert "There is no search with id 'not-a-search'" in page.inner_text("#not-found")


def test_banner_while_the_controller_is_down(
    tmp_path: Path, page: Any, request: pytest.FixtureRequest
) -> None:
    db = str(tmp_path / "controller.db")
    handle, searches = serve_controller(db)
    port = handle.port
    with ControllerClient(f"127.0.0.1:{port}") as c:
        sid = c.create_search(
            agent=cpb.AgentSpec(name="random"),
            dataset="digits",
            budget=5,
            name="banner test",
            training=codec.settings_to_proto(TrainSettings(epochs=1)),
        ).search_id
        cand = c.sample(sid, 1).candidates[0]
        c.update(sid, cand.id, curve_outcome(cand.text, [0.7], 1))
    dash = Running(DashboardConfig(f"127.0.0.1:{port}", refresh=0.25, timeout=2.0))
    request.addfinalizer(dash.stop)
    loaded(page, f"{dash.url}/searches/{sid}")
    assert page.is_hidden("#banner")

    handle.stop(None)
    searches.store.close()
    page.wait_for_selector("#banner", state="visible")
    assert "does not answer" in page.inner_text("#banner")

    handle, searches = serve_controller(db, port=port)  # back, on the same address
    request.addfinalizer(lambda: (handle.stop(None), searches.store.close()))
    page.wait_for_selector("#banner", state="hidden")
    with ControllerClient(f"127.0.0.1:{port}") as c:
        more = c.sample(sid, 1).candidates[0]
        c.update(sid, more.id, curve_outcome(more.text, [0.8], 2))
    page.wait_for_selector("#chart-evals[data-points='2']")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_layouts_fit_desktop_and_phone(stack: dict[str, Any], browser: Any, scheme: str) -> None:
    """No page scrolls sideways at 1280 or 390 px (wide tables scroll inside their box), the
    theme follows prefers-color-scheme, and the screenshots can be kept for the README."""
    world: World = stack["world"]
    out = os.environ.get("NASRL_DASHBOARD_SCREENSHOTS")
    folder = Path(out) if out else None
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,
            device_scale_factor=1,
        )
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        pages = [
            ("searches", "/", "#searches tr[data-search-id]"),
            ("search", f"/searches/{world.done}", "body[data-loaded='1']"),
            ("running", f"/searches/{world.running}", "body[data-loaded='1']"),
            ("trainers", "/trainers", "#trainers tr[data-target]"),
        ]
        for label, path, ready in pages:
            page.goto(stack["url"] + path)
            page.wait_for_selector(ready)
            if label == "search":
                page.click(f"#leaderboard tr[data-child='{world.real_child}']")
                page.wait_for_selector("#child-detail svg.arch-graph")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{label} at {width} px scrolls sideways by {overflow} px"
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
            if folder is not None and f"{label}_{name}_{scheme}" in KEPT:
                folder.mkdir(parents=True, exist_ok=True)
                page.screenshot(
                    path=str(folder / f"dashboard_{label}_{name}_{scheme}.png"),
                    full_page=True,
                )
        context.close()
