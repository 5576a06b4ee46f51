"""``python -m bench aggregation [--events N]``: Data Aggregation's figures (printed only).

1. **transformation**: GitHub events through their logic and the Avro encoder, in process
   (CPU only), events/s; then the pipeline's batch stage for real — the same events as road
   records through :meth:`Aggregation.handle_batch` (claims in PostgreSQL, produce to the
   canonical topic), batches of 500, events/s.
2. **loader vs raw COPY**: N canonical events produced to a topic of their own (6
   partitions), loaded by ``synapseops loader`` processes — one, then two in one group (it
   scales by partitions) — into a fresh database each, from the first batch committed to
   the last (read from their stored offsets; with two, from when each holds its share),
   rows/s; then the rows the first load wrote, dumped by PostgreSQL in text and in binary,
   COPYed straight into the same table of another fresh database, rows/s; the ratio to the
   faster raw COPY (the issue's goal: ≥ 70%), in ``--rounds`` rounds (3; the median
   is the figure: the load of a shared machine moves between runs). ``--loader-only``
   skips part 1. The in-process decode of the same records on each path prints first.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import uuid4

import sqlalchemy

from schemas import CANONICAL_EVENT, AvroSerde
from schemas.store import LocalSchemaStore
from sinks.aggregation.copy_format import text
from sinks.aggregation.seen import SeenKeys
from sinks.aggregation.warehouse import _QUOTED
from streams.aggregation.decode import (
    PYTHON,
    DecodePath,
    WireTimes,
    batch_rows,
    decode_path,
)
from streams.aggregation.logic import github
from streams.aggregation.logic.common import Context
from streams.aggregation.pipeline import Aggregation
from streams.aggregation.rows import encode_row
from streams.aggregation.transform import transform
from streams.road import RoadRecord
from synapseops import headers as h
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from tests.fixtures import SAMPLES
from tests.integration.aggregation.events import create_topic, encoded_events, produce_all
from tests.integration.aggregation.loader_process import LoaderProcess
from tests.integration.databases import fresh_database

BATCH = 500


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rows_at_least(engine: sqlalchemy.Engine, group: str, wanted: int) -> int:
    """Block until the loaders stored offsets past ``wanted`` rows; how many then. The
    offsets commit with the rows, and reading them costs PostgreSQL nothing: a
    ``count(*)`` of warehouse.events every 20 ms (as before) scanned the growing table beside
    the COPYs it measured, and took a good part of a shared core from them."""
    statement = sqlalchemy.text(
        "SELECT coalesce(sum(next_offset), 0) FROM warehouse.loader_offsets WHERE group_id = :g"
    )
    while True:
        with engine.connect() as conn:
            done = int(conn.execute(statement, {"g": group}).scalar_one())
        if done >= wanted:
            return done
        time.sleep(0.02)


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


class _Message:
    """What the loader reads of a consumed message, for the in-process decode figure."""

    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def bench_decode(events: list[tuple[bytes, bytes]]) -> None:
    """Records to COPY rows in process, batches of 5,000, on each path: CPU µs per row."""
    store = LocalSchemaStore()
    wire = WireTimes(store, CANONICAL_EVENT)
    topic = text("bench")
    messages = [_Message(value, n) for n, (_, value) in enumerate(events)]

    def fallback(message: _Message) -> bytes | None:
        return encode_row(wire.decode(message.value()), topic, 0, message.offset())

    for path in (decode_path(store, CANONICAL_EVENT), DecodePath(PYTHON, None, "fastavro")):
        started = time.process_time()
        for start in range(0, len(messages), 5000):
            batch_rows(messages[start : start + 5000], topic, path, fallback)
        cpu = time.process_time() - started
        say(
            f"decode to COPY rows in process, {path.name} path: "
            f"{cpu / len(messages) * 1e6:.2f} µs CPU/row ({path.reason})"
        )


def _assigned(process: LoaderProcess) -> set[int] | None:
    """The partitions of the loader's last assignment (None before its first)."""
    found = None
    for line in process.log_text().splitlines():
        if '"partitions assigned"' in line:
            found = {int(p) for p in json.loads(line).get("offsets", {})}
    return found


def _group_stable(processes: list[LoaderProcess]) -> None:
    """Wait until every loader holds its share of the 6 partitions. Started before the
    events are produced: the first loader up would take all partitions and load everything
    before the next one's join moved half of them (the test broker delays no initial
    rebalance, the loader's assignment is eager), and the rate would be a rebalance's."""
    while True:
        held = [share for share in map(_assigned, processes) if share]
        if len(held) == len(processes) and sum(map(len, held)) == len(set().union(*held)) == 6:
            return
        time.sleep(0.05)


