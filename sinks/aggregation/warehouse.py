"""Rows into ``warehouse.events`` with COPY, and the loader's offsets in the same transaction.

:meth:`Warehouse.load` is one transaction: COPY the batch straight into the table (when a
row is there already — a copy the pipeline sent twice — the batch goes again through a
temporary staging table and ``INSERT … SELECT … ON CONFLICT (source, id) DO NOTHING``, since
COPY alone cannot skip a row), upsert the next offset of every partition the batch
came from (never moving one backwards: a loader that lost its partitions while writing may
still commit), commit. Either all of it is durable or none of it: after a crash the loader
reads its offsets back (:meth:`Warehouse.offsets`) and reads from there, so every event is
in the table exactly once.

The rows come encoded in PostgreSQL's binary COPY format (:mod:`sinks.aggregation.copy_format`),
one buffer per batch. A row PostgreSQL refuses for its data (JSON that is not JSON, a ``\\u0000``
jsonb cannot hold, a NUL in text, a time out of range) does not fail the batch: COPY names the
row it stopped at, so the rows before it are copied again, that row is set aside with
PostgreSQL's reason (:attr:`Loaded.rejected`, the caller logs it) and the COPY goes on after
it. The common path checks nothing in Python; a bad row costs one more COPY of the rows
around it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from psycopg2 import DataError
from psycopg2.errors import UniqueViolation
from psycopg2.extras import execute_values
from sqlalchemy import exc as sa_exc

from sinks.aggregation.copy_format import CopyRows
from sinks.aggregation.tables import events
from sinks.db import database_errors

# The columns COPY fills, in order (loaded_at takes its default).
COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if c.name != "loaded_at")
_QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)
STAGE = "loader_stage"
# Adding a column waits this long at most for its lock (then the batch is tried again).
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class _Statements:
    """The COPY statements for the base columns and ``extra`` ones (newer schema fields)."""

    extra: tuple[str, ...]

    @property
    def quoted(self) -> str:
        return ", ".join(f'"{name}"' for name in (*COLUMNS, *self.extra))

    @property
    def stage(self) -> str:
        # A temporary table lives as long as its pooled connection: one per column count,
        # so a stage made before a column was added is never used after.
        return f"{STAGE}_{len(self.extra)}"

    @property
    def create_stage(self) -> str:
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} "
            "(LIKE warehouse.events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )

    @property
    def copy(self) -> str:
        return f"COPY {self.stage} ({self.quoted}) FROM STDIN (FORMAT binary)"

    @property
    def direct(self) -> str:
        return f"COPY warehouse.events ({self.quoted}) FROM STDIN (FORMAT binary)"

    @property
    def insert(self) -> str:
        return (
            f"INSERT INTO warehouse.events ({self.quoted}) SELECT {self.quoted} "
            f"FROM {self.stage} ON CONFLICT (source, id) DO NOTHING"
        )


_OFFSETS = (
    "INSERT INTO warehouse.loader_offsets (group_id, topic, partition, next_offset) "
    "VALUES %s ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
    "next_offset = GREATEST(loader_offsets.next_offset, EXCLUDED.next_offset), "
    "updated_at = now()"
)
# PostgreSQL's context line of a COPY error: "COPY events, line 3, column body: ...".
_COPY_LINE = re.compile(r"COPY \S+, line (\d+)")
# psycopg2 hands COPY the buffer in pieces this large (its default is 8 KiB).
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Loaded:
    inserted: int
    skipped: int
    # (index of the row in the batch, PostgreSQL's reason) per row refused for its data.
    rejected: tuple[tuple[int, str], ...] = field(default=())


class Warehouse:
    def __init__(self, engine: sqlalchemy.Engine, group_id: str) -> None:
        self.engine = engine
        self.group_id = group_id
        self._columns: set[str] = set()  # extra columns known to exist

    @staticmethod
    def _copy(raw: Any, rows: CopyRows, sql: _Statements) -> tuple[int, list[tuple[int, str]]]:
        """COPY straight into the table, the transaction's first statement and no savepoint:
        the common path, as fast as a raw COPY and three round trips fewer. When PostgreSQL
        refuses it — a row there already (a copy the pipeline sent twice, at least once on
        the wire) or a row's data — the transaction is rolled back and the batch goes the
        careful way (:meth:`_copy_carefully`). How many rows were inserted, and the rows
        refused."""
        try:
            _copy_once(raw.cursor(), sql.direct, rows, 0, len(rows))
        except (UniqueViolation, DataError):
            raw.rollback()
            return Warehouse._copy_carefully(raw.cursor(), rows, sql)
        return len(rows), []

    @staticmethod
    def _copy_carefully(
        cursor: Any, rows: CopyRows, sql: _Statements
    ) -> tuple[int, list[tuple[int, str]]]:
        """COPY setting refused rows aside; if a row is there already, the whole batch again
        through the staging table, skipping what exists."""
        cursor.execute("SAVEPOINT direct_copy")
        try:
            rejected = _copy_rejecting(cursor, sql.direct, rows)
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT direct_copy")
            cursor.execute(sql.create_stage)
            rejected = _copy_rejecting(cursor, sql.copy, rows)
            cursor.execute(sql.insert)
            return int(cursor.rowcount), rejected
        cursor.execute("RELEASE SAVEPOINT direct_copy")
        return len(rows) - len(rejected), rejected

    def add_columns(self, columns: Sequence[tuple[str, str]]) -> None:
        """``ADD COLUMN IF NOT EXISTS`` each ``(name, SQL type)`` not added by this loader yet,
        in a short transaction of its own: nullable, no default, so PostgreSQL rewrites
        nothing and readers wait at most for the catalogue change (blocking)."""
        missing = [(name, kind) for name, kind in columns if name not in self._columns]
        if not missing:
            return
        with database_errors("adding warehouse columns"), self.engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            for name, kind in missing:
                conn.execute(
                    sqlalchemy.text(
                        f'ALTER TABLE warehouse.events ADD COLUMN IF NOT EXISTS "{name}" {kind}'
                    )
                )
        self._columns.update(name for name, _ in missing)

    def offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The next offset stored per partition (absent: nothing loaded from it yet)."""
        wanted = list(partitions)
        statement = sqlalchemy.text(
            "SELECT partition, next_offset FROM warehouse.loader_offsets "
            "WHERE group_id = :group AND topic = :topic AND partition = ANY(:partitions)"
        )
        with database_errors("reading loader offsets"), self.engine.connect() as conn:
            rows = conn.execute(
                statement, {"group": self.group_id, "topic": topic, "partitions": wanted}
            )
            return {int(row.partition): int(row.next_offset) for row in rows}

    def load(
        self,
        rows: CopyRows | Sequence[bytes],
        next_offsets: Mapping[tuple[str, int], int],
        extra: Sequence[tuple[str, str]] = (),
    ) -> Loaded:
        """Write ``rows`` (binary COPY rows, see module doc) and the offsets, atomically
        (blocking). Raises the error tree; a row refused for its data is not an error.

        ``extra``: ``(name, SQL type)`` of columns beyond the base ones that the rows carry
        after them; each is added first if the table lacks it (:meth:`add_columns`)."""
        batch = rows if isinstance(rows, CopyRows) else CopyRows.of(rows)
        self.add_columns(extra)
        sql = _Statements(tuple(name for name, _ in extra))
        try:
            raw = self.engine.raw_connection()
        except sa_exc.SQLAlchemyError as exc:
            with database_errors("connecting for a warehouse load"):
                raise exc
        try:
            with database_errors("loading warehouse rows"):
                try:
                    inserted, rejected = self._copy(raw, batch, sql)
                    if next_offsets:  # one statement for every partition: one round trip
                        execute_values(
                            raw.cursor(),
                            _OFFSETS,
                            [(self.group_id, t, p, o) for (t, p), o in next_offsets.items()],
                        )
                    raw.commit()
                except Exception as exc:
                    raw.rollback()
                    # psycopg2's errors are DBAPI errors; hand them to the one translator.
                    raise sa_exc.DBAPIError.instance(sql.direct, None, exc, Exception) from exc
        finally:
            raw.close()
        skipped = len(batch) - len(rejected) - inserted
        return Loaded(inserted=inserted, skipped=skipped, rejected=tuple(rejected))


