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
Inside :func:`folded_transaction` a script can carry the transaction's ``BEGIN`` (the first)
and ``COMMIT`` (the last): a transaction of two scripts is two round trips, not four.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import sqlalchemy
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import Connection, CursorResult


def rows_of(template: str, rows: Sequence[Sequence[Any]]) -> tuple[str, tuple[Any, ...]]:
    """``rows`` as ``VALUES`` text (``template`` per row, e.g. ``(%s, %s::int)``) and the flat
    parameter tuple that goes with it."""
    return ", ".join([template] * len(rows)), tuple(chain.from_iterable(rows))


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

    def run(
        self, conn: Connection, *, begin: bool = False, commit: bool = False
    ) -> CursorResult[Any] | None:
        """Send every statement at once, after a ``BEGIN`` (``begin``) and before a ``COMMIT``
        (``commit``) when asked (only inside :func:`folded_transaction`); the last
        statement's result (None: nothing was sent)."""
        statements = (["BEGIN"] if begin else []) + self.statements + (["COMMIT"] if commit else [])
        if not statements:
            return None
        return conn.exec_driver_sql(";\n".join(statements), tuple(self.params))


@contextmanager
def folded_transaction(engine: sqlalchemy.Engine) -> Iterator[Connection]:
    """A connection for one transaction whose ``BEGIN`` rides on its first :class:`Script`
    (``run(begin=True)``) and whose ``COMMIT`` rides on its last (``run(commit=True)``).

    The connection runs in autocommit, so psycopg2 sends no ``BEGIN`` or ``COMMIT`` of its own
    (each a round trip). Whatever happens, no connection goes back to the pool inside a
    transaction: on an error this sends ``ROLLBACK`` (a connection that cannot even do that is
    invalidated, i.e. closed), and a block that ends without its ``COMMIT`` is rolled back and
    is an error. A ``kill -9`` closes the socket and PostgreSQL rolls the transaction back.
    """
    with engine.connect() as base:
        conn = base.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield conn
        except BaseException:
            _roll_back(conn)
            raise
        if _server_status(conn) != TRANSACTION_STATUS_IDLE:
            _roll_back(conn)
            raise RuntimeError("a folded transaction ended without its COMMIT; rolled back")


def _server_status(conn: Connection) -> int:
    """libpq's view of the server's transaction status (it tracks it in autocommit too)."""
    status: int = conn.connection.dbapi_connection.info.transaction_status  # type: ignore[union-attr]
    return status


def _roll_back(conn: Connection) -> None:
    try:
        conn.exec_driver_sql("ROLLBACK")
    except Exception:  # noqa: BLE001 - the connection is unusable: drop it, keep the first error
        conn.invalidate()
