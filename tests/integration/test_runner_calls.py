"""How the runner spends its controller calls, against a real controller: Report and Update
wait for one of ``CONTROLLER_CALLS`` permits; Sample, the only call that fills a free trainer
slot, never waits behind them (children of equal length end together, and a Sample queued
behind their Updates left every slot they freed idle meanwhile)."""

from __future__ import annotations

import asyncio
import threading

from nasrl.rpc.client import AsyncControllerClient, ControllerClient
from nasrl.runner import Runner, TrainerPool
from nasrl.runner.calls import ControllerCalls
from protos import controller_pb2 as cpb
from tests.helpers import outcome


def test_a_sample_does_not_queue_behind_updates_that_wait_for_a_permit(controller: str) -> None:
    with ControllerClient(controller) as c:
        sid = c.create_search(
            agent=cpb.AgentSpec(name="random"), dataset="digits", budget=10
        ).search_id
        # the pool is never used: no trainer is called in this test
        runner = Runner(c, TrainerPool("127.0.0.1:1"), sid)

        async def scenario() -> None:
            ctl = AsyncControllerClient(controller)
            try:
                calls = ControllerCalls(ctl, sid, 600.0, threading.Event())
                calls.permits = asyncio.Semaphore(0)  # every permit held by queued calls
                batch = await asyncio.wait_for(calls.sample(3), 60)
                assert len(batch.candidates) == 3

                first = batch.candidates[0]
                update = asyncio.ensure_future(
                    runner._report(calls, first, outcome(first.text), None, None)
                )
                await asyncio.sleep(0)  # the update is now waiting for a permit
                assert not update.done()
                calls.permits.release()  # a permit comes free: the update goes through
                await asyncio.wait_for(update, 60)
                assert runner.stats.trained == 1
            finally:
                await ctl.close()

        asyncio.run(scenario())
        assert c.get_search(sid).counts.evaluated == 1
