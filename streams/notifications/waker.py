"""The waker: the engine's clock, one supervised task per worker.

Every ``SYNAPSEOPS_NOTIFICATIONS_TICK_S`` it publishes a resume command for each run whose wait
is over (a delay's deadline, an approval answered or expired) or whose holder died (its lease
ran out), and a flush command for each digest whose window closed. The due rows are taken
``FOR UPDATE SKIP LOCKED`` and marked, so several workers do not publish the same resume
twice in a lease; a duplicate would be harmless anyway (the run's lease and its keyed steps).
It also sets the approval gauges (pending, oldest age) and the digests held.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from streams.notifications import metrics
from streams.notifications.engine import Engine
from synapseops.logging import get_logger

log = get_logger(__name__)
GAUGES_EVERY_TICKS = 4


class Waker:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tick_s = engine.settings.notifications.tick_s
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        ticks = 0
        while not self._stopping.is_set():
            await self.tick(gauges=ticks % GAUGES_EVERY_TICKS == 0)
            ticks += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.tick_s)
            except TimeoutError:
                pass

    async def tick(self, *, gauges: bool = True) -> int:
        """One look; how many commands were published."""
        engine = self.engine
        now = datetime.now(UTC)
        runs = await asyncio.to_thread(engine.runs.due_runs, now, engine.lease_s)
        digests = await asyncio.to_thread(engine.windows.due_digests, now, engine.lease_s)
        await asyncio.gather(
            *(engine.delivery.publish_resume({"run_id": run_id}, run_id) for run_id in runs),
            *(engine.delivery.publish_resume({"digest_id": d}, f"digest:{d}") for d in digests),
        )
        if runs or digests:
            log.info("resumed", extra={"runs": len(runs), "digests": len(digests)})
        if gauges:
            pending, oldest = await asyncio.to_thread(engine.approvals.pending_age, now)
            metrics.APPROVALS_PENDING.set(pending)
            metrics.APPROVAL_OLDEST_AGE.set(oldest)
            metrics.DIGESTS_HELD.set(await asyncio.to_thread(engine.windows.open_digests))
        return len(runs) + len(digests)

    async def stop(self) -> None:
        self._stopping.set()
