"""Rows into ``warehouse.events`` with COPY, and the loader's offsets in the same transaction.

:meth:`Warehouse.load` is one transaction: COPY the batch straight into the table (when a
row is there already — a copy the pipeline sent twice — the batch goes again through a
temporary staging table and ``INSERT … SELECT … ON CONFLICT (source, id) DO NOTHING``, since
COPY alone cannot skip a row), upsert the next offset of every partition the batch
came from (never moving one backwards: a loader that lost its partitions while writing may
still commit), commit. Either all of it is durable or none of it: after a crash the loader
reads its offsets back (:meth:`Warehouse.offsets`) and reads from there, so every event is
in the table exactly once.

The rows are text in COPY's own format (:func:`copy_line`): tab-separated, ``\\N`` for null,
backslash escapes; arrays as PostgreSQL array literals; JSON as its text (jsonb parses it).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from psycopg2.errors import UniqueViolation
from sqlalchemy import exc as sa_exc

from sinks.aggregation.tables import events
from sinks.db import database_errors

# The columns COPY fills, in order (loaded_at takes its default).
COLUMNS: tuple[str, ...] = tuple(c.name for c in events.columns if c.name != "loaded_at")
_QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)
STAGE = "loader_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} "
    "(LIKE warehouse.events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {STAGE} ({_QUOTED}) FROM STDIN"
_DIRECT = f"COPY warehouse.events ({_QUOTED}) FROM STDIN"
_INSERT = (
    f"INSERT INTO warehouse.events ({_QUOTED}) SELECT {_QUOTED} FROM {STAGE} "
    "ON CONFLICT (source, id) DO NOTHING"
)
_OFFSETS = (
    "INSERT INTO warehouse.loader_offsets (group_id, topic, partition, next_offset) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT (group_id, topic, partition) DO UPDATE SET "
    "next_offset = GREATEST(loader_offsets.next_offset, EXCLUDED.next_offset), "
    "updated_at = now()"
)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, (list, tuple)):
        items = ",".join(
            '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value
        )
        return ("{" + items + "}").translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value).replace("\x00", "").translate(_ESCAPES)


def copy_line(row: Mapping[str, Any]) -> str:
    """One row in COPY text format, columns in :data:`COLUMNS` order."""
    return "\t".join(_field(row.get(name)) for name in COLUMNS) + "\n"


@dataclass(frozen=True)
class Loaded:
    inserted: int
    skipped: int


class Warehouse:
    def __init__(self, engine: sqlalchemy.Engine, group_id: str) -> None:
        self.engine = engine
        self.group_id = group_id

    @staticmethod
    def _copy(cursor: Any, buffer: io.StringIO, count: int) -> int:
        """COPY straight into the table; if a row is there already (a copy the pipeline sent
        twice, at least once on the wire), the whole batch again through the staging table,
        skipping what exists. The direct path is the common one and as fast as a raw COPY."""
        cursor.execute("SAVEPOINT direct_copy")
        try:
            cursor.copy_expert(_DIRECT, buffer)
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT direct_copy")
            buffer.seek(0)
            cursor.execute(_CREATE_STAGE)
            cursor.copy_expert(_COPY, buffer)
            cursor.execute(_INSERT)
            return int(cursor.rowcount)
        cursor.execute("RELEASE SAVEPOINT direct_copy")
        return count

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
        self, rows: Sequence[Mapping[str, Any]], next_offsets: Mapping[tuple[str, int], int]
    ) -> Loaded:
        """Write ``rows`` and the offsets, atomically (blocking). Raises the error tree."""
        buffer = io.StringIO("".join(copy_line(row) for row in rows))
        try:
            raw = self.engine.raw_connection()
        except sa_exc.SQLAlchemyError as exc:
            with database_errors("connecting for a warehouse load"):
                raise exc
        try:
            with database_errors("loading warehouse rows"):
                try:
                    cursor = raw.cursor()
                    inserted = self._copy(cursor, buffer, len(rows))
                    for (topic, partition), offset in next_offsets.items():
                        cursor.execute(_OFFSETS, (self.group_id, topic, partition, offset))
                    raw.commit()
                except Exception as exc:
                    raw.rollback()
                    # psycopg2's errors are DBAPI errors; hand them to the one translator.
                    raise sa_exc.DBAPIError.instance(_COPY, None, exc, Exception) from exc
        finally:
            raw.close()
        return Loaded(inserted=inserted, skipped=len(rows) - inserted)
