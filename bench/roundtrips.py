"""PostgreSQL round trips of an engine, counted with SQLAlchemy's event hooks.

One round trip per statement sent (``before_cursor_execute``: an ``executemany`` sent as one
multi-row statement counts once), per ``BEGIN`` (psycopg2 sends it on its own before a
transaction's first statement), per ``COMMIT``/``ROLLBACK`` (neither in autocommit), per
rollback of a connection given back to the pool in a transaction (the pool's reset), and per
``pool_pre_ping`` on checkout. ``SAVEPOINT`` statements are counted apart too. A model of the
wire, not a capture of it: it counts what SQLAlchemy asks the driver to do, which is what a
change to our code can change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import event


@dataclass
class RoundTrips:
    statements: int = 0
    begins: int = 0
    ends: int = 0
    pings: int = 0
    savepoints: int = 0
    # Statements SQLAlchemy built from Core constructs (the rest were driver SQL): a compile,
    # or a cache lookup, each.
    core: int = 0

    @property
    def total(self) -> int:
        return self.statements + self.begins + self.ends + self.pings

    def reset(self) -> None:
        self.statements = self.begins = self.ends = self.pings = self.savepoints = self.core = 0


def count_round_trips(engine: sqlalchemy.Engine) -> RoundTrips:
    """A live counter of ``engine``'s round trips (hooks stay for the engine's life)."""
    counted = RoundTrips()
    pre_ping = bool(getattr(engine.pool, "_pre_ping", False))

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        counted.statements += 1
        if context is not None and context.compiled is not None:
            counted.core += 1

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if not _autocommit(conn):
            counted.begins += 1

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        if not _autocommit(conn):
            counted.ends += 1

    @event.listens_for(engine, "savepoint")
    def _savepoint(conn: Any, name: str) -> None:
        counted.savepoints += 1
        counted.statements += 1  # SAVEPOINT, and its RELEASE or ROLLBACK TO below

    @event.listens_for(engine, "release_savepoint")
    def _release(conn: Any, name: str, context: Any) -> None:
        counted.statements += 1

    @event.listens_for(engine, "rollback_savepoint")
    def _rollback_to(conn: Any, name: str, context: Any) -> None:
        counted.statements += 1

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if pre_ping:
            counted.pings += 1

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: Any, *args: Any) -> None:
        # psycopg2 sends ROLLBACK only inside a transaction (status 0: idle, nothing to end).
        status = getattr(dbapi_connection, "get_transaction_status", lambda: 0)()
        if status != 0:
            counted.ends += 1

    return counted


def _autocommit(conn: sqlalchemy.Connection) -> bool:
    """In autocommit the driver sends no ``BEGIN``/``COMMIT``: SQLAlchemy's events still fire."""
    return bool(getattr(conn.connection.dbapi_connection, "autocommit", False))
