"""Canonical records as warehouse rows, and rows as COPY text (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from sinks.aggregation.warehouse import COLUMNS, copy_line
from streams.aggregation.rows import is_json, to_row

WHEN = datetime(2026, 12, 1, tzinfo=UTC)


def _v1_shaped() -> dict[str, object]:
    """What v3 reads from data written with v1/v2: no body, flat attributes."""
    return {
        "id": "e1",
        "source": "s",
        "specversion": "1.0",
        "type": "t",
        "time": WHEN,
        "subject": None,
        "source_type": "stream",
        "ingested_at": WHEN,
        "actor_id": None,
        "attributes": {"n": 1, "ok": True},
        "trace_id": "a" * 32,
        "tags": [],
        "raw_ref": None,
        "body": None,
    }


def test_data_without_a_body_keeps_its_flat_attributes() -> None:
    row = to_row(_v1_shaped(), "topic", 2, 7)
    assert row["attributes"] == '{"n":1,"ok":true}'
    assert row["resource"] == "{}" and row["body"] is None
    assert set(row) == set(COLUMNS)


def test_copy_line_escapes_what_copy_would_misread() -> None:
    row = to_row(_v1_shaped(), "topic", 2, 7) | {
        "subject": "tab\there\nnewline\\back",
        "tags": ['quo"te', "back\\slash", "plain"],
        "body": '{"x":"a\\tb"}',
    }
    fields = copy_line(row).rstrip("\n").split("\t")
    assert len(fields) == len(COLUMNS)
    by_name = dict(zip(COLUMNS, fields, strict=True))
    assert by_name["subject"] == "tab\\there\\nnewline\\\\back"
    assert by_name["actor_id"] == "\\N"
    assert by_name["tags"] == '{"quo\\\\"te","back\\\\\\\\slash","plain"}'
    assert by_name["time"] == "2026-12-01T00:00:00+00:00"


def test_is_json() -> None:
    assert is_json('{"a": 1}') and is_json(None) and not is_json("{oops")
