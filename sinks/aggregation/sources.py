"""DataSources: how data comes in (``poll``, ``stream``, ``bulk``), its logic and schedule.

A stream source gets an ingest token when it is created (shown once; only its SHA-256 is
stored): OTLP exporters send it as ``Authorization: Bearer <token>`` and the API knows the
source from it. Errors: :class:`RecordNotFound` (404), :class:`RecordConflict` (a name taken,
409), the rest through :func:`sinks.db.database_errors`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from sinks.aggregation.tables import sources
from sinks.db import database_errors
from synapseops.errors import RecordConflict, RecordNotFound, SchemaInvalid

TOKEN_PREFIX = "sosrc_"
PUBLIC = [column for column in sources.columns if column.name not in ("token_hash", "cursor")]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _public(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    values.pop("token_hash", None)
    return values


def create_source(
    engine: sqlalchemy.Engine, values: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """The new source and, for a stream source, its ingest token (shown once)."""
    token = new_token() if values.get("kind") == "stream" else None
    row = {**values, "id": uuid.uuid4(), "token_hash": token_hash(token) if token else None}
    try:
        with database_errors("creating a data source"), engine.begin() as conn:
            created = conn.execute(sources.insert().values(row).returning(*PUBLIC)).one()
    except SchemaInvalid as exc:
        if isinstance(exc.__cause__, sa_exc.IntegrityError):
            raise RecordConflict(f"a data source named {values.get('name')!r} exists") from exc
        raise
    return _public(created), token


def list_sources(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    with database_errors("listing data sources"), engine.connect() as conn:
        return [_public(row) for row in conn.execute(select(*PUBLIC).order_by(sources.c.name))]


def get_source(engine: sqlalchemy.Engine, name: str) -> dict[str, Any]:
    with database_errors("reading a data source"), engine.connect() as conn:
        row = conn.execute(select(*PUBLIC).where(sources.c.name == name)).one_or_none()
    if row is None:
        raise RecordNotFound(f"no data source named {name!r}")
    return _public(row)


def update_source(
    engine: sqlalchemy.Engine, name: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    if not values:
        return get_source(engine, name)
    statement = (
        sources.update()
        .where(sources.c.name == name)
        .values(**values, updated_at=func.now())
        .returning(*PUBLIC)
    )
    with database_errors("updating a data source"), engine.begin() as conn:
        row = conn.execute(statement).one_or_none()
    if row is None:
        raise RecordNotFound(f"no data source named {name!r}")
    return _public(row)


def delete_source(engine: sqlalchemy.Engine, name: str) -> None:
    with database_errors("deleting a data source"), engine.begin() as conn:
        deleted = conn.execute(sources.delete().where(sources.c.name == name)).rowcount
    if not deleted:
        raise RecordNotFound(f"no data source named {name!r}")


def source_by_token(engine: sqlalchemy.Engine, token: str) -> dict[str, Any] | None:
    """The stream source whose ingest token this is (compared by digest), else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with database_errors("reading a data source by token"), engine.connect() as conn:
        row = conn.execute(
            select(*PUBLIC).where(sources.c.token_hash == token_hash(token))
        ).one_or_none()
    return None if row is None else _public(row)


def polled_sources(engine: sqlalchemy.Engine, logic: str) -> list[dict[str, Any]]:
    """The poll sources of ``logic`` that are not paused, with their cursors."""
    statement = select(*PUBLIC, sources.c.cursor).where(
        sources.c.kind == "poll", sources.c.logic == logic, sources.c.paused.is_(False)
    )
    with database_errors("listing polled sources"), engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(statement.order_by(sources.c.name))]


def save_cursor(engine: sqlalchemy.Engine, source_id: Any, cursor: Mapping[str, Any]) -> None:
    """Store a polled source's cursor (not a configuration change: updated_at stays)."""
    statement = sources.update().where(sources.c.id == source_id).values(cursor=dict(cursor))
    with database_errors("saving a poll cursor"), engine.begin() as conn:
        conn.execute(statement)
