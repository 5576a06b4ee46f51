"""Dead-letter rows, stored headers and replay headers (pure functions, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.serde import AvroSerde
from schemas.store import LocalSchemaStore
from sinks.dead_letters.replay import replay_headers
from sinks.dead_letters.store import (
    DeadRecord,
    headers_from_json,
    headers_to_json,
    to_row,
    trigger_record,
)
from streams.road import headers as road
from streams.road.headers import FailureHistory

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _history_headers() -> list[tuple[str, bytes]]:
    history = FailureHistory(
        attempt=4,
        retries=3,
        original_topic="synapseops.events.inbound",
        original_partition=2,
        original_offset=41,
        original_timestamp_ms=1_700_000_000_000,
        pipeline="payments",
        error_kind="retryable",
        error_class="TargetUnavailable",
        error_message="503 from finance",
        error_trace="Traceback ...",
        first_failed_at_ms=1_700_000_001_000,
        last_failed_at_ms=1_700_000_400_000,
        not_before_ms=1_700_000_400_000,
        other=(("traceparent", TRACEPARENT.encode()), ("synapseops-event-id", b"evt_1")),
    )
    return history.to_headers()


def test_headers_round_trip_through_json_including_binary_and_nul() -> None:
    headers = [("text", b"hello"), ("binary", b"\xff\xfe\x00"), ("nul", b"a\x00b"), ("none", None)]
    stored = headers_to_json(headers)
    assert stored["text"] == "hello"
    assert stored["binary"] == {"base64": "//4A"}
    assert "base64" in stored["nul"]  # type: ignore[operator]
    assert dict(headers_from_json(stored)) == {
        "text": b"hello",
        "binary": b"\xff\xfe\x00",
        "nul": b"a\x00b",
        "none": b"",
    }


def test_to_row_reads_the_history_headers() -> None:
    record = DeadRecord(
        pipeline="payments",
        topic="payments.dlq",
        partition=1,
        offset=7,
        key=b"pi_1",
        value=b'{"id": 1}',
        headers=tuple(_history_headers()),
        timestamp_ms=1_700_000_500_000,
    )
    row = to_row(record)
    assert row["dlq_topic"] == "payments.dlq" and row["dlq_offset"] == 7
    assert row["original_topic"] == "synapseops.events.inbound"
    assert (row["original_partition"], row["original_offset"]) == (2, 41)
    assert row["attempts"] == 4
    assert row["error_class"] == "TargetUnavailable"
    assert row["error_kind"] == "retryable"
    assert row["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert row["first_failed_at"] == datetime.fromtimestamp(1_700_000_001, UTC)
    assert row["dead_at"] == datetime.fromtimestamp(1_700_000_500, UTC)
    assert row["status"] == "dead" and row["replay_count"] == 0
    assert row["headers"][road.ATTEMPT] == "4"


def test_to_row_keeps_a_record_without_history() -> None:
    record = DeadRecord("p", "p.dlq", 0, 0, None, b"\x00\x01", (), None)
    row = to_row(record, now=datetime(2025, 1, 1, tzinfo=UTC))
    assert row["attempts"] == 0 and row["error_class"] is None
    assert row["dead_at"] == datetime(2025, 1, 1, tzinfo=UTC)


def test_replay_headers_keep_the_attempt_and_count_the_replay() -> None:
    stored = headers_to_json(_history_headers())
    headers = replay_headers(stored, "rpl_1", now_ms=1_800_000_000_000)
    history = FailureHistory.from_headers(headers)
    assert history.attempt == 4  # never reset
    assert history.retries == 0  # the tiers start over
    assert history.replay_id == "rpl_1"
    assert history.replay_count == 1
    assert history.not_before_ms == 1_800_000_000_000
    assert history.original_offset == 41
    assert dict(history.other)["traceparent"] == TRACEPARENT.encode()
    again = FailureHistory.from_headers(replay_headers(headers_to_json(headers), "rpl_2", 0))
    assert again.replay_count == 2 and again.replay_id == "rpl_2"


def test_trigger_record_fits_the_notification_trigger_schema() -> None:
    record = DeadRecord("payments", "payments.dlq", 1, 7, b"k", b"v", tuple(_history_headers()), 0)
    row = to_row(record, now=datetime(2025, 1, 1, tzinfo=UTC))
    serde = AvroSerde(LocalSchemaStore(), "notification_trigger")
    decoded = serde.decode(serde.encode(trigger_record(42, row).to_record()))
    assert decoded["kind"] == "dead_letter"
    assert decoded["subject_id"] == "42"
    assert decoded["pipeline"] == "payments"
    assert decoded["dedup_key"] == "dead_letter:payments.dlq:1:7"
    assert decoded["details"]["error_class"] == "TargetUnavailable"
    assert decoded["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
