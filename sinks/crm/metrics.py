"""The CRM conflicts still open, as gauges read from PostgreSQL at scrape time (API /metrics).

Counters of a worker (``synapseops_crm_conflicts_opened_total``) cannot say how many are open
now: a person resolves them through the API, any worker may have opened them, and a restart
resets a counter. The table knows, so the API process reads it — at most once per ``cache_s``
(``/metrics`` is unauthenticated: a scraper polling it must not become one aggregate query
per request). A failed read is not cached and never fails the scrape.

- ``synapseops_crm_conflicts_open{mapping}``: fields held for a person (``manual`` policy),
  0 for a mapping holding none;
- ``synapseops_crm_conflicts_oldest_open_age_seconds{mapping}``: how long the oldest has waited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from sinks.crm.tables import crm_conflicts, crm_mappings
from synapseops.logging import get_logger

log = get_logger(__name__)
Rows = list[tuple[int, int, datetime | None]]


class CrmConflictGauges(Collector):
    def __init__(self, cache_s: float = 5.0) -> None:
        self.engine: sqlalchemy.Engine | None = None
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, sqlalchemy.Engine, Rows] | None = None

    def collect(self) -> Iterator[Metric]:
        open_now = GaugeMetricFamily(
            "synapseops_crm_conflicts_open",
            "CRM fields held for a person (manual policy), by mapping",
            labels=["mapping"],
        )
        oldest = GaugeMetricFamily(
            "synapseops_crm_conflicts_oldest_open_age_seconds",
            "Age of the oldest CRM conflict still open, by mapping",
            labels=["mapping"],
        )
        for mapping_id, count, first in self._rows():
            open_now.add_metric([str(mapping_id)], count)
            if first is not None:
                oldest.add_metric([str(mapping_id)], max(0.0, time.time() - first.timestamp()))
        yield open_now
        yield oldest

    def _rows(self) -> Rows:
        engine = self.engine
        if engine is None:
            return []
        with self._lock:  # concurrent scrapes share the one read in flight
            cached = self._cached
            if cached and cached[1] is engine and time.monotonic() - cached[0] < self.cache_s:
                return cached[2]
            c = crm_conflicts.c
            statement = (  # every mapping, at 0 when nothing is held
                select(crm_mappings.c.id, func.count(c.id), func.min(c.opened_at))
                .select_from(
                    crm_mappings.outerjoin(
                        crm_conflicts, (c.mapping_id == crm_mappings.c.id) & (c.status == "open")
                    )
                )
                .group_by(crm_mappings.c.id)
            )
            try:
                with engine.connect() as conn:
                    rows = [(int(m), int(n), first) for m, n, first in conn.execute(statement)]
            except sqlalchemy.exc.SQLAlchemyError:
                log.warning("CRM conflict gauges unavailable: database error", exc_info=True)
                return []
            self._cached = (time.monotonic(), engine, rows)
            return rows
