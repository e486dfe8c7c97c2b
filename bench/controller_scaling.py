"""Controller cost as a search grows: per-call time and memory from 100 to 10,000 results in
one search, per agent, in process (no gRPC: the transport does not grow).

    .venv/bin/python bench/controller_scaling.py [--results 10000] [--agents reinforce,...]
        [--marks 100,1000,10000] [--out bench/results]

For each agent (``reinforce-fixed``: with the depth curriculum off, layers_step 0, since the
curriculum makes later rollouts deeper by design): one search (budget = results) on a fresh
database (qlearning's epsilon schedule stretched over the run); Sample(1) + Update with a
synthetic accuracy until ``results`` results; at each mark, the median Sample and Update of the
last 100 calls, the agent's stored state size and the process's resident memory. Flat means
the 10,000 figures stay within 2x of the 100 ones. Writes bench/results/controller_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from controller_service.searches import Searches
from controller_service.spec import SearchSpec, named_space
from controller_service.store import Store
from nasrl.core.results import TrainOutcome

RESULTS = Path(__file__).resolve().parent / "results"
SPACES = {"qlearning": "metaqnn"}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def outcome(text: str) -> TrainOutcome:
    acc = min(0.99, 0.3 + 0.01 * (hash(text) % 60))
    return TrainOutcome(acc, acc, acc, 1000, 10000, 1.0, "cpu", text)


def state_bytes(store: Store, search_id: str) -> int:
    """Everything stored for the search's agent: its state, weights, entries and log."""
    total = 0
    for table, columns in (
        ("agent_state", "state"),
        ("agent_weights", "state"),
        ("agent_entries", "key) + LENGTH(value"),
        ("agent_log", "item"),
    ):
        rows = store._read(
            f"SELECT COALESCE(SUM(LENGTH({columns})), 0) AS n FROM {table} WHERE search_id = ?",
            (search_id,),
        )
        total += int(rows[0]["n"])
    return total


def run(agent: str, results: int, marks: list[int], tmp: Path) -> list[dict[str, Any]]:
    store = Store(tmp / f"{agent}.db")
    searches = Searches(store)
    name, _, variant = agent.partition("-")
    space = named_space(SPACES[name]) if name in SPACES else None
    # "reinforce-fixed": the paper's curriculum off, so that the depth (and with it the cost
    # of a rollout) stays that of the first sample
    settings: dict[str, Any] = {"layers_step": 0} if variant == "fixed" else {}
    if name == "qlearning":  # the epsilon schedule over the whole run (the paper's ends at
        # 2,700 models; past it a greedy agent re-proposes known networks, which cost little)
        settings["schedule_scale"] = max(1.0, results / 2700)
    spec = SearchSpec(agent=name, agent_settings=settings, budget=results * 2, space=space)
    sid = searches.create(spec).id
    sample_ms: list[float] = []
    update_ms: list[float] = []
    rows = []
    done = 0
    while done < results:
        t0 = time.perf_counter()
        handouts, _ = searches.sample(sid, 1)
        t1 = time.perf_counter()
        sample_ms.append((t1 - t0) * 1e3)
        for h in handouts:
            if h.cached is None:
                t2 = time.perf_counter()
                searches.update(sid, h.id, outcome(h.text), None)
                update_ms.append((time.perf_counter() - t2) * 1e3)
                done += 1
                if done in marks:
                    row = {
                        "agent": agent,
                        "results": done,
                        "sample_p50_ms": round(statistics.median(sample_ms[-100:]), 3),
                        "update_p50_ms": round(statistics.median(update_ms[-100:]), 3),
                        "update_mean_ms": round(statistics.fmean(update_ms[-100:]), 3),
                        "state_kb": round(state_bytes(store, sid) / 1024, 1),
                        "rss_mb": round(rss_mb(), 1),
                    }
                    rows.append(row)
                    print(
                        f"{agent:10s} {done:6d} results: Sample p50 {row['sample_p50_ms']:7.2f} "
                        f"ms  Update p50 {row['update_p50_ms']:7.2f} ms (mean "
                        f"{row['update_mean_ms']:7.2f})  state {row['state_kb']:8.1f} KB  "
                        f"RSS {row['rss_mb']:6.1f} MB",
                        flush=True,
                    )
    store.close()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--results", type=int, default=10_000)
    p.add_argument("--marks", default="100,1000,10000")
    p.add_argument("--agents", default="random,evolution,reinforce,reinforce-fixed,qlearning")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as the controller runs
    marks = sorted({int(m) for m in args.marks.split(",") if int(m) <= args.results})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for agent in args.agents.split(","):
            rows += run(agent, args.results, marks, Path(tmp))
    report = {"results": args.results, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controller_scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
