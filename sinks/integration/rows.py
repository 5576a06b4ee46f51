"""Rows of the API Integration tables as plain dicts: insert, read, list, update, delete.

Blocking SQLAlchemy calls. :class:`RecordNotFound` when no row has the id; a unique name taken,
a row still referenced or a referenced row missing → :class:`RecordConflict` (:func:`writing`);
every other database failure → the error tree via :func:`sinks.db.database_errors`. Rows never
carry a credential's ``ciphertext``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import Table, func, select
from sqlalchemy import exc as sa_exc

from sinks.db import database_errors
from synapseops.errors import RecordConflict, RecordNotFound, SynapseOpsError


@contextmanager
def writing(what: str) -> Iterator[None]:
    try:
        with database_errors(what):
            yield
    except SynapseOpsError as exc:
        cause = exc.__cause__
        if isinstance(cause, sa_exc.IntegrityError):
            raise RecordConflict(f"{what}: {_constraint_message(cause)}") from cause
        raise


def _constraint_message(exc: sa_exc.IntegrityError) -> str:
    diag = getattr(exc.orig, "diag", None)
    detail = getattr(diag, "message_detail", None) or ""
    primary = getattr(diag, "message_primary", None) or str(exc.orig).splitlines()[0]
    # DETAIL names the key, e.g. 'Key (name)=(shopify) already exists.' — no secrets there:
    # credentials are unique by name only and the ciphertext is never part of a key.
    return f"{primary}. {detail}".strip() if detail else primary


# ---- generic rows --------------------------------------------------------------------------


def public_columns(table: Table) -> list[Any]:
    return [column for column in table.c if column.name != "ciphertext"]


def insert_row(
    engine: sqlalchemy.Engine, table: Table, values: Mapping[str, Any]
) -> dict[str, Any]:
    statement = sqlalchemy.insert(table).values(dict(values)).returning(*public_columns(table))
    with writing(f"create {table.name}"), engine.begin() as conn:
        return dict(conn.execute(statement).mappings().one())


def get_row(engine: sqlalchemy.Engine, table: Table, row_id: int) -> dict[str, Any]:
    statement = select(*public_columns(table)).where(table.c.id == row_id)
    with database_errors(f"read {table.name}"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")
    return dict(row)


def list_rows(
    engine: sqlalchemy.Engine, table: Table, *where: sqlalchemy.ColumnElement[bool]
) -> list[dict[str, Any]]:
    statement = select(*public_columns(table)).where(*where).order_by(table.c.id)
    with database_errors(f"list {table.name}"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def update_row(
    engine: sqlalchemy.Engine, table: Table, row_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    values = dict(changes)
    if "updated_at" in table.c:
        values["updated_at"] = func.now()
    if not changes:
        return get_row(engine, table, row_id)
    statement = (
        sqlalchemy.update(table)
        .where(table.c.id == row_id)
        .values(values)
        .returning(*public_columns(table))
    )
    with writing(f"update {table.name}"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")
    return dict(row)


def delete_row(engine: sqlalchemy.Engine, table: Table, row_id: int) -> None:
    statement = sqlalchemy.delete(table).where(table.c.id == row_id).returning(table.c.id)
    with writing(f"delete {table.name}"), engine.begin() as conn:
        deleted = conn.execute(statement).first()
    if deleted is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")