def bench_loader(
    settings: Settings, url: str, events: list[tuple[bytes, bytes]], loaders: int
) -> tuple[float, float]:
    """``loaders`` ``synapseops loader`` processes in one group, once each holds its
    partitions of a fresh topic, load ``events`` produced to it into ``url``: rows/s from
    the first batch committed to the last, and the loaders' CPU µs per row (the figure a
    shared machine does not move)."""
    topic = f"bench-canonical-{uuid4().hex[:8]}"
    create_topic(settings.kafka.bootstrap, topic)
    engine = sqlalchemy.create_engine(url)
    group = f"bench-loader-{uuid4().hex[:6]}"
    with TemporaryDirectory() as tmp:
        processes = []
        for n in range(loaders):
            (Path(tmp) / str(n)).mkdir()
            processes.append(
                LoaderProcess(
                    settings.kafka.bootstrap, url, Path(tmp) / str(n), topic=topic, group_id=group
                )
            )
        for process in processes:
            process.start()
        pids = [process.process.pid for process in processes if process.process]
        try:
            _group_stable(processes)
            cpu = sum(map(cpu_s, pids))
            produce_all(settings.kafka.bootstrap, topic, events)
            first = _rows_at_least(engine, group, 1)
            started = time.perf_counter()
            done = _rows_at_least(engine, group, len(events))
            seconds, cpu = time.perf_counter() - started, sum(map(cpu_s, pids)) - cpu
        finally:
            for process in processes:
                process.stop()
    engine.dispose()
    # CPU over every row (from before the produce): a window of a few batches is a few
    # clock ticks of a loader that mostly waits on PostgreSQL
    return (done - first) / seconds, cpu / done * 1e6


def _dump(url: str, binary: bool) -> bytes:
    """The loaded rows as COPY data, text or binary, written by PostgreSQL itself."""
    engine = sqlalchemy.create_engine(url)
    raw = engine.raw_connection()
    try:
        out = io.BytesIO()
        options = " (FORMAT binary)" if binary else ""
        raw.cursor().copy_expert(
            f"COPY (SELECT {_QUOTED} FROM warehouse.events) TO STDOUT{options}", out
        )
        return out.getvalue()
    finally:
        raw.close()
        engine.dispose()


def bench_raw_copy(url: str, data: bytes, binary: bool) -> tuple[float, float]:
    """Rows/s of one COPY of ``data``, and PostgreSQL's CPU µs per row for it (its backend
    runs on this machine)."""
    engine = sqlalchemy.create_engine(url)
    raw = engine.raw_connection()
    options = " (FORMAT binary)" if binary else ""
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
        cpu = cpu_s(backend)
        started = time.perf_counter()
        cursor.copy_expert(
            f"COPY warehouse.events ({_QUOTED}) FROM STDIN{options}", io.BytesIO(data), size=1 << 20
        )
        raw.commit()
        seconds, cpu = time.perf_counter() - started, cpu_s(backend) - cpu
        cursor.execute("SELECT count(*) FROM warehouse.events")
        (rows,) = cursor.fetchone()
    finally:
        raw.close()
        engine.dispose()
    return int(rows) / seconds, cpu / int(rows) * 1e6


def run(options: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="bench aggregation")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--loader-only", action="store_true", help="skip the transformation rows")
    parser.add_argument("--rounds", type=int, default=3, help="loader vs raw COPY rounds")
    args = parser.parse_args(list(options))
    settings = Settings()
    say(f"load average before: {os.getloadavg()[0]:.2f} (nproc {os.cpu_count()})")
    if not args.loader_only:
        bench_transform(min(args.events, 20_000))
        with fresh_database(settings.database_url, "bench_agg_stage") as url:
            bench_pipeline_stage(settings, url, min(args.events, 20_000))
    events = encoded_events(f"bench-{uuid4().hex[:6]}", args.events)
    bench_decode(events)
    ratios: dict[int, list[float]] = {1: [], 2: []}
    data: dict[str, bytes] = {}
    for round_ in range(1, args.rounds + 1):
        say(f"round {round_} of {args.rounds}, load average {os.getloadavg()[0]:.2f}:")
        ratios_now = _round(settings, events, data)
        for loaders, ratio in ratios_now.items():
            ratios[loaders].append(ratio)
    for loaders, found in ratios.items():
        say(
            f"loader, {loaders} process(es), over {len(found)} round(s): median "
            f"{statistics.median(found):.0%} of the faster raw COPY of its round "
            f"({', '.join(f'{r:.0%}' for r in found)}); load average now "
            f"{os.getloadavg()[0]:.2f}"
        )


def _round(
    settings: Settings, events: list[tuple[bytes, bytes]], data: dict[str, bytes]
) -> dict[int, float]:
    """One round: a raw COPY of each format, then the loader with 1 and 2 processes, each
    into a fresh database, side by side in time (a shared machine's load moves between
    rounds); each loader's rows/s over the faster raw COPY of the round."""
    rates: dict[int, tuple[float, float]] = {}
    for loaders in (1, 2):
        with fresh_database(settings.database_url, "bench_agg_loader") as url:
            rates[loaders] = bench_loader(settings, url, events, loaders)
            if not data:
                data |= {"text": _dump(url, False), "binary": _dump(url, True)}
    copies: dict[str, tuple[float, float]] = {}
    for name in ("text", "binary"):
        with fresh_database(settings.database_url, "bench_agg_copy") as url:
            copies[name] = bench_raw_copy(url, data[name], name == "binary")
    best = max(rate for rate, _ in copies.values())
    for name, (rate, cpu) in copies.items():
        say(
            f"  raw COPY ({name}) of the same rows into warehouse.events: {rate:,.0f} rows/s "
            f"(PostgreSQL {cpu:.1f} µs CPU/row)"
        )
    for loaders, (rate, cpu) in rates.items():
        say(
            f"  loader, {loaders} process(es) in one group: {rate:,.0f} rows/s ({len(events):,} "
            f"events, 6 partitions, batches of up to {settings.loader.batch_size}; loader "
            f"{cpu:.1f} µs CPU/row): {rate / best:.0%} of the faster raw COPY"
        )
    return {loaders: rate / best for loaders, (rate, _) in rates.items()}
