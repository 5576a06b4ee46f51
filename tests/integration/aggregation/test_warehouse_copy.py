"""Binary COPY into ``warehouse.events``: awkward values come back as they went in, and a row
PostgreSQL refuses for its data is set aside by its row number while the rest of the batch —
and the loader's partition — goes on.

On the loader as it was (text COPY, ``json.loads`` as the only check), a body of
``{"x": "\\u0000"}`` passed the check, failed the whole COPY, and the loader read the same
batch again forever: the partition stalled. ``test_a_row_postgres_refuses_does_not_stall``
fails there.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy
from fastavro import parse_schema, schemaless_writer

from schemas import CANONICAL_EVENT, AvroSerde
from schemas.models import CanonicalEvent, LogBody
from schemas.store import AVRO_DIR, LocalSchemaStore
from sinks.aggregation.copy_format import text
from sinks.aggregation.warehouse import Warehouse
from streams.aggregation import decode, metrics
from streams.aggregation.decode import NATIVE, PYTHON, WireTimes, without_logical_types
from streams.aggregation.loader import WarehouseLoader
from streams.aggregation.logic.common import to_nanos
from streams.aggregation.rows import encode_row
from synapseops.kafka import consumer_config
from synapseops.settings import Settings
from tests.integration.aggregation.canonical import end_offsets
from tests.integration.aggregation.events import (
    create_topic,
    produce_all,
    wire_record_without_body,
)
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=UTC)
SERDE = AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
WIRE = WireTimes(SERDE.store, SERDE.subject)
V3_ID = SERDE.store.latest(CANONICAL_EVENT)[0]


@pytest.fixture
def warehouse_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_copy") as url:
        yield url


def _event(n: int, *, body: str | None = '{"ok":true}', subject: str | None = None) -> bytes:
    event = CanonicalEvent(
        id=f"e{n}",
        source="copy-test",
        type="t.event",
        time=WHEN + timedelta(seconds=n),
        subject=subject if subject is not None else f"s{n}",
        source_type="stream",
        ingested_at=WHEN + timedelta(seconds=n, milliseconds=40),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        tags=['quo"te', "back\\slash", "tab\tnew\nline", "ünï"],
        body=LogBody(
            time_unix_nano=to_nanos(WHEN) + 7,
            observed_time_unix_nano=to_nanos(WHEN) + 40_000_007,
            severity_number=17,
            severity_text="ERROR",
            body=body,
            resource='{"service.name":"svc\\tx"}',
            attributes=json.dumps({"path": "/a\tb\\c\nd", "nested": {"list": [1, "ü"]}}),
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
        ),
    )
    return SERDE.encode(event.to_record())


def _row(value: bytes, offset: int) -> bytes:
    return encode_row(WIRE.decode(value), text("t"), 3, offset)


def _loader(
    settings: Settings, engine: sqlalchemy.Engine, serde: AvroSerde, topic: str
) -> WarehouseLoader:
    """An in-process loader of ``topic``, its group named after the topic."""
    return WarehouseLoader(
        consumer_config(settings.kafka, topic),
        Warehouse(engine, topic),
        serde,
        batch_size=500,
        retry_initial_s=0.05,
        topic=topic,
    )


def _select(url: str) -> list[dict[str, Any]]:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sqlalchemy.text('SELECT * FROM warehouse.events ORDER BY "offset"'))
        rows = [dict(row._mapping) for row in found]
    engine.dispose()
    return rows


def test_awkward_values_come_back_as_they_went_in(warehouse_url: str) -> None:
    v1_shaped = wire_record_without_body(id="old", source="copy-test", time=1_764_590_400_000)
    rows = [
        _row(_event(0, subject="tab\there\nnew\\line"), 0),
        encode_row(v1_shaped, text("t"), 3, 1),
    ]
    engine = sqlalchemy.create_engine(warehouse_url)
    loaded = Warehouse(engine, "g").load(rows, {("t", 3): 2})
    engine.dispose()
    assert (loaded.inserted, loaded.skipped, loaded.rejected) == (2, 0, ())
    new, old = _select(warehouse_url)
    assert new["subject"] == "tab\there\nnew\\line"
    assert new["time"] == WHEN and new["ingested_at"] == WHEN + timedelta(milliseconds=40)
    assert new["tags"] == ['quo"te', "back\\slash", "tab\tnew\nline", "ünï"]
    assert new["time_unix_nano"] == to_nanos(WHEN) + 7 and new["severity_number"] == 17
    assert new["body"] == {"ok": True} and new["resource"] == {"service.name": "svc\tx"}
    assert new["attributes"] == {"path": "/a\tb\\c\nd", "nested": {"list": [1, "ü"]}}
    assert (new["log_span_id"], new["topic"], new["partition"]) == ("00f067aa0ba902b7", "t", 3)
    assert old["attributes"] == {"n": 1, "ok": True} and old["resource"] == {}
    assert old["body"] is None and old["time_unix_nano"] is None and old["tags"] == []
    assert old["time"] == datetime(2025, 12, 1, 12, 0, tzinfo=UTC)


def test_refused_rows_are_set_aside_by_number(warehouse_url: str) -> None:
    bad = {
        2: _event(2, body='{"x": "\\u0000"}'),  # jsonb cannot hold U+0000
        5: _event(5, body="{not json"),
        6: _event(6, subject="nul\x00inside"),  # text cannot hold a NUL
        9: _event(9, body="[1, 2"),  # the last row
    }
    rows = [_row(bad.get(n) or _event(n), n) for n in range(10)]
    engine = sqlalchemy.create_engine(warehouse_url)
    warehouse = Warehouse(engine, "g")
    loaded = warehouse.load(rows, {("t", 3): 10})
    assert [index for index, _ in loaded.rejected] == [2, 5, 6, 9]
    assert "Unicode escape" in loaded.rejected[0][1] or "0000" in loaded.rejected[0][1]
    assert (loaded.inserted, loaded.skipped) == (6, 0)
    assert [row["id"] for row in _select(warehouse_url)] == ["e0", "e1", "e3", "e4", "e7", "e8"]
    assert warehouse.offsets("t", [3]) == {3: 10}
    # The same batch again (a copy on the wire): the staging path sets the same rows aside.
    again = warehouse.load(rows, {("t", 3): 10})
    engine.dispose()
    assert (again.inserted, again.skipped) == (0, 6)
    assert [index for index, _ in again.rejected] == [2, 5, 6, 9]


def _unfit_event(n: int) -> bytes:
    """A v3 record whose time (2**62 ms) no timestamptz holds in 64-bit microseconds: no
    model writes one (datetime ends in 9999), fastavro reads it. The loader as it was died
    on it (``struct.error`` out of ``encode_row``), was built again, read it again: stalled."""
    record = WIRE.decode(_event(n)) | {"time": 2**62}
    out = io.BytesIO()
    out.write(_event(n)[:5])
    schemaless_writer(out, parse_schema(without_logical_types(SERDE.store.get(V3_ID))), record)
    return out.getvalue()


def _decoded() -> dict[str, float]:
    return {path: metrics.DECODED_ROWS.labels(path)._value.get() for path in (NATIVE, PYTHON)}


@pytest.mark.parametrize("path", [NATIVE, PYTHON])
def test_a_row_postgres_refuses_does_not_stall_the_partition(
    settings: Settings,
    kafka_bootstrap: str,
    warehouse_url: str,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On either decode path (``python``: as without the compiled transcoder)."""
    if path == PYTHON:
        monkeypatch.setattr(decode, "_transcode", None)
    run = uuid4().hex[:8]
    topic, group = f"t-copy-{run}", f"t-copy-{run}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    values = [_event(n, body='{"x": "\\u0000"}' if n == 7 else '{"n":1}') for n in range(20)]
    values[12] = _unfit_event(12)
    values[15] = b"\x00\x00\x00"  # not the wire format
    produce_all(kafka_bootstrap, topic, [(b"k", value) for value in values])
    engine = sqlalchemy.create_engine(warehouse_url)
    loader = _loader(settings, engine, SERDE, topic)
    before = _decoded()

    async def load() -> dict[int, int]:
        task = loader.start_task()
        deadline = time.monotonic() + 60
        stored: dict[int, int] = {}
        while time.monotonic() < deadline and stored != {0: 20}:
            await asyncio.sleep(0.2)
            stored = await asyncio.to_thread(Warehouse(engine, group).offsets, topic, [0])
        await loader.stop()
        await asyncio.gather(task, return_exceptions=True)
        return stored

    stored = asyncio.run(load())
    engine.dispose()
    assert stored == {0: 20} == end_offsets(kafka_bootstrap, topic)
    ids = {row["id"] for row in _select(warehouse_url)}
    assert ids == {f"e{n}" for n in range(20)} - {"e7", "e12", "e15"}
    decoded = {name: count - before[name] for name, count in _decoded().items()}
    # 18 rows built (e7 is refused by PostgreSQL later); the unfit and the broken one not
    assert decoded == ({NATIVE: 18, PYTHON: 0} if path == NATIVE else {NATIVE: 0, PYTHON: 18})


