"""The ``seen-pruner`` worker task: deletes the pipeline's de-duplication keys older than
``SYNAPSEOPS_AGGREGATION_SEEN_RETENTION_DAYS``, every ``SYNAPSEOPS_AGGREGATION_SEEN_PRUNE_EVERY_S``
(the first time at start). Every worker runs one; their deletes skip each other's rows.
A retention of 0 keeps every key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sinks.aggregation.seen import SeenKeys
from streams.aggregation import metrics
from synapseops.errors import SynapseOpsError
from synapseops.logging import get_logger
from synapseops.settings import AggregationSettings

log = get_logger(__name__)


class SeenPruner:
    def __init__(self, seen: SeenKeys, settings: AggregationSettings) -> None:
        self.seen = seen
        self.settings = settings
        self._stopping = asyncio.Event()

    async def prune_once(self) -> int:
        """One pass; how many keys it deleted. A database error is logged, and the next
        pass tries again."""
        cutoff = datetime.now(UTC) - timedelta(days=self.settings.seen_retention_days)
        try:
            deleted = await asyncio.to_thread(self.seen.prune, cutoff)
        except SynapseOpsError as exc:
            log.warning("pruning seen keys failed", extra={"error": str(exc)})
            return 0
        metrics.SEEN_PRUNED.inc(deleted)
        if deleted:
            log.info("seen keys pruned", extra={"deleted": deleted, "before": cutoff.isoformat()})
        return deleted

    async def run(self) -> None:
        if self.settings.seen_retention_days <= 0:
            await self._stopping.wait()
            return
        while not self._stopping.is_set():
            await self.prune_once()
            try:
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self.settings.seen_prune_every_s
                )
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stopping.set()
