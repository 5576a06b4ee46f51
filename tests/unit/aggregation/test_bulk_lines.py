"""The streamed line reader of bulk uploads: lines cut across chunks, numbers, problems."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from streams.aggregation import bulk_lines
from streams.aggregation.bulk_lines import csv_records, ndjson_records


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _run(reader: object, data: bytes, size: int) -> list[tuple[int, object]]:
    async def collect() -> list[tuple[int, object]]:
        return [item async for item in reader(_chunks(data, size))]  # type: ignore[operator]

    return asyncio.run(collect())


def test_ndjson_lines_across_any_chunking_with_numbered_problems() -> None:
    data = b'{"id": 1}\n\n[1, 2]\n{"id": 2\n{"id": "\xc3\xa9"}\r\n{"id": 3}'
    for size in (1, 3, 7, len(data)):
        assert _run(ndjson_records, data, size) == [
            (1, {"id": 1}),
            (3, "not a JSON object: list"),
            (4, _run(ndjson_records, b'{"id": 2', 100)[0][1]),
            (5, {"id": "é"}),
            (6, {"id": 3}),
        ]


def test_a_line_too_long_is_skipped_not_kept() -> None:
    data = b'{"a":1}\n' + b"x" * 50 + b'\n{"b":2}\n'

    async def collect() -> list[tuple[int, object]]:
        return [item async for item in bulk_lines.lines(_chunks(data, 4), max_line_bytes=10)]

    assert asyncio.run(collect()) == [(1, b'{"a":1}'), (2, None), (3, b'{"b":2}')]


def test_csv_header_then_rows_and_a_short_row() -> None:
    data = b'id,type,time\n1,t,2026-01-01T00:00:00Z\n2,t\n3,"quoted, comma",1\n'
    assert _run(csv_records, data, 5) == [
        (2, {"id": "1", "type": "t", "time": "2026-01-01T00:00:00Z"}),
        (3, "2 fields where the header names 3"),
        (4, {"id": "3", "type": "quoted, comma", "time": "1"}),
    ]
