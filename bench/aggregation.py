"""``python -m bench aggregation [--events N]``: Data Aggregation's figures (printed only).

1. **transformation**: GitHub events through their logic and the Avro encoder, in process
   (CPU only), events/s; then the pipeline's batch stage for real — the same events as road
   records through :meth:`Aggregation.handle_batch` (claims in PostgreSQL, produce to the
   canonical topic), batches of 500, events/s.
2. **loader vs raw COPY**: N canonical events produced to a topic of their own, loaded by the
   warehouse loader (decode, rows, COPY to staging, insert, offsets, commit) from the first
   record to the last row, rows/s; then the same rows COPYed straight into the same table of
   another fresh database, rows/s; the ratio (the issue's goal: ≥ 70%).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

import sqlalchemy

from schemas import CANONICAL_EVENT, AvroSerde
from schemas.store import LocalSchemaStore
from sinks.aggregation.seen import SeenKeys
from sinks.aggregation.warehouse import _QUOTED, Warehouse, copy_line
from streams.aggregation.loader import WarehouseLoader
from streams.aggregation.logic import github
from streams.aggregation.logic.common import Context
from streams.aggregation.pipeline import Aggregation
from streams.aggregation.rows import to_row
from streams.aggregation.transform import transform
from streams.road import RoadRecord
from synapseops import headers as h
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import Settings
from tests.fixtures import SAMPLES
from tests.integration.aggregation.events import create_topic, encoded_events, produce_all
from tests.integration.databases import fresh_database

BATCH = 500


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _rows_at_least(engine: sqlalchemy.Engine, wanted: int) -> int:
    """Block until warehouse.events holds ``wanted`` rows; how many it holds then."""
    while (done := _count(engine)) < wanted:
        time.sleep(0.02)
    return done


def _github_payloads(count: int) -> list[bytes]:
    payload = json.loads((SAMPLES / "github" / "pull_request.opened.json").read_bytes())
    now = datetime.now(UTC)
    base = github.from_webhook("pull_request", "x", payload, now)
    return [json.dumps(base | {"id": str(10**9 + n)}).encode() for n in range(count)]


def bench_transform(count: int) -> None:
    payloads = _github_payloads(count)
    serde = AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
    context = Context("bench", "api_polling", datetime.now(UTC), "4bf92f3577b34da6a3ce929d0e0e4736")
    started = time.process_time()
    for raw in payloads:
        for event in transform("github", raw, context):
            serde.encode(event.to_record())
    cpu = time.process_time() - started
    say(
        f"transformation (logic + Avro, CPU only): {count / cpu:,.0f} events/s "
        f"({cpu / count * 1e6:.0f} µs CPU/event; pull_request.opened, {len(payloads[0])} bytes)"
    )


def bench_pipeline_stage(settings: Settings, url: str, count: int) -> None:
    payloads = _github_payloads(count)
    source = f"bench-{uuid4().hex[:6]}"
    headers = [
        (h.SOURCE, source.encode()),
        (h.AGGREGATION_LOGIC, b"github"),
        (h.SOURCE_TYPE, b"api_polling"),
        (h.RECEIVED_AT, h.received_at_now().encode()),
    ]
    records = [
        RoadRecord("aggregation.raw", 0, n, None, b"k", raw, headers)
        for n, raw in enumerate(payloads)
    ]

    async def run() -> float:
        engine = sqlalchemy.create_engine(url)
        producer = AsyncProducer(settings.kafka)
        stage = Aggregation(
            SeenKeys(engine), producer, AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
        )
        try:
            started = time.perf_counter()
            for start in range(0, count, BATCH):
                answers = await stage.handle_batch(records[start : start + BATCH])
                assert not any(isinstance(a, BaseException) for a in answers), answers[:1]
            return time.perf_counter() - started
        finally:
            producer.close()
            engine.dispose()

    seconds = asyncio.run(run())
    say(
        f"pipeline batch stage (transform, claim in PostgreSQL, produce, batches of {BATCH}): "
        f"{count / seconds:,.0f} events/s"
    )


def _count(engine: sqlalchemy.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sqlalchemy.text("SELECT count(*) FROM warehouse.events")).scalar_one()
        )


def bench_loader(settings: Settings, url: str, count: int) -> tuple[float, list[str]]:
    topic = f"bench-canonical-{uuid4().hex[:8]}"
    create_topic(settings.kafka.bootstrap, topic)
    records = encoded_events(f"bench-{uuid4().hex[:6]}", count)
    produce_all(settings.kafka.bootstrap, topic, records)
    engine = sqlalchemy.create_engine(url)
    group = f"bench-loader-{uuid4().hex[:6]}"
    loader = WarehouseLoader(
        consumer_config(settings.kafka, group),
        Warehouse(engine, group),
        AvroSerde(LocalSchemaStore(), CANONICAL_EVENT),
        batch_size=settings.loader.batch_size,
        topic=topic,
    )

    async def run() -> float:
        task = loader.start_task()
        # joined, assigned, the first batch in: the clock starts
        first = await asyncio.to_thread(_rows_at_least, engine, 1)
        started = time.perf_counter()
        done = await asyncio.to_thread(_rows_at_least, engine, count)
        seconds = time.perf_counter() - started
        await loader.stop()
        await asyncio.gather(task, return_exceptions=True)
        return (done - first) / seconds

    rate = asyncio.run(run())
    serde = AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
    lines = [
        copy_line(to_row(serde.decode(value), topic, 0, n)) for n, (_, value) in enumerate(records)
    ]
    engine.dispose()
    return rate, lines


def bench_raw_copy(url: str, lines: Sequence[str]) -> float:
    engine = sqlalchemy.create_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        buffer = io.StringIO("".join(lines))
        started = time.perf_counter()
        cursor.copy_expert(f"COPY warehouse.events ({_QUOTED}) FROM STDIN", buffer)
        raw.commit()
        seconds = time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()
    return len(lines) / seconds


def run(options: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="bench aggregation")
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args(list(options))
    settings = Settings()
    bench_transform(min(args.events, 20_000))
    with fresh_database(settings.database_url, "bench_agg_stage") as url:
        bench_pipeline_stage(settings, url, min(args.events, 20_000))
    with fresh_database(settings.database_url, "bench_agg_loader") as url:
        loader_rate, lines = bench_loader(settings, url, args.events)
    with fresh_database(settings.database_url, "bench_agg_copy") as url:
        copy_rate = bench_raw_copy(url, lines)
    say(
        f"loader: {loader_rate:,.0f} rows/s ({args.events:,} events, "
        f"batches of up to {settings.loader.batch_size})"
    )
    say(f"raw COPY of the same rows into warehouse.events: {copy_rate:,.0f} rows/s")
    say(f"loader / raw COPY: {loader_rate / copy_rate:.0%}")
