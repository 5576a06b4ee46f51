"""The warehouse loader: ``synapseops loader``, its own process, a consumer of the canonical
topic writing ``warehouse.events`` exactly once.

A :class:`~streams.consumer.ConsumerLoop` in the group ``SYNAPSEOPS_LOADER_GROUP_ID`` (more
loaders share the partitions). Kafka's committed offsets are not what it trusts: the offsets
live in ``warehouse.loader_offsets``, written in the transaction that writes the rows
(:class:`~sinks.aggregation.warehouse.Warehouse`), and on every assignment the loader seeks
each partition to its stored offset (the beginning when none is stored). A crash anywhere —
``kill -9`` in the middle of a COPY — leaves either the batch with its offsets or neither, so
no event is lost or doubled. It commits the same offsets to Kafka afterwards, best effort,
only so that lag is visible to the usual tools.

One write is in flight while the next batch is decoded (the CPU work and PostgreSQL's
overlap); a batch is settled — metrics, the lag commit — when the next one is ready or the
loop is idle. A batch whose write fails (the database is down) is read again, with the one
taken after it: the partitions are sought
back to the batch's first offsets and the loader waits, doubling from
``SYNAPSEOPS_LOADER_RETRY_INITIAL_S`` up to 30 s. A record that does not decode is logged
with its coordinates and counted (``synapseops_loader_rows_total{outcome="undecodable"}``)
and its offset passes: one bad record never stalls a partition. So does a row the warehouse
refuses for its data (JSON PostgreSQL cannot store, a NUL in text):
``outcome="rejected"``, logged with its coordinates and PostgreSQL's reason.

Records become binary COPY rows in one buffer per batch: records of the newest schema in
the compiled transcoder when it is built for that schema, every other one with timestamps
as the wire's longs (:class:`~streams.aggregation.decode.WireTimes`) through
:func:`~streams.aggregation.rows.encode_row`: no ``datetime``, no JSON parsed in Python
(:func:`~streams.aggregation.decode.decode_path`; the path is logged when it changes and
counted in ``synapseops_loader_decoded_rows_total{path}``). A record whose values no row
can hold (a time past 64-bit microseconds) is ``outcome="rejected"`` too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from schemas import AvroSerde
from sinks.aggregation.copy_format import CopyRows, text
from sinks.aggregation.warehouse import Loaded, Warehouse
from streams.aggregation import metrics
from streams.aggregation.columns import ExtraColumn, extra_columns
from streams.aggregation.decode import (
    NATIVE,
    PYTHON,
    DecodePath,
    WireTimes,
    batch_rows,
    decode_path,
)
from streams.aggregation.rows import encode_row
from streams.consumer import ConsumerLoop
from synapseops.errors import SynapseOpsError
from synapseops.logging import get_logger
from topics.registry import CANONICAL_EVENTS

log = get_logger(__name__)

RETRY_MAX_S = 30.0
INFLIGHT_POLL_S = 0.02  # the poll while a write is in flight (see poll_timeout)


@dataclass(frozen=True)
class _Batch:
    """Where a batch starts and ends per partition, and when it was taken."""

    first: dict[int, int]
    next_offsets: dict[tuple[str, int], int]
    started: float
    # (partition, offset) of each row handed to the warehouse, in row order
    coordinates: list[tuple[int, int]]
    # the columns newer schema fields brought, written after the base ones in every row
    extras: tuple[ExtraColumn, ...] = ()

    @classmethod
    def of(cls, messages: list[Message], topic: str) -> _Batch:
        first: dict[int, int] = {}
        next_offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            partition, offset = message.partition() or 0, message.offset() or 0
            first.setdefault(partition, offset)
            next_offsets[(message.topic() or topic, partition)] = offset + 1
        return cls(first, next_offsets, time.monotonic(), [])

    @property
    def extra_columns(self) -> list[tuple[str, str]]:
        return [(column.name, column.sql_type) for column in self.extras]


class WarehouseLoader(ConsumerLoop):
    def __init__(
        self,
        config: dict[str, Any],
        warehouse: Warehouse,
        serde: AvroSerde,
        *,
        batch_size: int,
        retry_initial_s: float = 0.5,
        topic: str = CANONICAL_EVENTS.name,
    ) -> None:
        super().__init__(config, name="loader", batch_size=batch_size)
        self.warehouse = warehouse
        # The serde's store and subject, read with timestamps as the wire's longs.
        self.decoder = WireTimes(serde.store, serde.subject)
        self.topic = topic
        self.retry_initial_s = retry_initial_s
        self._backoff = retry_initial_s
        self.loaded = 0
        self.last_poll = time.monotonic()
        self._inflight: tuple[asyncio.Future[Loaded], _Batch, int] | None = None
        self._extras: tuple[int, tuple[ExtraColumn, ...]] = (-1, ())
        self._path: tuple[int, DecodePath] = (-1, DecodePath(PYTHON, None, "not chosen yet"))
        self._encoded_topic = text(topic)

    def subscription(self) -> list[str]:
        return [self.topic]

    def poll_timeout(self) -> float:
        # A write in flight is settled (rows counted, offsets committed to Kafka for the
        # lag tools) on a loop turn after it finished. Poll briefly until then: with the
        # full wait, records trickling in one per poll (the market feed) left the group's
        # lag one batch behind for ever, and a loader that kept up read as lagging.
        if self._inflight is not None:
            return INFLIGHT_POLL_S
        return super().poll_timeout()

    async def after_poll(self, consumer: Consumer) -> None:
        self.last_poll = time.monotonic()  # what /health reads

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Seek every gained partition to its stored offset (runs inside poll, blocking)."""
        stored = self.warehouse.offsets(self.topic, [tp.partition for tp in partitions])
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info(
            "partitions assigned",
            extra={
                "consumer": self.name,
                "offsets": {tp.partition: tp.offset for tp in partitions},
            },
        )

    def _extra_columns(self) -> tuple[ExtraColumn, ...]:
        """The columns the newest schema's fields beyond the base ones need (once per id)."""
        latest_id, schema = self.decoder.store.latest(self.decoder.subject)
        if latest_id != self._extras[0]:
            try:
                found = extra_columns(schema)
            except SynapseOpsError as exc:
                log.error("new canonical fields not loaded", extra={"error": str(exc)})
                found = ()
            self._extras = (latest_id, found)
            log.info(
                "warehouse columns of the newest schema",
                extra={"schema_id": latest_id, "extra": [column.name for column in found]},
            )
        return self._extras[1]

    def _decode_path(self) -> DecodePath:
        """Native or Python for records of the newest schema (once per newest id, logged)."""
        latest_id, _ = self.decoder.store.latest(self.decoder.subject)
        if latest_id != self._path[0]:
            path = decode_path(self.decoder.store, self.decoder.subject)
            self._path = (latest_id, path)
            log.info(
                "loader decode path",
                extra={"path": path.name, "reason": path.reason, "schema_id": latest_id},
            )
        return self._path[1]

    def _python_row(self, message: Message, extras: tuple[ExtraColumn, ...]) -> bytes | None:
        """One record's row on the Python path; None (logged, counted) when it does not
        decode or its values fit no row: its offset passes."""
        partition, offset = message.partition() or 0, message.offset() or 0
        try:
            record = self.decoder.decode(message.value() or b"")
        except SynapseOpsError as exc:
            self._skip("undecodable", "it does not decode", partition, offset, exc)
            return None
        try:
            return encode_row(record, self._encoded_topic, partition, offset, extras)
        except SynapseOpsError as exc:
            self._skip("rejected", "its values fit no warehouse row", partition, offset, exc)
            return None

    def _skip(self, outcome: str, why: str, partition: int, offset: int, exc: Exception) -> None:
        metrics.LOADED_ROWS.labels(outcome).inc()
        log.error(
            f"canonical record skipped: {why}",
            extra={
                "topic": self.topic,
                "partition": partition,
                "offset": offset,
                "error": str(exc),
            },
        )

    def _rows(self, messages: list[Message], batch: _Batch) -> CopyRows:
        """The batch as binary COPY rows, ``batch.coordinates`` filled alongside; a record
        that does not decode is logged, counted and left out (its offset passes)."""
        path = self._decode_path()  # never native when the newest schema has extra fields
        data, ends, coordinates, native = batch_rows(
            messages,
            self._encoded_topic,
            path,
            functools.partial(self._python_row, extras=batch.extras),
        )
        batch.coordinates.extend(coordinates)
        metrics.DECODED_ROWS.labels(NATIVE).inc(native)
        metrics.DECODED_ROWS.labels(PYTHON).inc(len(ends) - native)
        return CopyRows(data, ends)

    async def on_messages(self, consumer: Consumer, messages: list[Message]) -> None:
        """Decode this batch while the previous one is written, then hand this one to the
        writer: the CPU work and PostgreSQL's overlap (one write in flight at most)."""
        batch = _Batch.of(messages, self.topic)
        batch = dataclasses.replace(batch, extras=self._extra_columns())
        rows = self._rows(messages, batch)
        if not await self._settle(consumer, also=batch):
            return  # the write before failed: both batches are read again
        write = asyncio.ensure_future(
            asyncio.to_thread(self.warehouse.load, rows, batch.next_offsets, batch.extra_columns)
        )
        self._inflight = (write, batch, len(rows))

    async def before_poll(self) -> None:
        # A write that finished while nothing new came: its outcome now, nothing is taken yet.
        if self._inflight is not None and self._inflight[0].done() and self.consumer:
            await self._settle(self.consumer)

    async def on_stopped(self) -> None:
        if self._inflight is not None:  # its transaction holds rows and offsets together
            await asyncio.gather(self._inflight[0], return_exceptions=True)
            self._inflight = None

    async def _settle(self, consumer: Consumer, also: _Batch | None = None) -> bool:
        """Wait for the write in flight; whether it landed. If it failed, every partition of
        it and of ``also`` is sought back to its first record, and the loader waits."""
        if self._inflight is None:
            return True
        write, batch, count = self._inflight
        self._inflight = None
        try:
            loaded = await write
        except SynapseOpsError as exc:
            log.warning(
                "warehouse load failed; reading the batch again",
                extra={
                    "consumer": self.name,
                    "rows": count,
                    "error": str(exc),
                    "wait_s": self._backoff,
                },
            )
            first = dict(batch.first)
            for partition, offset in (also.first if also else {}).items():
                first[partition] = min(first.get(partition, offset), offset)
            for partition, offset in first.items():
                await self.call(self.rewind, consumer, self.topic, partition, offset)
            await self.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, RETRY_MAX_S)
            return False
        self._backoff = self.retry_initial_s
        self.loaded += loaded.inserted
        if loaded.skipped:
            # Rows already there: a pipeline's at-least-once copy on the wire, or a batch
            # loaded twice (which the stored offsets exist to prevent).
            log.warning(
                "rows already in the warehouse skipped",
                extra={"consumer": self.name, "skipped": loaded.skipped, "rows": count},
            )
        for index, reason in loaded.rejected:
            partition, offset = batch.coordinates[index]
            log.error(
                "canonical record skipped: the warehouse refused its row",
                extra={
                    "topic": self.topic,
                    "partition": partition,
                    "offset": offset,
                    "error": reason,
                },
            )
        metrics.LOADED_ROWS.labels("rejected").inc(len(loaded.rejected))
        metrics.LOADED_ROWS.labels("inserted").inc(loaded.inserted)
        metrics.LOADED_ROWS.labels("skipped").inc(loaded.skipped)
        metrics.LOAD_SECONDS.observe(time.monotonic() - batch.started)
        commits = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in batch.next_offsets.items()
        ]
        await self.call(self._commit_quietly, consumer, commits)
        return True

    def _commit_quietly(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        # For lag tools only: the truth is in warehouse.loader_offsets.
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except Exception:  # noqa: BLE001 - best effort by design
            log.debug("lag commit refused", extra={"consumer": self.name})
