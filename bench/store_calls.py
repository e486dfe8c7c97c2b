"""Store round trips per call: how many times one Sample(1) and one Update of a warmed-up
search call into the controller's ``Store`` (every public method, transactions included),
per agent. A count, not a timing: the same on any machine, so it runs against any checkout
(``PYTHONPATH=OTHER_CHECKOUT``) to compare layouts.

    .venv/bin/python bench/store_calls.py [--agents random,reinforce] [--warmup 5]
        [--out bench/results]

Writes bench/results/store_calls.json: per agent, per call, the total and the calls by
method.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller_service.searches import Searches
from controller_service.spec import SearchSpec
from controller_service.store import Store
from nasrl.core.results import TrainOutcome

RESULTS = Path(__file__).resolve().parent / "results"


def count_calls(store: Store, counter: Counter[str]) -> None:
    """Wrap every public method of ``store`` (this instance only) to count its calls."""
    for name in dir(store):
        method = getattr(store, name)
        if name.startswith("_") or not callable(method):
            continue

        def counted(
            *args: Any, _method: Callable[..., Any] = method, _name: str = name, **kwargs: Any
        ) -> Any:
            counter[_name] += 1
            return _method(*args, **kwargs)

        setattr(store, name, counted)


def result(text: str, accuracy: float) -> TrainOutcome:
    return TrainOutcome(accuracy, accuracy, accuracy, 10, 10, 1.0, "cpu", text)


def measure(agent: str, warmup: int) -> dict[str, dict[str, Any]]:
    """One Sample(1) of a new network and its Update, after ``warmup`` rounds."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "c.db")
        searches = Searches(store)
        settings = {"batch": 2} if agent == "reinforce" else {}
        sid = searches.create(SearchSpec(agent=agent, budget=100, agent_settings=settings)).id
        for i in range(warmup):
            (h,), _ = searches.sample(sid, 1)
            if h.cached is None:
                searches.update(sid, h.id, result(h.text, 0.1 + 0.01 * i), None)
        counter: Counter[str] = Counter()
        count_calls(store, counter)
        while True:  # a cached handout is not the common case: sample until a new one
            counter.clear()
            (h,), _ = searches.sample(sid, 1)
            if h.cached is None:
                break
        sample = dict(counter)
        counter.clear()
        searches.update(sid, h.id, result(h.text, 0.3), None)
        update = dict(counter)
        store.close()
    return {
        name: {"total": sum(calls.values()), "calls": dict(sorted(calls.items()))}
        for name, calls in (("sample", sample), ("update", update))
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", default="random,reinforce")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = {agent: measure(agent, args.warmup) for agent in args.agents.split(",")}
    for agent, calls in report.items():
        for name, counted in calls.items():
            print(f"{agent:10s} {name:7s} {counted['total']:3d}  {counted['calls']}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store_calls.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
