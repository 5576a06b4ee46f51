"""Read side of the dead-letter store: what waits for a person, per pipeline (read-only).

- :func:`dead_letters_by_pipeline`: per pipeline, how many dead letters wait (status
  ``dead``), the oldest and newest of them, and the error classes among them (the console's
  home page, ``/api/v1/overview``);
- :func:`waiting`: how many wait in one pipeline (a service's card on the home page).

Blocking psycopg2 I/O: call from a thread. Errors through :func:`sinks.db.database_errors`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.dead_letters.tables import DEAD, dead_letters


def dead_letters_by_pipeline(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    """``[{pipeline, waiting, oldest_dead_at, newest_dead_at, error_classes}]``, most first."""
    c = dead_letters.c
    statement = (
        select(
            c.pipeline,
            func.count().label("waiting"),
            func.min(c.dead_at).label("oldest_dead_at"),
            func.max(c.dead_at).label("newest_dead_at"),
            func.array_agg(func.distinct(func.coalesce(c.error_class, "unknown"))).label(
                "error_classes"
            ),
        )
        .where(c.status == DEAD)
        .group_by(c.pipeline)
        .order_by(func.count().desc(), c.pipeline)
    )
    with database_errors("dead letters by pipeline"), engine.connect() as conn:
        return [
            {**row, "waiting": int(row["waiting"]), "error_classes": sorted(row["error_classes"])}
            for row in conn.execute(statement).mappings()
        ]


def waiting(engine: sqlalchemy.Engine, pipeline: str) -> int:
    """How many of ``pipeline``'s dead letters wait (status ``dead``)."""
    c = dead_letters.c
    statement = select(func.count()).where(c.status == DEAD, c.pipeline == pipeline)
    with database_errors("dead letters waiting"), engine.connect() as conn:
        return int(conn.execute(statement).scalar_one())
