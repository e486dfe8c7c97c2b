"""How long the dashboard takes to load a search of 10,000 results.

    .venv/bin/python bench/dashboard_load.py [--results 10000] [--repeats 5] [--out bench/results]

A controller process on a fresh database; one random search (3-epoch learning curves, 1 % of
its children failed) filled through the real RPCs (Sample 100 at a time, one Update each);
then the dashboard (in this process, on 127.0.0.1:0) reading that controller. Timed:

- ``api``: what the search page fetches, in the order it fetches it — the HTML, the summary
  (GetSearch + Leaderboard + every child through ListChildren), the trained children as
  columns, the last children's curves — once on a fresh dashboard (``cold``: its cache empty,
  every child read from the controller) and then ``--repeats`` times (``warm``: the median);
- ``browser`` (where Debian's chromium and Playwright are installed): a fresh headless
  Chromium page from navigation until the page has drawn everything (``body[data-loaded]``),
  cold and warm.

Prints the numbers and writes bench/results/dashboard_load.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from nasrl.cli.local import LocalService
from nasrl.core import codec
from nasrl.core.results import EpochRecord, TrainOutcome, TrainSettings
from nasrl.dashboard.app import DashboardConfig
from nasrl.dashboard.server import Running
from nasrl.rpc.client import ControllerClient
from protos import controller_pb2 as cpb

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def outcome(text: str, rng: random.Random) -> TrainOutcome:
    top = 0.5 + 0.45 * rng.random()
    curve = [top - 0.15, top - 0.04, top]
    records = tuple(EpochRecord(i + 1, 3, 1 - v, v, v, float(i + 1)) for i, v in enumerate(curve))
    params = rng.randint(5_000, 500_000)
    return TrainOutcome(
        top, top, top - 0.01, params, params * 40, 1 + rng.random(), "cpu", text, records
    )


def fill(client: ControllerClient, results: int) -> tuple[str, float]:
    """A search with ``results`` reports (1 % failures); its id and the seconds it took."""
    began = time.perf_counter()
    sid = client.create_search(
        agent=cpb.AgentSpec(name="random"),
        dataset="digits",
        budget=results,
        training=codec.settings_to_proto(TrainSettings(epochs=3)),
        name=f"random, {results:,} results",
    ).search_id
    rng = random.Random(0)
    reported = 0
    while reported < results:
        batch = client.sample(sid, min(100, results - reported))
        for cand in batch.candidates:
            if cand.cached is not None:
                continue
            if rng.random() < 0.01:
                client.update(sid, cand.id, failure="synthetic failure")
            else:
                client.update(sid, cand.id, outcome(cand.text, rng))
            reported += 1
        if batch.done:
            break
        if reported and reported % 2000 < 100:
            print(f"  {reported:,} results", flush=True)
    return sid, time.perf_counter() - began


def fetch(url: str) -> int:
    with urllib.request.urlopen(url, timeout=120) as r:
        return len(r.read())


def page_load(base: str, sid: str) -> tuple[float, int]:
    """Seconds and bytes for what the search page fetches, in its order."""
    began = time.perf_counter()
    size = fetch(f"{base}/searches/{sid}")
    size += fetch(f"{base}/api/searches/{sid}")
    children = f"{base}/api/searches/{sid}/children?after=0"
    with urllib.request.urlopen(children, timeout=120) as r:
        body = r.read()
    size += len(body)
    last = json.loads(body)["cursor"]
    size += fetch(f"{base}/api/searches/{sid}/curves?after={max(0, last - 20)}")
    return time.perf_counter() - began, size


def api_timings(controller: str, sid: str, repeats: int) -> dict[str, Any]:
    with Running(DashboardConfig(controller, refresh=2.0, timeout=60.0)) as dash:
        cold, size = page_load(dash.url, sid)
        warm = [page_load(dash.url, sid)[0] for _ in range(repeats)]
        list_began = time.perf_counter()
        fetch(f"{dash.url}/api/searches")
        listing = time.perf_counter() - list_began
    return {
        "cold_s": round(cold, 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_s": [round(w, 3) for w in warm],
        "bytes": size,
        "searches_list_warm_s": round(listing, 3),
    }


def browser_timings(controller: str, sid: str, repeats: int) -> dict[str, Any] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with (
        Running(DashboardConfig(controller, refresh=60.0, timeout=60.0)) as dash,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        loads = []
        for _ in range(repeats + 1):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(120_000)
            began = time.perf_counter()
            page.goto(f"{dash.url}/searches/{sid}")
            page.wait_for_selector("body[data-loaded='1']")
            loads.append(time.perf_counter() - began)
            points = page.get_attribute("#chart-evals", "data-points")
            context.close()
        browser.close()
    return {
        "cold_s": round(loads[0], 3),
        "warm_median_s": round(statistics.median(loads[1:]), 3),
        "warm_s": [round(x, 3) for x in loads[1:]],
        "points_drawn": int(points or 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nasrl-dashboard-bench-") as tmp:
        controller = LocalService(
            "controller_service",
            ["--host", "127.0.0.1", "--port", "0", "--db", f"{tmp}/c.db"],
            log_dir=Path(tmp) / "logs",
        ).start(timeout=120)
        try:
            with ControllerClient(controller.target, timeout=60.0) as client:
                print(f"filling a search with {args.results:,} results ...", flush=True)
                sid, seconds = fill(client, args.results)
                evaluated = client.get_search(sid).counts.evaluated
            print(f"  {evaluated:,} trained results in {seconds:.0f} s")
            api = api_timings(controller.target, sid, args.repeats)
            browser = browser_timings(controller.target, sid, args.repeats)
        finally:
            controller.stop(timeout=30)
    report = {"results": args.results, "evaluated": evaluated, "api": api, "browser": browser}
    print(
        f"search page, {evaluated:,} trained children: API (HTML + summary + children + "
        f"curves, {api['bytes'] / 1e6:.2f} MB) cold {api['cold_s']:.3f} s, warm "
        f"{api['warm_median_s']:.3f} s (median of {args.repeats}); searches list "
        f"{api['searches_list_warm_s']:.3f} s"
    )
    if browser is None:
        print("browser: skipped (no chromium or playwright: make browser-tool)")
    else:
        print(
            f"headless Chromium, navigation to fully drawn ({browser['points_drawn']:,} points): "
            f"cold {browser['cold_s']:.3f} s, warm {browser['warm_median_s']:.3f} s"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard_load.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
