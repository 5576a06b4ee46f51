"""The one place a SQLAlchemy engine is built for the product, and the one ``MetaData``.

Every process builds one engine at its edge (``make_engine(settings)``) and passes it down.

No ``pool_pre_ping``: it costs a round trip on every checkout, i.e. on every transaction of
every batch. A connection that died under us (PostgreSQL restarted, a failover) fails its
next statement instead — a disconnect, which :func:`database_errors` calls
:class:`DatabaseUnavailable` (the road retries it) and on which SQLAlchemy invalidates the
whole pool, so every other connection opened before it is replaced at its next checkout: one
failed statement per restart, not one per pooled connection. ``pool_recycle`` replaces a
connection an idle-timeout in between (a proxy, a firewall) may have cut silently.

Every service's tables module (``sinks/<service>/tables.py``) hangs its SQLAlchemy Core tables
off :data:`metadata`. The migrations are the truth for the schema; the tables let code build
statements without spelling column names as strings, and a test compares the two
(:func:`sinks.migrate.declared_metadata`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from sqlalchemy import MetaData, Table, create_engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.base import Sink
from synapseops.errors import DatabaseUnavailable, SchemaInvalid
from synapseops.settings import Settings

metadata = MetaData()

POOL_RECYCLE_S = 1800


def make_engine(settings: Settings) -> sqlalchemy.Engine:
    return create_engine(
        settings.database_url,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=settings.database.pool_size,
        # A worker's executor threads plus the API's requests may briefly exceed the pool.
        max_overflow=settings.database.pool_size,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


@contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Translate SQLAlchemy/psycopg2 exceptions into the platform's error tree.

    - connection trouble, timeouts, serialisation conflicts, a missing table (migrations not
      applied yet) → :class:`DatabaseUnavailable`: the same statement may work later;
    - data PostgreSQL refuses for good (bad encoding, out of range, a constraint other than
      the one we upsert on) → :class:`SchemaInvalid`: retrying cannot help.
    """
    try:
        yield
    except (sa_exc.DataError, sa_exc.IntegrityError) as exc:
        raise SchemaInvalid(f"{what}: the database refused the data: {_reason(exc)}") from exc
    except sa_exc.DBAPIError as exc:
        # OperationalError, InterfaceError, InternalError, ProgrammingError (undefined table
        # while migrations are pending) and disconnects: all "later may work".
        raise DatabaseUnavailable(f"{what}: {type(exc).__name__}: {_reason(exc)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


def _reason(exc: sa_exc.DBAPIError) -> str:
    # The driver's own message, first line only: the full text repeats the statement and its
    # parameters, which may hold payload data that must not land in logs.
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)


class TableSink(Sink[Mapping[str, Any]]):
    """Insert rows into one table; rows clashing on ``conflict`` are absorbed, not errors.

    ``write`` runs in one transaction and returns how many rows were new, so a caller writing
    one row learns whether it was a duplicate.
    """

    def __init__(self, engine: sqlalchemy.Engine, table: Table, conflict: Sequence[str]) -> None:
        super().__init__()
        self.engine = engine
        self.table = table
        self.conflict = tuple(conflict)
        self.name = f"postgres:{table.name}"

    def setup(self) -> None:
        with database_errors(f"{self.name} setup"), self.engine.connect() as conn:
            conn.execute(select(self.table.c.id).limit(0))

    def write(self, batch: Sequence[Mapping[str, Any]]) -> int:
        statement = (
            pg_insert(self.table)
            .values([dict(row) for row in batch])
            .on_conflict_do_nothing(index_elements=list(self.conflict))
            .returning(self.table.c.id)
        )
        with database_errors(self.name), self.engine.begin() as conn:
            return len(conn.execute(statement).fetchall())
