"""Update: record a child's result or failure, by group commit. Each call queues its report
on the search; whoever holds the search's lock — an Update, or a Sample between its rounds —
records every queued report in one transaction with one learning pass and one write of the
agent (under load a search's Updates arrive far faster than one transaction each allows).
A group that fails is retried report by report, so a bad report fails only its own call."""

from __future__ import annotations

import math

from controller_service.budget import settle
from controller_service.errors import BadReport, CandidateNotFound, ReportConflict
from controller_service.live import LiveSearch, QueuedReport
from controller_service.reports import Failure, Report, Result, as_stored
from controller_service.stages import keeps, learns, report_conflict
from controller_service.states import SearchState, Status
from controller_service.store import CandidateRow, ResultRow, Store
from controller_service.views import UpdateAck
from nasrl.core.results import TrainOutcome

__all__ = ["GroupCommit", "report_of", "MAX_FAILURE_TEXT"]

MAX_FAILURE_TEXT = 2000
MAX_CURVE = 1000  # epochs are capped at 1,000
MAX_TEXT = {"device": 64, "architecture": 20_000}


def _check_outcome(o: TrainOutcome) -> None:
    """Values a trainer cannot have produced; BadReport names the field."""
    if len(o.curve) > MAX_CURVE:
        raise BadReport(f"result.curve has {len(o.curve)} epochs; at most {MAX_CURVE}")
    for key, limit in MAX_TEXT.items():
        if len(str(getattr(o, key))) > limit:
            raise BadReport(f"result.{key} is longer than {limit} characters")
    for key in ("validation_accuracy", "validation_accuracy_last5", "test_accuracy"):
        value = getattr(o, key)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
            raise BadReport(f"result.{key} must be a number between 0 and 1, got {value!r}")
    for key in ("params", "flops"):
        if getattr(o, key) < 0:
            raise BadReport(f"result.{key} must not be negative, got {getattr(o, key)}")
    if not isinstance(o.seconds, (int, float)) or not math.isfinite(o.seconds) or o.seconds < 0:
        raise BadReport(f"result.seconds must be a non-negative number, got {o.seconds!r}")


def report_of(outcome: TrainOutcome | None, failure: str | None) -> Report:
    """An Update's report: the checked result, else the failure reason (cut short)."""
    if outcome is not None:
        _check_outcome(outcome)
        return as_stored(Result(outcome))  # compares equal to the stored one when repeated
    return as_stored(Failure((failure or "unspecified failure")[:MAX_FAILURE_TEXT]))


class GroupCommit:
    """Records the Updates of every search of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def update(self, live: LiveSearch, cid: int, report: Report) -> UpdateAck:
        """Queue ``report`` and return its answer once it is recorded: by this call when it
        gets the search's lock, or by whoever holds it meanwhile (another Update, a Sample
        between its rounds), so a long Sample never holds up results."""
        mine = QueuedReport(cid, report)
        live.enqueue(mine)
        # This call waits until its report is recorded or the lock is free, whichever first.
        # (A holder releases the lock only while holding ``changed``, so no wake-up is lost.)
        holding = False
        with live.changed:
            while not mine.done:
                if live.lock.acquire(blocking=False):
                    holding = True
                    break
                live.changed.wait()
        if holding:
            with live.holding():
                if not mine.done:
                    group = live.take_queued()
                    if not any(item is mine for item in group):  # taken by one that crashed
                        group.append(mine)
                    self.record(live, group)
        if mine.error is not None:
            raise mine.error
        assert mine.ack is not None
        return mine.ack

    def record_queued(self, live: LiveSearch) -> None:
        """Record the reports queued on ``live`` (the caller holds its lock)."""
        queued = live.take_queued()
        if queued:
            self.record(live, queued)

    def record(self, live: LiveSearch, group: list[QueuedReport]) -> None:
        """Record ``group`` in one transaction, or report by report if that fails; then let
        their calls return."""
        try:
            self._record_group(live, group)
        except Exception:  # noqa: BLE001 - each report is retried alone below
            live.forget()  # the agent as of the last commit
            for item in group:
                if not item.done:
                    self._record_group(live, [item])
        finally:
            live.recorded()

    def _record_group(self, live: LiveSearch, group: list[QueuedReport]) -> None:
        """Record ``group`` in one transaction (the caller holds the search's lock); a report
        that needs no recording (unknown candidate, a repeat) gets its answer at once."""
        store, search_id = self.store, live.id
        try:
            row = store.search(search_id)
            assert row is not None  # searches are never deleted
            fresh: list[tuple[QueuedReport, CandidateRow]] = []
            for item in group:
                c = store.candidate(search_id, item.cid)
                if c is None:
                    item.fail(CandidateNotFound(f"search {search_id} has no candidate {item.cid}"))
                elif c.status != Status.LEASED:
                    try:
                        item.succeed(_repeat(c, item.report, row.state))
                    except ReportConflict as exc:
                        item.fail(exc)
                elif any(c.id == f.id for _, f in fresh):
                    continue  # the same candidate twice: answered as a repeat after the commit
                elif (why := report_conflict(live, c, item.report)) is not None:
                    item.fail(BadReport(why))
                else:
                    fresh.append((item, c))
            if fresh:
                live.learn(store)  # earlier results' learning, outside the transaction
                with store.transaction():
                    rewards = [self._record(live, c, item.report) for item, c in fresh]
                    live.save(store)
                    state = (
                        SearchState.DONE
                        if row.state == SearchState.RUNNING and settle(store, search_id, live.spec)
                        else row.state
                    )
                live.saved()
                for (item, _), reward in zip(fresh, rewards):
                    item.succeed(UpdateAck(True, reward, state))
        except Exception as exc:
            if len(group) > 1:
                raise  # the group is retried report by report
            group[0].fail(exc)
            live.forget()
            return
        for item in group:
            if not item.done:  # a second report of a candidate recorded above
                self._record_group(live, [item])

    def _record(self, live: LiveSearch, c: CandidateRow, report: Report) -> float | None:
        store, search_id = self.store, live.id
        agent = live.agent(store)
        reward = live.spec.reward_of(report.outcome) if isinstance(report, Result) else None
        status = Status.DONE if isinstance(report, Result) else Status.FAILED
        store.finish_candidate(search_id, c.id, status, report, reward)
        if isinstance(report, Result) and keeps(store, search_id, c, report.outcome):
            row = ResultRow.of(c.id, c.arch, report.outcome, reward or 0.0)
            store.add_result(search_id, c.arch_hash, row, replace=c.final)
        if learns(c):  # not a SHARED search's warm-up or top-k child
            agent.record(c.decisions, reward)
        for twin in store.waiting_twins(search_id, c.id):
            # Answered without training, whether the twin succeeded or failed.
            store.finish_candidate(search_id, twin.id, Status.CACHED, report, reward)
            if learns(twin):
                agent.record(twin.decisions, reward)
        return reward


def _repeat(c: CandidateRow, report: Report, state: str) -> UpdateAck:
    if c.status in (Status.WAITING, Status.INVALID):
        raise ReportConflict(f"candidate {c.id} was never handed out for training")
    if c.report == report:
        return UpdateAck(False, c.reward, state)
    raise ReportConflict(
        f"candidate {c.id} already has a different report ({c.status}); "
        "a candidate is reported once"
    )
