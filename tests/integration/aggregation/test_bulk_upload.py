"""Bulk uploads over real HTTP, streamed in chunks: per-line errors by number, good lines on
``aggregation.raw``, a body far over the general cap accepted on this route only, CSV too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from synapseops import headers as h
from tests.integration.aggregation.canonical import end_offsets, read_topic
from tests.integration.aggregation.conftest import AUTH
from topics.registry import AGGREGATION_RAW

pytestmark = pytest.mark.integration


def _bulk_source(base_url: str) -> str:
    name = f"orders-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "kind": "bulk", "logic": "bulk"}
    created = httpx.post(f"{base_url}/api/v1/aggregation/sources", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    return name


def _chunked(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _line(n: int) -> bytes:
    return json.dumps(
        {
            "id": f"o{n}",
            "type": "order",
            "time": "2026-11-30T10:00:00Z",
            "amount": "19.90",
            "note": "x" * 100,
        }
    ).encode()


def test_ndjson_upload_over_the_body_cap_with_bad_lines_by_number(
    base_url: str, kafka_bootstrap: str
) -> None:
    name = _bulk_source(base_url)
    lines = [_line(n) for n in range(20_000)]  # ~3 MB: three times the general body cap
    lines[9] = b'{"id": "o9", "type": "order"}'  # no time
    lines[99] = b"{not json"
    data = b"\n".join(lines) + b"\n"
    start = end_offsets(kafka_bootstrap, AGGREGATION_RAW.name)
    answer = httpx.post(
        f"{base_url}/api/v1/aggregation/sources/{name}/uploads",
        content=_chunked(data),
        headers=AUTH | {"Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert (job["records_in"], job["records_out"], job["records_failed"]) == (20_000, 19_998, 2)
    assert [e["line"] for e in job["errors"]] == [10, 100]
    assert "missing time" in job["errors"][0]["reason"]
    assert job["state"] == "succeeded" and job["bytes_done"] == len(data)
    found = read_topic(kafka_bootstrap, AGGREGATION_RAW.name, start, want=19_998, deadline_s=30)
    mine = [hs for _, hs in found if hs.get(h.SOURCE) == name.encode()]
    assert len(mine) == 19_998
    assert mine[0][h.AGGREGATION_JOB].decode() == job["id"]
    listed = httpx.get(f"{base_url}/api/v1/aggregation/jobs", params={"source": name}, headers=AUTH)
    assert [j["id"] for j in listed.json()] == [job["id"]]


def test_csv_upload_and_a_non_bulk_source_is_refused(base_url: str) -> None:
    name = _bulk_source(base_url)
    data = b"id,type,time,subject\nc1,row,2026-11-30T10:00:00Z,a\nc2,row\nc3,row,soon,b\n"
    answer = httpx.post(
        f"{base_url}/api/v1/aggregation/sources/{name}/uploads",
        params={"format": "csv"},
        content=data,
        headers=AUTH,
    )
    job = answer.json()
    assert (job["records_in"], job["records_out"], job["records_failed"]) == (3, 1, 2)
    assert [e["line"] for e in job["errors"]] == [3, 4]
    stream = f"logs-{uuid.uuid4().hex[:6]}"
    httpx.post(
        f"{base_url}/api/v1/aggregation/sources",
        json={"name": stream, "kind": "stream", "logic": "otel"},
        headers=AUTH,
    )
    refused = httpx.post(
        f"{base_url}/api/v1/aggregation/sources/{stream}/uploads", content=data, headers=AUTH
    )
    assert refused.status_code == 422