def _copy_once(cursor: Any, statement: str, rows: CopyRows, start: int, stop: int) -> None:
    cursor.copy_expert(statement, io.BytesIO(rows.copy_data(start, stop)), size=_CHUNK)


def _copy_rejecting(cursor: Any, statement: str, rows: CopyRows) -> list[tuple[int, str]]:
    """COPY ``rows``, setting aside each one PostgreSQL refuses for its data (module doc);
    ``(index, reason)`` of those. Any other error (a duplicate key included) propagates."""
    rejected: list[tuple[int, str]] = []
    start = 0
    while start < len(rows):
        cursor.execute("SAVEPOINT copy_rows")
        try:
            _copy_once(cursor, statement, rows, start, len(rows))
        except DataError as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT copy_rows")
            found = _COPY_LINE.search(getattr(exc.diag, "context", None) or "")
            line = int(found.group(1)) if found else 0
            if not 1 <= line <= len(rows) - start:
                raise  # not one row's data: the batch fails and is read again
            bad = start + line - 1
            if bad > start:  # the rows before it went in before COPY stopped: again
                _copy_once(cursor, statement, rows, start, bad)
            reason = getattr(exc.diag, "message_primary", None) or str(exc).strip()
            rejected.append((bad, reason))
            start = bad + 1
            continue
        cursor.execute("RELEASE SAVEPOINT copy_rows")
        break
    return rejected
