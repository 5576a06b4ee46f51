"""Dead-letter gauges read from PostgreSQL at scrape time, and the replay counter.

Depth and age come from the ``dead_letters`` table rather than from counters in one process:
any API process answers the same numbers, and a restart does not reset them. The GROUP BY
behind them runs at most once per ``cache_s`` (``SYNAPSEOPS_OBSERVABILITY_DEAD_LETTER_
GAUGES_CACHE_S``, a few seconds): ``/metrics`` is unauthenticated, and a scraper (or anybody)
polling it must not turn into one aggregate query over the table per request.

- ``synapseops_dead_letters_depth{pipeline}``: rows still ``dead`` (waiting for a person);
- ``synapseops_dead_letters_oldest_age_seconds{pipeline}``: age of the oldest of those;
- ``synapseops_dead_letters_stored{pipeline,status}``: every dead letter ever stored, by status;
- ``synapseops_replayed_records_total{pipeline}``: records sent back by a replay (this process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sinks.dead_letters.tables import DEAD, dead_letters
from synapseops.logging import get_logger

log = get_logger(__name__)

REPLAYED_RECORDS = Counter(
    "synapseops_replayed_records_total",
    "Dead letters sent back into their pipeline by a replay",
    ["pipeline"],
)


DEFAULT_CACHE_S = 5.0
Rows = list[tuple[str, str, int, datetime]]


class DeadLetterGauges(Collector):
    """Reads the table at most once per ``cache_s``; a scrape never fails because the
    database did (a failed read is not cached: the next scrape tries again)."""

    def __init__(self, cache_s: float = DEFAULT_CACHE_S) -> None:
        self.engine: sqlalchemy.Engine | None = None
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, sqlalchemy.Engine, Rows] | None = None

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "synapseops_dead_letters_depth",
            "Dead letters waiting (status dead)",
            labels=["pipeline"],
        )
        oldest = GaugeMetricFamily(
            "synapseops_dead_letters_oldest_age_seconds",
            "Age of the oldest dead letter still waiting",
            labels=["pipeline"],
        )
        stored = GaugeMetricFamily(
            "synapseops_dead_letters_stored",
            "Dead letters stored, by pipeline and status (dead, replayed, discarded)",
            labels=["pipeline", "status"],
        )
        for pipeline, status, count, first_dead in self._rows():
            stored.add_metric([pipeline, status], count)
            if status == DEAD:
                depth.add_metric([pipeline], count)
                oldest.add_metric([pipeline], max(0.0, time.time() - first_dead.timestamp()))
        yield depth
        yield oldest
        yield stored

    def _rows(self) -> Rows:
        engine = self.engine
        if engine is None:
            return []
        # One reader at a time: concurrent scrapes share the query in flight.
        with self._lock:
            cached = self._cached
            if (
                cached is not None
                and cached[1] is engine
                and time.monotonic() - cached[0] < self.cache_s
            ):
                return cached[2]
            rows = self._read(engine)
            if rows is not None:
                self._cached = (time.monotonic(), engine, rows)
            return rows or []

    @staticmethod
    def _read(engine: sqlalchemy.Engine) -> Rows | None:
        statement = select(
            dead_letters.c.pipeline,
            dead_letters.c.status,
            func.count(),
            func.min(dead_letters.c.dead_at),
        ).group_by(dead_letters.c.pipeline, dead_letters.c.status)
        try:
            with engine.connect() as conn:
                return [
                    (str(pipeline), str(status), int(count), first)
                    for pipeline, status, count, first in conn.execute(statement)
                ]
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning("dead-letter gauges unavailable: database error", exc_info=True)
            return None
