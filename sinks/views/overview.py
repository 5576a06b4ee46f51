"""Read-side queries across services for the console's home page and ``/api/v1/overview``.

- :func:`recent_outcomes`: per pipeline, what its records ended as over a recent window
  (runs by status, settlements by state, stored generic events).

Blocking psycopg2 I/O: call from a thread. Errors through :func:`sinks.db.database_errors`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.event_log.tables import inbound_events
from sinks.integration.tables import runs
from sinks.payments.tables import settlements
from topics.registry import EVENT_LOG, INTEGRATION_DELIVERY, PAYMENT_SETTLEMENT

RECENT = timedelta(hours=1)


def recent_outcomes(
    engine: sqlalchemy.Engine, *, window: timedelta = RECENT, now: datetime | None = None
) -> dict[str, dict[str, int]]:
    """``{pipeline: {outcome: count}}`` of the records that started within ``window``."""
    since = (now or datetime.now(UTC)) - window
    queries = {
        INTEGRATION_DELIVERY: select(runs.c.status, func.count())
        .where(runs.c.started_at >= since)
        .group_by(runs.c.status),
        PAYMENT_SETTLEMENT: select(settlements.c.state, func.count())
        .where(settlements.c.updated_at >= since)
        .group_by(settlements.c.state),
        EVENT_LOG: select(sqlalchemy.literal("stored"), func.count()).where(
            inbound_events.c.received_at >= since
        ),
    }
    result: dict[str, dict[str, int]] = {}
    with database_errors("recent outcomes"), engine.connect() as conn:
        for pipeline, statement in queries.items():
            counts = {str(name): int(count) for name, count in conn.execute(statement)}
            result[pipeline] = {name: count for name, count in counts.items() if count}
    return result
