"""``nasrl search``: the runner with a progress bar, then the leaderboard table or the JSON
summary, the plot and the exported best network. Its flags are in ``search_flags.py``."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console

from nasrl.cli.search_display import (
    SearchDisplay,
    err,
    leaderboard_table,
    one_line,
    state_text,
)
from nasrl.cli.search_setup import create_search, screening
from nasrl.core.presets import preset_settings
from nasrl.core.setting_text import parse_assignments
from nasrl.rpc.client import ControllerClient, LeaderboardEntry, Search
from nasrl.rpc.security import client_security
from nasrl.runner import Runner, RunnerEvents, RunStats, TrainerPool
from nasrl.runner.routing import check_trainers

if TYPE_CHECKING:
    from nasrl.cli.trained_export import ExportReport

__all__ = ["cmd_search", "failure_verdict", "SEARCH_FAILED"]

SEARCH_FAILED = 3  # exit code: the search ran, but too many of its children failed

out = Console(highlight=False)


def failure_verdict(evaluated: int, failed: int, max_fraction: float) -> str | None:
    """Why a finished search counts as failed (None when it does not): no child trained, or
    more than ``max_fraction`` of the trained-or-failed children failed."""
    done = evaluated + failed
    if evaluated == 0:
        return f"all {failed} children failed" if failed else "no child was trained"
    if failed / done > max_fraction:
        return (
            f"{failed} of {done} children failed ({failed / done:.0%}, more than "
            f"--max-failure-fraction {max_fraction:g})"
        )
    return None


def _check(args: argparse.Namespace) -> None:
    """Check the flags before any connection: a bad name or value fails at once."""
    if (args.agent_setting or args.preset) and args.resume:
        raise ValueError(
            "--agent-setting and --preset set up a new search; a --resume keeps its settings"
        )
    args.agent_values = parse_assignments(args.agent, args.agent_setting)
    preset_settings(args.agent, args.preset)  # an unknown preset fails before anything starts
    if not args.resume:
        screening(args)  # predictor flags without --screen predictor fail before anything too
    if not 0.0 <= args.max_failure_fraction <= 1.0:
        raise ValueError(
            f"--max-failure-fraction must be between 0 and 1, not {args.max_failure_fraction:g}"
        )
    if args.export_best:  # a bad name or a missing package fails now, not after the search
        from nasrl.cli.export_cmd import check_export_target

        args.export_format = check_export_target(args.export_best, args.export_format)


def _runner(
    c: ControllerClient, pool: TrainerPool, args: argparse.Namespace, s: Search
) -> tuple[Runner, SearchDisplay]:
    display = SearchDisplay(
        c,
        s.search_id,
        s.spec.budget,
        args.quiet or args.json,
        done=s.counts.evaluated + s.counts.failed,
        best=None if s.best is None else s.best.accuracy,
    )
    events = RunnerEvents(
        on_epoch=display.on_epoch, on_result=display.on_result, on_wait=display.on_wait
    )
    runner = Runner(
        c,
        pool,
        s.search_id,
        events,
        retries=args.retries,
        controller_wait=args.controller_wait,
        early_stopping=s.spec.early_stopping not in ("", "none"),
        trainer_wait=args.trainer_wait,
    )
    if args.resume:
        runner.reclaim(max(pool.total_slots(), s.counts.in_flight))
    return runner, display


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, systemd, ``kill``): the search stops as on Ctrl-C."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises ``Terminated``; the former
    handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_search(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    _check(args)
    security = client_security(args)
    pool = TrainerPool(args.trainers, args.slots_per_trainer, security=security)
    with ControllerClient(args.controller, timeout=args.timeout, security=security) as c:
        if not args.resume and args.evaluation == "shared":  # before creating anything
            check_trainers(pool, "the new search", args.top_k)
        search_id = args.resume or create_search(c, args, pool)
        runner, display = _runner(c, pool, args, c.get_search(search_id))
        try:
            with stop_on_sigterm(), display.progress:
                stats = runner.run(tick=display.tick)
            return _finish(c, pool, args, search_id, stats, began)
        except KeyboardInterrupt as stopped:
            runner.stop()
            how = "terminated" if isinstance(stopped, Terminated) else "interrupted"
            err.print(
                f"{how}: running children were cancelled and nothing half-written; "
                f"continue with --resume {search_id}"
            )
            return 143 if isinstance(stopped, Terminated) else 130
        finally:
            pool.close()


# ------------------------------------------------------------------------ after the search


def _finish(
    c: ControllerClient,
    pool: TrainerPool,
    args: argparse.Namespace,
    search_id: str,
    stats: RunStats,
    began: float,
) -> int:
    s = c.get_search(search_id)
    entries = c.leaderboard(search_id, top=1000)
    if args.plot and entries:
        _plot(s, entries, args.plot)
    exported = _export(pool, s, entries[0], args) if args.export_best and entries else None
    summary = _summary(s, entries, exported, stats, began)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(s, entries, stats, summary["wall_seconds"])
    verdict = failure_verdict(s.counts.evaluated, s.counts.failed, args.max_failure_fraction)
    if verdict is None:
        return 0
    last = f"; last failure: {one_line(stats.last_failure)}" if stats.last_failure else ""
    print(f"nasrl: error: search {search_id}: {verdict}{last}", file=sys.stderr)
    return SEARCH_FAILED


def _plot(s: Search, entries: list[LeaderboardEntry], path: str) -> None:
    from nasrl.cli.plot import plot_search

    ordered = sorted(entries, key=lambda e: e.candidate_id)
    plot_search(
        [(i, e.accuracy) for i, e in enumerate(ordered, start=1)],
        path,
        f"search {s.search_id}: {s.spec.agent} on {s.spec.dataset}",
    )


def _export(
    pool: TrainerPool, s: Search, best: LeaderboardEntry, args: argparse.Namespace
) -> ExportReport:
    from nasrl.cli.export_cmd import export_entry

    exported = export_entry(pool.clients(), s, best, 1, args.export_best, args.export_format)
    err.print(f"exported {exported.module}: {exported.note}", markup=False)
    return exported


def _summary(
    s: Search,
    entries: list[LeaderboardEntry],
    exported: ExportReport | None,
    stats: RunStats,
    began: float,
) -> dict[str, Any]:
    """``--json``'s summary of the search and of this run."""
    return {
        "search_id": s.search_id,
        "state": s.state.value,
        "ended_because": s.ended_because,
        "evaluated": s.counts.evaluated,
        "failed": s.counts.failed,
        "cached": s.counts.cached,
        "budget": s.spec.budget,
        "exported": None if exported is None else _exported_json(exported),
        "best": None if not entries else _best_json(entries[0]),
        "trained_this_run": stats.trained,
        "stopped_early_this_run": stats.stopped_early,
        "trainer_seconds_this_run": round(stats.trainer_seconds, 3),
        "per_trainer": dict(stats.per_trainer),
        "wall_seconds": round(time.perf_counter() - began, 3),
    }


def _exported_json(exported: ExportReport) -> dict[str, Any]:
    return {
        "module": str(exported.module),
        "format": exported.format,
        "weights": None if exported.weights is None else str(exported.weights),
        "retrained_on": exported.retrained_on,
    }


def _best_json(best: LeaderboardEntry) -> dict[str, Any]:
    return {
        "arch": best.architecture,
        "accuracy": best.accuracy,
        "test_accuracy": best.test_accuracy,
        "params": best.params,
        "flops": best.flops,
        "evaluation": best.evaluation.value,
    }


def _print_summary(
    s: Search, entries: list[LeaderboardEntry], stats: RunStats, wall_seconds: float
) -> None:
    title = f"search {s.search_id} — top 10 of {len(entries)}"
    out.print(leaderboard_table(entries[:10], title))
    out.print(
        f"evaluated {s.counts.evaluated}, failed {s.counts.failed}, cached "
        f"{s.counts.cached}; trainer split {dict(stats.per_trainer)}; "
        f"{wall_seconds:.0f}s"
    )
    if s.ended_because:
        out.print(f"search {s.search_id} {state_text(s)}", markup=False, soft_wrap=True)
