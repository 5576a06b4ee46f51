"""Run health of API Integration for the console's dashboard: success per flow and hour.

Blocking psycopg2 I/O: call from a thread. Errors through :func:`sinks.db.database_errors`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.integration.tables import runs


def hourly_runs(
    engine: sqlalchemy.Engine, *, hours: int = 24, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per flow and UTC hour of the last ``hours``: ``{flow_id, hour, succeeded, finished}``
    (finished: succeeded + failed + dead, the denominator of a success rate)."""
    since = (now or datetime.now(UTC)) - timedelta(hours=hours)
    hour = func.date_trunc("hour", func.timezone("UTC", runs.c.started_at)).label("hour")
    finished = runs.c.status.in_(("succeeded", "failed", "dead"))
    statement = (
        select(
            runs.c.flow_id,
            hour,
            func.count().filter(runs.c.status == "succeeded").label("succeeded"),
            func.count().filter(finished).label("finished"),
        )
        .where(runs.c.started_at >= since)
        .group_by(runs.c.flow_id, hour)
        .order_by(hour, runs.c.flow_id)
    )
    with database_errors("hourly runs"), engine.connect() as conn:
        return [
            {**row, "succeeded": int(row["succeeded"]), "finished": int(row["finished"]),
             "hour": row["hour"].replace(tzinfo=UTC)}
            for row in conn.execute(statement).mappings()
        ]  # fmt: skip
