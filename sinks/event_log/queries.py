"""Reading ``inbound_events`` for ``/api/v1/events``: newest first, by source, one by id.

Blocking (SQLAlchemy + psycopg2): the API runs these from plain ``def`` routes (threadpool).
Database trouble is :class:`~synapseops.errors.DatabaseUnavailable` (the API answers 503).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy

from sinks.db import database_errors
from sinks.event_log.tables import inbound_events


def list_events(
    engine: sqlalchemy.Engine, *, source: str | None, limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows, newest first; only ``source``'s, only older than ``before_id``."""
    statement = sqlalchemy.select(inbound_events).order_by(inbound_events.c.id.desc())
    if source is not None:
        statement = statement.where(inbound_events.c.source == source)
    if before_id is not None:
        statement = statement.where(inbound_events.c.id < before_id)
    return _rows(engine, statement.limit(limit))


def get_event(engine: sqlalchemy.Engine, row_id: int) -> dict[str, Any] | None:
    rows = _rows(engine, sqlalchemy.select(inbound_events).where(inbound_events.c.id == row_id))
    return rows[0] if rows else None


def _rows(engine: sqlalchemy.Engine, statement: sqlalchemy.Select[Any]) -> list[dict[str, Any]]:
    with database_errors("read inbound events"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]
