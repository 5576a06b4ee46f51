"""The dead-letter store's writes: one ``dead_letters`` row per failure on a ``<pipeline>.dlq``
topic (the rows themselves are built, pure, by :mod:`sinks.dead_letters.rows`).

:class:`DeadLetterRepository` is the blocking I/O (run it in an executor from async code):

- :meth:`~DeadLetterRepository.store_many` inserts a batch of rows in one transaction
  ``ON CONFLICT DO NOTHING`` over both unique keys — the DLQ coordinates (a redelivered
  record) and the ``failure_key`` (pipeline, original coordinates and attempt: the same failure
  handed off twice after a lost delivery report) — and answers, per row, its id and whether its
  trigger is still owed, so neither kind of repeat makes a second row or a second trigger, but
  a missing trigger is still sent. :meth:`~DeadLetterRepository.store` is the same for one row;
- :meth:`~DeadLetterRepository.mark_triggers_published` sets the outbox flag of many rows;
- :meth:`~DeadLetterRepository.note_store_error` records why a trigger could not be sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.dead_letters.rows import (
    DeadRecord,
    JsonHeaders,
    _text,
    failure_key,
    header_problems,
    headers_from_json,
    headers_to_json,
    minimal_row,
    to_row,
    trigger_record,
)
from sinks.dead_letters.tables import dead_letters

__all__ = [
    "DeadLetterRepository",
    "DeadRecord",
    "JsonHeaders",
    "StoredDeadLetter",
    "failure_key",
    "header_problems",
    "headers_from_json",
    "headers_to_json",
    "minimal_row",
    "to_row",
    "trigger_record",
]


@dataclass(frozen=True)
class StoredDeadLetter:
    """What :meth:`DeadLetterRepository.store` learned: the row and whether it is new."""

    id: int
    created: bool
    trigger_pending: bool


Place = tuple[str, int, int]


def _place(row: Mapping[str, Any]) -> Place:
    return (row["dlq_topic"], row["dlq_partition"], row["dlq_offset"])


class DeadLetterRepository:
    """Blocking writes of the dead-letter store; raises only :mod:`synapseops.errors` types."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    def store(self, row: Mapping[str, Any]) -> StoredDeadLetter:
        """:meth:`store_many` of one row."""
        return self.store_many([row])[0]

    def store_many(self, rows: Sequence[Mapping[str, Any]]) -> list[StoredDeadLetter]:
        """Insert each row unless its DLQ coordinates or its failure are stored already (by an
        earlier batch or an earlier row of this one); one answer per row, in order, all in one
        transaction.

        Raises :class:`~synapseops.errors.DatabaseUnavailable` (retry later) or
        :class:`~synapseops.errors.SchemaInvalid` (PostgreSQL refuses a row of the batch for
        good; nothing of the batch is written — the caller stores its rows one by one).
        """
        if not rows:
            return []
        c = dead_letters.c
        # One multi-row VALUES takes its columns from the first row: a minimal row has fewer,
        # so every row gets every column any row has (NULL where it has none).
        columns = list(dict.fromkeys(name for row in rows for name in row))
        values = [{name: row.get(name) for name in columns} for row in rows]
        # No conflict target: DO NOTHING then covers both unique keys (coordinates, failure),
        # against stored rows and against rows earlier in the same statement.
        statement = (
            pg_insert(dead_letters)
            .values(values)
            .on_conflict_do_nothing()
            .returning(c.id, c.dlq_topic, c.dlq_partition, c.dlq_offset)
        )
        with database_errors("dead_letters insert"), self.engine.begin() as conn:
            created = {
                (r.dlq_topic, r.dlq_partition, r.dlq_offset): r.id for r in conn.execute(statement)
            }
            missing = [row for row in rows if _place(row) not in created]
            by_place: dict[Place, int] = {}
            by_key: dict[str, int] = {}
            if missing:
                places = [_place(row) for row in missing]
                keys = [row["failure_key"] for row in missing if row.get("failure_key")]
                where: sqlalchemy.ColumnElement[bool] = tuple_(
                    c.dlq_topic, c.dlq_partition, c.dlq_offset
                ).in_(places)
                if keys:
                    where = where | c.failure_key.in_(keys)
                found = conn.execute(
                    select(c.id, c.dlq_topic, c.dlq_partition, c.dlq_offset, c.failure_key)
                    .where(where)
                    .order_by(c.id)
                )
                for r in found:  # the oldest row of a place or a failure answers for it
                    by_place.setdefault((r.dlq_topic, r.dlq_partition, r.dlq_offset), r.id)
                    if r.failure_key is not None:
                        by_key.setdefault(r.failure_key, r.id)
            owed = self._owed(conn, [*by_place.values(), *by_key.values()])
        answers = []
        for row in rows:
            place = _place(row)
            if place in created:
                answers.append(StoredDeadLetter(created[place], True, True))
                continue
            row_id = by_place.get(place) or by_key[row["failure_key"]]
            answers.append(StoredDeadLetter(row_id, False, row_id in owed))
        return answers

    @staticmethod
    def _owed(conn: sqlalchemy.Connection, ids: list[int]) -> set[int]:
        """Which of the rows ``ids`` still owe their trigger."""
        if not ids:
            return set()
        c = dead_letters.c
        statement = select(c.id).where(c.id.in_(ids), c.trigger_published_at.is_(None))
        return set(conn.scalars(statement))

    def note_store_error(self, row_id: int, reason: str) -> None:
        """Add ``reason`` to the row's ``store_error`` (why its trigger was not published)."""
        reason = _text(reason) or ""
        statement = (
            update(dead_letters)
            .where(dead_letters.c.id == row_id)
            .values(
                store_error=sqlalchemy.func.concat_ws(
                    "; ", dead_letters.c.store_error, sqlalchemy.literal(reason)
                ),
                updated_at=sqlalchemy.func.now(),
            )
        )
        with database_errors("dead_letters store error"), self.engine.begin() as conn:
            conn.execute(statement)

    def mark_trigger_published(self, row_id: int) -> None:
        self.mark_triggers_published([row_id])

    def mark_triggers_published(self, row_ids: Sequence[int]) -> None:
        """Set the outbox flag of every row of ``row_ids`` (one statement)."""
        if not row_ids:
            return
        statement = (
            update(dead_letters)
            .where(
                dead_letters.c.id.in_(list(row_ids)), dead_letters.c.trigger_published_at.is_(None)
            )
            .values(trigger_published_at=sqlalchemy.func.now(), updated_at=sqlalchemy.func.now())
        )
        with database_errors("dead_letters trigger flag"), self.engine.begin() as conn:
            conn.execute(statement)
