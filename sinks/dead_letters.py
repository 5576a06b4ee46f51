"""The dead-letter store: one ``dead_letters`` row per record on a ``<pipeline>.dlq`` topic.

:func:`to_row` is the work, pure: a dead record (coordinates, key, value, headers) in, the
row out, its failure history read through :class:`streams.road.headers.FailureHistory`.
:class:`DeadLetterRepository` is the blocking I/O (run it in an executor from async code):

- :meth:`~DeadLetterRepository.store` inserts ``ON CONFLICT (dlq_topic, dlq_partition,
  dlq_offset) DO NOTHING`` and answers the row's id and whether its trigger is still owed,
  so a redelivered record never makes a second row but does get its missing trigger;
- :meth:`~DeadLetterRepository.mark_trigger_published` sets the outbox flag.

Headers are kept as JSON ``{name: text}``; a value that is not UTF-8 text PostgreSQL can hold
is kept as ``{name: {"base64": ...}}``. :func:`headers_from_json` turns them back into bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.dead_letter_tables import DEAD, dead_letters
from streams.road.headers import FailureHistory
from synapseops import headers as h
from synapseops.ids import trace_id_of
from synapseops.redaction import scrub

JsonHeaders = dict[str, str | dict[str, str]]


def headers_to_json(headers: Iterable[tuple[str, bytes | None]] | None) -> JsonHeaders:
    """Kafka headers as JSON; the last value wins when a name repeats."""
    result: JsonHeaders = {}
    for name, value in headers or ():
        raw = value or b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        # jsonb cannot hold U+0000; such values are kept exactly, as base64.
        if text is None or "\x00" in text:
            result[name] = {"base64": base64.b64encode(raw).decode("ascii")}
        else:
            result[name] = text
    return result


def headers_from_json(stored: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The inverse of :func:`headers_to_json`."""
    result: list[tuple[str, bytes]] = []
    for name, value in stored.items():
        if isinstance(value, dict) and "base64" in value:
            result.append((name, base64.b64decode(value["base64"])))
        else:
            result.append((name, str(value).encode("utf-8")))
    return result


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; an error message may (it quotes the payload).
    return value.replace("\x00", "\ufffd") if value is not None else None


def _from_ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


@dataclass(frozen=True)
class DeadRecord:
    """One record read from a dead-letter topic."""

    pipeline: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int | None

    def log_fields(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "pipeline": self.pipeline,
        }


def to_row(record: DeadRecord, now: datetime | None = None) -> dict[str, Any]:
    """The ``dead_letters`` row of a dead record (``id`` and ``updated_at`` are the database's).

    A record without road headers (produced to the DLQ by hand) is still stored: its unknown
    history reads as NULLs, never as an error, because a dead letter must not be lost.
    """
    history = FailureHistory.from_headers(record.headers)
    header_map = h.to_map(record.headers)
    dead_at = _from_ms(record.timestamp_ms) or now or datetime.now(UTC)
    return {
        "pipeline": record.pipeline,
        "dlq_topic": record.topic,
        "dlq_partition": record.partition,
        "dlq_offset": record.offset,
        "original_topic": _text(history.original_topic),
        "original_partition": history.original_partition,
        "original_offset": history.original_offset,
        "original_timestamp": _from_ms(history.original_timestamp_ms),
        "key": record.key,
        "value": record.value,
        # No secret in a row: text header values and the error texts pass the scrubber.
        "headers": {
            name: scrub(value) if isinstance(value, str) else value
            for name, value in headers_to_json(record.headers).items()
        },
        "trace_id": trace_id_of(header_map.get(h.TRACEPARENT)),
        "error_kind": _text(history.error_kind),
        "error_class": _text(history.error_class),
        "error_message": _text(scrub(history.error_message or "") or None),
        "error_trace": _text(scrub(history.error_trace or "") or None),
        "attempts": history.attempt,
        "first_failed_at": _from_ms(history.first_failed_at_ms),
        "dead_at": dead_at,
        "status": DEAD,
        "replay_id": _text(history.replay_id),
        "replay_count": history.replay_count,
    }


@dataclass(frozen=True)
class StoredDeadLetter:
    """What :meth:`DeadLetterRepository.store` learned: the row and whether it is new."""

    id: int
    created: bool
    trigger_pending: bool


class DeadLetterRepository:
    """Blocking writes of the dead-letter store; raises only :mod:`synapseops.errors` types."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    def store(self, row: Mapping[str, Any]) -> StoredDeadLetter:
        statement = (
            pg_insert(dead_letters)
            .values(dict(row))
            .on_conflict_do_nothing(index_elements=["dlq_topic", "dlq_partition", "dlq_offset"])
            .returning(dead_letters.c.id)
        )
        with database_errors("dead_letters insert"), self.engine.begin() as conn:
            new_id = conn.execute(statement).scalar_one_or_none()
            if new_id is not None:
                return StoredDeadLetter(id=new_id, created=True, trigger_pending=True)
            existing = conn.execute(
                select(dead_letters.c.id, dead_letters.c.trigger_published_at).where(
                    dead_letters.c.dlq_topic == row["dlq_topic"],
                    dead_letters.c.dlq_partition == row["dlq_partition"],
                    dead_letters.c.dlq_offset == row["dlq_offset"],
                )
            ).one()
        return StoredDeadLetter(
            id=existing.id, created=False, trigger_pending=existing.trigger_published_at is None
        )

    def mark_trigger_published(self, row_id: int) -> None:
        statement = (
            update(dead_letters)
            .where(dead_letters.c.id == row_id, dead_letters.c.trigger_published_at.is_(None))
            .values(trigger_published_at=sqlalchemy.func.now(), updated_at=sqlalchemy.func.now())
        )
        with database_errors("dead_letters trigger flag"), self.engine.begin() as conn:
            conn.execute(statement)


def trigger_record(row_id: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``notification_trigger`` (kind ``dead_letter``) announcing one new dead letter."""
    error = row.get("error_class") or "unknown error"
    attempts = int(row.get("attempts") or 0)
    details = {
        "dead_letter_id": str(row_id),
        "dlq": f"{row['dlq_topic']}/{row['dlq_partition']}/{row['dlq_offset']}",
        "attempts": str(attempts),
        "error_class": error,
        "error_message": (row.get("error_message") or "")[:500],
    }
    if row.get("original_topic"):
        details["original"] = (
            f"{row['original_topic']}/{row['original_partition']}/{row['original_offset']}"
        )
    return {
        "kind": "dead_letter",
        "pipeline": row["pipeline"],
        "subject_id": str(row_id),
        "summary": f"{row['pipeline']}: dead letter #{row_id} after {attempts} attempt(s): {error}",
        "details": details,
        "occurred_at": row["dead_at"],
        # All zeros is W3C's "no trace": the record came without a traceparent.
        "trace_id": row.get("trace_id") or "0" * 32,
        "severity": "warning",
        # One dead record notifies once, even if its trigger is published again (outbox).
        "dedup_key": f"dead_letter:{row['dlq_topic']}:{row['dlq_partition']}:{row['dlq_offset']}",
    }
