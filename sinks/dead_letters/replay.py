"""Replay and discard of dead letters: one implementation behind the API and the CLI.

A replay sends each matching ``dead`` row back into its own pipeline: the same key and value
bytes, to the pipeline's FIRST retry-tier topic (``PipelineSpec.retry_topics[0]``) — not the
source topic, so other pipelines reading that source do not see the record again. Its history
headers go with it (:meth:`FailureHistory.for_replay`: attempt kept, replay id set, replay
count +1, tier count reset) with ``not-before`` = now, so the tier consumer runs it at once.

Per row: lock it (``FOR UPDATE SKIP LOCKED``, still ``dead``), send and await ``acks=all``,
mark it ``replayed``, commit. Two replays racing over one row send it once; a crash between
the send and the commit leaves the row ``dead`` and a later replay sends it again, which is
safe because every effect is idempotent (docs/ARCHITECTURE.md, reliability road 7-8).

Every request is a ``replays`` row (:mod:`sinks.dead_letters.replay_requests`). With an
``Idempotency-Key`` a repeated request gets the stored answer and sends nothing; the same key
with another filter is refused; a replay whose process died is taken over once its lease is
stale; a replay that failed half-way (Kafka down) gives its key back. A repeat therefore
always ends up replaying the rows still ``dead``, never wedges, and never answers for a
filter it was not asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update

from sinks.db import database_errors
from sinks.dead_letters.metrics import REPLAYED_RECORDS
from sinks.dead_letters.replay_filter import MAX_IDS, DeadLetterFilter, filter_clauses
from sinks.dead_letters.replay_requests import ReplayRequests, ReplayResult
from sinks.dead_letters.store import headers_from_json
from sinks.dead_letters.tables import DEAD, DISCARDED, REPLAYED, dead_letters
from streams.road.headers import FailureHistory
from synapseops.errors import (
    EmptyFilter,
    ReplayInProgress,
    ReplayKeyReused,
    ReplayLeaseLost,
)
from synapseops.ids import new_id
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import ReplaySettings
from topics.registry import PipelineSpec

__all__ = [
    "MAX_IDS",
    "DeadLetterFilter",
    "DeadLetterReplay",
    "EmptyFilter",
    "RateLimiter",
    "ReplayInProgress",
    "ReplayKeyReused",
    "ReplayLeaseLost",
    "ReplayResult",
    "filter_clauses",
    "pipelines_for",
    "replay_headers",
]

log = get_logger(__name__)

DEFAULT_RATE_PER_S = 100.0
Progress = Callable[[int, int], None]


class RateLimiter:
    """Paces calls to at most ``rate_per_s`` per second (``None`` or 0: no limit).

    Slots are ``1/rate`` apart; an idle limiter does not bank a burst.
    """

    def __init__(
        self,
        rate_per_s: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s is not None and rate_per_s < 0:
            raise ValueError("rate_per_s must not be negative")
        self.interval = 1.0 / rate_per_s if rate_per_s else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def reserve(self) -> float:
        """Take the next slot; how long to wait for it (seconds, 0 if it is now)."""
        if not self.interval:
            return 0.0
        now = self._clock()
        slot = now if self._next is None else max(self._next, now)
        self._next = slot + self.interval
        return slot - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)


def replay_headers(
    stored: Mapping[str, Any], replay_id: str, now_ms: int
) -> list[tuple[str, bytes]]:
    """The headers a replayed record carries back: its history, counted as one more replay."""
    history = FailureHistory.from_headers(headers_from_json(stored))
    return replace(history.for_replay(replay_id), not_before_ms=now_ms).to_headers()


class DeadLetterReplay:
    """Select, replay and discard dead letters. ``pipelines`` maps a name to its spec."""

    def __init__(
        self,
        engine: sqlalchemy.Engine,
        pipelines: Mapping[str, PipelineSpec],
        settings: ReplaySettings | None = None,
    ) -> None:
        self.engine = engine
        self.pipelines = pipelines
        self.requests = ReplayRequests(engine, settings)

    # ---- reads --------------------------------------------------------------------------

    def select(
        self,
        criteria: DeadLetterFilter,
        *,
        status: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching rows, newest first; ``before_id`` pages to older ones."""
        statement = select(dead_letters).where(*filter_clauses(criteria, status=status))
        if before_id is not None:
            statement = statement.where(dead_letters.c.id < before_id)
        statement = statement.order_by(dead_letters.c.id.desc()).limit(limit)
        with database_errors("dead_letters select"), self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(statement).mappings()]

    def get(self, row_id: int) -> dict[str, Any] | None:
        with database_errors("dead_letters get"), self.engine.connect() as conn:
            row = conn.execute(select(dead_letters).where(dead_letters.c.id == row_id)).mappings()
            first = row.first()
        return dict(first) if first is not None else None

    def matching_ids(self, criteria: DeadLetterFilter) -> list[int]:
        """Ids of the ``dead`` rows a replay of ``criteria`` would send, oldest first."""
        statement = (
            select(dead_letters.c.id)
            .where(*filter_clauses(criteria, status=DEAD))
            .order_by(dead_letters.c.id)
        )
        with database_errors("dead_letters match"), self.engine.connect() as conn:
            return list(conn.execute(statement).scalars())

    # ---- discard ------------------------------------------------------------------------

    def discard(self, criteria: DeadLetterFilter, *, allow_all: bool = False) -> list[int]:
        """Mark matching ``dead`` rows ``discarded``; the ids that changed."""
        if criteria.is_empty() and not allow_all:
            raise EmptyFilter("discard needs at least one criterion")
        statement = (
            update(dead_letters)
            .where(*filter_clauses(criteria, status=DEAD))
            .values(status=DISCARDED, updated_at=func.now())
            .returning(dead_letters.c.id)
        )
        with database_errors("dead_letters discard"), self.engine.begin() as conn:
            ids = sorted(conn.execute(statement).scalars())
        log.info("dead letters discarded", extra={"count": len(ids), **criteria.as_json()})
        return ids

    # ---- replay -------------------------------------------------------------------------

    async def replay(
        self,
        criteria: DeadLetterFilter,
        *,
        dry_run: bool = False,
        rate_per_s: float | None = DEFAULT_RATE_PER_S,
        idempotency_key: str | None = None,
        requested_by: str | None = None,
        producer: AsyncProducer | None = None,
        progress: Progress | None = None,
        allow_all: bool = False,
    ) -> ReplayResult:
        """Send every matching ``dead`` row back into its pipeline (see the module doc).

        ``dry_run`` only counts (and ignores ``idempotency_key``, so a dry run never uses up
        the key of the real request). Raises :class:`EmptyFilter`, :class:`ReplayInProgress`,
        :class:`ReplayKeyReused`, :class:`ReplayLeaseLost`, and retryable errors when
        PostgreSQL or Kafka fail (the replay may then be repeated).
        """
        if criteria.is_empty() and not allow_all:
            raise EmptyFilter("replay needs at least one criterion (or allow_all)")
        if not dry_run and producer is None:
            raise ValueError("a replay that is not a dry run needs a producer")
        key = None if dry_run else idempotency_key
        opened = await asyncio.to_thread(
            self.requests.open,
            new_id("rpl"),
            key,
            criteria,
            dry_run=dry_run,
            requested_by=requested_by,
        )
        if isinstance(opened, ReplayResult):
            log.info("replay repeated; answering as before", extra=opened.as_json())
            return opened
        lease = opened
        try:
            async with self.requests.held(lease) as lost:
                ids = await asyncio.to_thread(self.matching_ids, criteria)
                replayed = 0
                if not dry_run:
                    assert producer is not None
                    limiter = RateLimiter(rate_per_s)
                    for done, row_id in enumerate(ids, start=1):
                        if lost.is_set():
                            raise ReplayLeaseLost(
                                f"replay {lease.replay_id} was taken over by another request"
                            )
                        await limiter.wait()
                        if await self._replay_row(row_id, lease.replay_id, producer):
                            replayed += 1
                        if progress is not None:
                            progress(done, len(ids))
        except ReplayLeaseLost:
            raise  # the key is the new owner's: nothing of it is ours to give back
        except BaseException as exc:
            await asyncio.to_thread(self.requests.fail, lease, exc)
            raise
        result = ReplayResult(replay_id=lease.replay_id, matched=len(ids), replayed=replayed)
        if not await asyncio.to_thread(self.requests.finish, lease, result):
            log.warning("replay finished after losing its lease", extra=result.as_json())
        log.info(
            "replay finished",
            extra={
                **result.as_json(),
                "dry_run": dry_run,
                "taken_over": lease.taken_over,
                **criteria.as_json(),
            },
        )
        return result

    async def _replay_row(self, row_id: int, replay_id: str, producer: AsyncProducer) -> bool:
        """Send one row back and mark it; ``False`` if it is no longer ``dead`` (or locked)."""
        conn = await asyncio.to_thread(self._begin)
        try:
            row = await asyncio.to_thread(self._lock_dead_row, conn, row_id)
            if row is None:
                return False
            spec = self.pipelines.get(row["pipeline"])
            if spec is None or not spec.retry_topics:
                log.warning(
                    "dead letter of an unknown pipeline (or one without tiers) left dead",
                    extra={"id": row_id, "pipeline": row["pipeline"]},
                )
                return False
            headers = replay_headers(row["headers"], replay_id, int(time.time() * 1000))
            await producer.send(spec.retry_topics[0], row["value"], key=row["key"], headers=headers)
            count = FailureHistory.from_headers(headers).replay_count
            await asyncio.to_thread(self._mark_replayed, conn, row_id, replay_id, count)
            REPLAYED_RECORDS.labels(row["pipeline"]).inc()
            return True
        finally:
            await asyncio.to_thread(conn.close)  # rolls back unless _mark_replayed committed

    def _begin(self) -> sqlalchemy.Connection:
        with database_errors("dead_letters replay"):
            conn = self.engine.connect()
            conn.begin()
        return conn

    @staticmethod
    def _lock_dead_row(conn: sqlalchemy.Connection, row_id: int) -> Mapping[str, Any] | None:
        statement = (
            select(dead_letters)
            .where(dead_letters.c.id == row_id, dead_letters.c.status == DEAD)
            .with_for_update(skip_locked=True)
        )
        with database_errors("dead_letters lock"):
            row = conn.execute(statement).mappings().first()
        return dict(row) if row is not None else None

    @staticmethod
    def _mark_replayed(
        conn: sqlalchemy.Connection, row_id: int, replay_id: str, replay_count: int
    ) -> None:
        statement = (
            update(dead_letters)
            .where(dead_letters.c.id == row_id)
            .values(
                status=REPLAYED,
                replay_id=replay_id,
                replay_count=replay_count,
                updated_at=func.now(),
            )
        )
        with database_errors("dead_letters mark replayed"):
            conn.execute(statement)
            conn.commit()


def pipelines_for(settings_delays: Sequence[float]) -> Mapping[str, PipelineSpec]:
    """The platform's pipelines (what the API and the CLI replay into)."""
    from topics.registry import platform_registry

    return platform_registry(tuple(settings_delays)).pipelines
