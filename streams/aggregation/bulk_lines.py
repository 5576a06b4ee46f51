"""A bulk upload's body as numbered records, read as it streams (never held whole).

:func:`ndjson_records` and :func:`csv_records` take the body's chunks (an async iterator of
bytes) and yield ``(line_number, record_or_problem)``: a dict for a line that reads, a
string saying why for one that does not (not JSON, not an object, too long, bad UTF-8, a CSV
row with the wrong number of fields). Blank lines are skipped, numbering counts them. A line
longer than ``max_line_bytes`` is skipped to its end without being kept.

CSV: the first line names the columns; a field holds no newline (a quoted field spanning
lines is reported as a bad row rather than read across lines, so memory stays flat).
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any

MAX_LINE_BYTES = 1_000_000
Numbered = tuple[int, dict[str, Any] | str]


async def lines(
    chunks: AsyncIterator[bytes], max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[int, bytes | None]]:
    """Every line with its number; ``None`` for a line longer than ``max_line_bytes``."""
    carry = bytearray()
    number = 0
    too_long = False
    async for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not too_long:
                    carry += chunk[start:]
                    if len(carry) > max_line_bytes:
                        too_long, carry = True, bytearray()
                break
            number += 1
            if too_long:
                yield number, None
            else:
                carry += chunk[start:end]
                yield number, (None if len(carry) > max_line_bytes else bytes(carry))
            carry, too_long = bytearray(), False
            start = end + 1
    if too_long:
        yield number + 1, None
    elif carry.strip():
        yield number + 1, bytes(carry)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8").rstrip("\r")


async def ndjson_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[Numbered]:
    async for number, raw in lines(chunks):
        if raw is None:
            yield number, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        if not raw.strip():
            continue
        try:
            value = json.loads(_text(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            yield number, f"not JSON: {exc}"
            continue
        yield (
            number,
            value if isinstance(value, dict) else f"not a JSON object: {type(value).__name__}",
        )


async def csv_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[Numbered]:
    header: list[str] | None = None
    async for number, raw in lines(chunks):
        if raw is None:
            yield number, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        try:
            text = _text(raw)
        except UnicodeDecodeError as exc:
            yield number, f"not UTF-8: {exc}"
            continue
        if not text.strip():
            continue
        try:
            (row,) = list(csv.reader([text], strict=True))
        except (csv.Error, ValueError) as exc:
            yield number, f"not a CSV row: {exc}"
            continue
        if header is None:
            header = [name.strip() for name in row]
            continue
        if len(row) != len(header):
            yield number, f"{len(row)} fields where the header names {len(header)}"
            continue
        yield (
            number,
            {
                name: (value if value != "" else None)
                for name, value in zip(header, row, strict=True)
            },
        )