def test_a_new_optional_schema_field_becomes_a_column_while_loading(
    settings: Settings, kafka_bootstrap: str, warehouse_url: str
) -> None:
    """v4 of the schema (registered while the loader runs) adds ``region`` and ``score``: the
    loader adds their columns itself, v3 rows read null, v4 rows their values, and a reader
    of the table is never refused meanwhile. Before, the loader wrote the v3 columns only and
    a new field was dropped on the way into the warehouse."""
    run = uuid4().hex[:8]
    topic, group = f"t-v4-{run}", f"t-v4-{run}"
    create_topic(kafka_bootstrap, topic, partitions=1)
    store = LocalSchemaStore()
    serde = AvroSerde(store, CANONICAL_EVENT)
    produce_all(kafka_bootstrap, topic, [(b"k", _event(n)) for n in range(5)])
    engine = sqlalchemy.create_engine(warehouse_url)
    loader = _loader(settings, engine, serde, topic)
    reads: list[object] = []

    async def offset_reaches(wanted: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as conn:  # a reader of the table meanwhile (once at least:
                reads.append(  # the loader may be done before the first look)
                    conn.execute(sqlalchemy.text("SELECT count(*) FROM warehouse.events")).scalar()
                )
            stored = await asyncio.to_thread(Warehouse(engine, group).offsets, topic, [0])
            if stored == {0: wanted}:
                return
            assert time.monotonic() < deadline, f"offset never reached {wanted}"
            await asyncio.sleep(0.1)

    async def load() -> None:
        task = loader.start_task()
        await offset_reaches(5)
        v4 = json.loads((AVRO_DIR / CANONICAL_EVENT / "v3.avsc").read_text())
        v4["fields"] += [
            {"name": "region", "type": ["null", "string"], "default": None},
            {"name": "score", "type": ["null", "double"], "default": None},
        ]
        store.register(CANONICAL_EVENT, v4)
        newer = []
        for n in range(5, 8):
            record = SERDE.decode(_event(n)) | {"region": f"eu-{n}", "score": n / 2}
            newer.append((b"k", serde.encode(record)))
        await asyncio.to_thread(produce_all, kafka_bootstrap, topic, newer)
        await offset_reaches(8)
        await loader.stop()
        await asyncio.gather(task, return_exceptions=True)

    before = _decoded()
    asyncio.run(load())
    engine.dispose()
    # v3 data read natively while v3 was the newest, v4 data (extra columns) in Python
    assert {name: count - before[name] for name, count in _decoded().items()} == {
        NATIVE: 5,
        PYTHON: 3,
    }
    rows = {row["id"]: row for row in _select(warehouse_url)}
    assert len(rows) == 8 and reads
    assert rows["e0"]["region"] is None and rows["e4"]["score"] is None
    assert (rows["e6"]["region"], rows["e6"]["score"]) == ("eu-6", 3.0)
    assert rows["e7"]["body"] == {"ok": True}
