"""A dead record and its ``dead_letters`` row, pure: no I/O (the store writes the rows).

:func:`to_row` is the work: a dead record (coordinates, key, value, headers) in, the row out,
its failure history read through :class:`streams.road.headers.FailureHistory`. A record whose
history cannot be read into the columns (a timestamp out of range, a number too big for its
column, ...) is stored by :func:`minimal_row` instead: its coordinates, raw key, value and
headers, and the reason in ``store_error`` — never a stalled partition. Every text a row
persists passes :func:`_text`, every header :func:`headers_to_json` (both applied by
:func:`_stored` to each row, of either kind): the places where error texts and headers are
made safe to persist. :func:`trigger_record` is the notification a new row announces.

Headers are kept as JSON ``{name: text}``; a value that is not UTF-8 text PostgreSQL can hold
is kept as ``{name: {"base64": ...}}``. :func:`headers_from_json` turns them back into bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.models import DEAD_LETTER, SUMMARY_MAX_CHARS, NotificationTrigger
from sinks.dead_letters.tables import DEAD
from streams.road.headers import ROAD_HEADERS, FailureHistory
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
        # jsonb cannot hold U+0000 (in a value or a name); values are kept exactly, as base64.
        key = name.replace("\x00", "\ufffd")
        if text is None or "\x00" in text:
            result[key] = {"base64": base64.b64encode(raw).decode("ascii")}
        else:
            result[key] = text
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


# Road headers holding numbers, and the most each column holds (PostgreSQL integer/bigint).
_INT_MAX = 2**31 - 1
_BIGINT_MAX = 2**63 - 1
_NUMERIC_HEADERS = {
    "synapseops-attempt": _INT_MAX,
    "synapseops-retries": _INT_MAX,
    "synapseops-replay-count": _INT_MAX,
    "synapseops-original-partition": _INT_MAX,
    "synapseops-original-offset": _BIGINT_MAX,
    "synapseops-original-timestamp": _BIGINT_MAX,
    "synapseops-first-failed-at": _BIGINT_MAX,
    "synapseops-last-failed-at": _BIGINT_MAX,
    "synapseops-not-before": _BIGINT_MAX,
}


def header_problems(headers: Iterable[tuple[str, bytes | None]]) -> list[str]:
    """The road headers of a dead record that cannot be read as what they hold (pure).

    The history is read leniently (such a header reads as unknown), so the row is still
    complete; these say which headers were not believed, in the row's ``store_error``.
    """
    problems = []
    for name, value in headers:
        if name not in ROAD_HEADERS or value is None:
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{name} is not UTF-8 text")
            continue
        limit = _NUMERIC_HEADERS.get(name)
        if limit is not None and not (text.strip().isdigit() and int(text) <= limit):
            problems.append(f"{name} is not a number in range: {text[:40]!r}")
    return problems


def failure_key(
    pipeline: str, topic: str | None, partition: int | None, offset: int | None, attempt: int
) -> str | None:
    """One failure of one record: ``pipeline|topic|partition|offset|attempt`` (Kafka topic
    and pipeline names hold no ``|``); ``None`` without original coordinates."""
    if topic is None or partition is None or offset is None:
        return None
    return f"{pipeline}|{topic}|{partition}|{offset}|{attempt}"


def to_row(record: DeadRecord, now: datetime | None = None) -> dict[str, Any]:
    """The ``dead_letters`` row of a dead record (``id`` and ``updated_at`` are the database's).

    A record without road headers (produced to the DLQ by hand) is still stored: its unknown
    history reads as NULLs, never as an error, because a dead letter must not be lost.
    Raises ``ValueError``/``OverflowError``/``OSError`` when a time cannot be a timestamp;
    the store then falls back to :func:`minimal_row`.
    """
    history = FailureHistory.from_headers(record.headers)
    header_map = h.to_map(record.headers)
    problems = header_problems(record.headers)
    dead_at = _from_ms(record.timestamp_ms) or now or datetime.now(UTC)
    # Numbers the lenient reader took but the columns cannot hold read as unknown too.
    partition = _fits(history.original_partition, _INT_MAX)
    offset = _fits(history.original_offset, _BIGINT_MAX)
    attempt = _fits(history.attempt, _INT_MAX) or 0
    return _stored(
        {
            "pipeline": record.pipeline,
            "dlq_topic": record.topic,
            "dlq_partition": record.partition,
            "dlq_offset": record.offset,
            "original_topic": history.original_topic,
            "original_partition": partition,
            "original_offset": offset,
            "original_timestamp": _from_ms(history.original_timestamp_ms),
            "key": record.key,
            "value": record.value,
            "headers": record.headers,
            "trace_id": trace_id_of(header_map.get(h.TRACEPARENT)),
            "error_kind": history.error_kind,
            "error_class": history.error_class,
            "error_message": history.error_message,
            "error_trace": history.error_trace,
            "attempts": attempt,
            "first_failed_at": _from_ms(history.first_failed_at_ms),
            "dead_at": dead_at,
            "status": DEAD,
            "replay_id": history.replay_id,
            "replay_count": _fits(history.replay_count, _INT_MAX) or 0,
            # A failure whose headers were not all believed is not matched against others.
            "failure_key": None
            if problems
            else failure_key(record.pipeline, history.original_topic, partition, offset, attempt),
            "store_error": "; ".join(problems) or None,
        }
    )


def minimal_row(record: DeadRecord, reason: str, now: datetime | None = None) -> dict[str, Any]:
    """The row of a dead record whose history could not be stored (pure): where it sits,
    its raw key, value and headers, and ``reason``; every other column unknown."""
    try:
        dead_at = _from_ms(record.timestamp_ms)
    except (ValueError, OverflowError, OSError):
        dead_at = None
    return _stored(
        {
            "pipeline": record.pipeline,
            "dlq_topic": record.topic,
            "dlq_partition": record.partition,
            "dlq_offset": record.offset,
            "key": record.key,
            "value": record.value,
            "headers": record.headers,
            "attempts": 0,
            "dead_at": dead_at or now or datetime.now(UTC),
            "status": DEAD,
            "replay_count": 0,
            "store_error": f"stored minimally: {reason}",
        }
    )


_TEXT_COLUMNS = (
    "original_topic",
    "error_kind",
    "error_class",
    "error_message",
    "error_trace",
    "replay_id",
    "store_error",
)


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    """The one place a dead letter's texts and headers become what is persisted: headers as
    JSON, texts PostgreSQL can hold, scrubbed of secrets. Every row the store writes passes
    here."""
    # No secret in a row: text header values and every text column pass the scrubber.
    row["headers"] = {
        name: scrub(value) if isinstance(value, str) else value
        for name, value in headers_to_json(row["headers"]).items()
    }
    for column in _TEXT_COLUMNS:
        if column in row:
            value = row[column]
            row[column] = _text(scrub(value) if isinstance(value, str) else value)
    return row


def _fits(value: int | None, limit: int) -> int | None:
    return value if value is not None and 0 <= value <= limit else None


def trigger_record(row_id: int, row: Mapping[str, Any]) -> NotificationTrigger:
    """The ``dead_letter`` notification trigger announcing one new dead letter.

    Raises :class:`~synapseops.errors.SchemaInvalid` for a row no trigger can be made of.
    """
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
    summary = f"{row['pipeline']}: dead letter #{row_id} after {attempts} attempt(s): {error}"
    return NotificationTrigger.from_record(
        {
            "kind": DEAD_LETTER,
            "pipeline": row["pipeline"],
            "subject_id": str(row_id),
            "summary": summary[:SUMMARY_MAX_CHARS],
            "details": details,
            "occurred_at": row["dead_at"],
            # All zeros is W3C's "no trace": the record came without a traceparent.
            "trace_id": row.get("trace_id") or "0" * 32,
            "severity": "warning",
            # One dead record notifies once, even if its trigger is published again (outbox).
            "dedup_key": (
                f"dead_letter:{row['dlq_topic']}:{row['dlq_partition']}:{row['dlq_offset']}"
            ),
        }
    )
