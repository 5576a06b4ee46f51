"""Multi-row statements as driver SQL: plain PostgreSQL text with ``%s`` placeholders, sent by
``Connection.exec_driver_sql`` (first written for the Runs, :mod:`sinks.integration.run_sql`).

Why: a Core ``VALUES`` or ``IN`` whose size is the batch's cannot be cached, so SQLAlchemy
compiles it and builds a bind per value on every batch, and an ``executemany`` of an UPDATE (or
an upsert outside ``insertmanyvalues``) goes to psycopg2 as one round trip per row. Driver text
is quoted by psycopg2 in C and goes out as one message; SQLAlchemy still owns the connection
(pool, events, error wrapping, invalidation on a disconnect).

:class:`Script` goes one step further: several statements joined by ``;`` go to PostgreSQL in
one simple-query message (psycopg2 interpolates the parameters client-side), so a transaction's
writes cost one round trip whatever their number. Only the last statement's rows come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, CursorResult


def rows_of(template: str, rows: Sequence[Sequence[Any]]) -> tuple[str, tuple[Any, ...]]:
    """``rows`` as ``VALUES`` text (``template`` per row, e.g. ``(%s, %s::int)``) and the flat
    parameter tuple that goes with it."""
    return ", ".join([template] * len(rows)), tuple(value for row in rows for value in row)


@dataclass
class Script:
    """Statements sent together, in order, as one round trip (:meth:`run`)."""

    statements: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, statement: str, params: Sequence[Any] = ()) -> None:
        if statement.count("%s") != len(params):
            raise ValueError(f"{statement.count('%s')} placeholders for {len(params)} parameters")
        self.statements.append(statement.strip())
        self.params.extend(params)

    def add_rows(self, statement: str, template: str, rows: Sequence[Sequence[Any]]) -> None:
        """``statement`` with its ``{rows}`` filled by ``rows`` (nothing added without rows)."""
        if rows:
            text, params = rows_of(template, rows)
            self.add(statement.format(rows=text), params)

    def run(self, conn: Connection) -> CursorResult[Any] | None:
        """Send every statement at once; the last one's result (None: nothing to send)."""
        if not self.statements:
            return None
        return conn.exec_driver_sql(";\n".join(self.statements), tuple(self.params))
