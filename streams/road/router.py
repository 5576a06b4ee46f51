"""The failure router: a failed record goes to its next retry tier or dead letter, durably.

The SAME key and value bytes are produced (nothing is re-encoded, so an undecodable record
stays exactly as it came); only the road's headers change (:mod:`streams.road.headers`), and
the record's message kind is stamped on it (:mod:`streams.road.kinds`), so wherever it waits
it is handled as what it is. :meth:`FailureRouter.route` returns once the broker has the record
on all in-sync replicas (acks=all), so the caller may commit the failed record's offset right
after.

A hand-off the broker refuses *for good* (:class:`~synapseops.errors.KafkaRejected`: too
large, unknown topic, invalid record) is not tried again: the record goes to its dead letter
instead, with that refusal as its error (the handler's own error kept in the message). Only a
:class:`~synapseops.errors.KafkaUnavailable` is left to the caller to try again.

Could the dead letter itself be too large? Road topics take four times what an input takes
(``topics/registry.py``: inputs 1 MiB, road 4 MiB, checked when a pipeline is declared), and a
record on the road is its input record plus bounded history headers, so it fits by
construction. If a broker refuses it anyway (a topic altered by hand), the dead letter becomes
a *marker*: the record's history, the refusal and the value's size, without the value — whose
bytes stay where the record was read (``synapseops-original-*`` and ``-value-at`` say where,
for that topic's retention). The alternative, holding the partition until someone raises the
limit, would lose nothing only until that same retention ran out, while stopping every record
behind it. A dead-letter topic that refuses even the marker (it does not exist) leaves the
refusal to the caller, which holds the record and keeps trying: there is nowhere else to go.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from streams.road import metrics
from streams.road.headers import MAX_MESSAGE_BYTES, HeaderList, truncate_head
from streams.road.record import RoadRecord
from streams.road.tiers import FATAL, RETRYABLE, Hop, next_hop
from synapseops import headers as kh
from synapseops.errors import KafkaRejected, KafkaUnavailable, UnknownKind
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.redaction import scrub

if TYPE_CHECKING:
    from streams.road.pipeline import Pipeline

log = get_logger(__name__)

# On a marker dead letter: how large the value was, and where its bytes still are.
VALUE_OMITTED = "synapseops-value-omitted-bytes"
VALUE_AT = "synapseops-value-at"


def _now_ms() -> int:
    return int(time.time() * 1000)


class FailureRouter:
    """Routes failed records of any pipeline through one shared durable producer."""

    def __init__(
        self,
        producer: AsyncProducer,
        *,
        clock_ms: Callable[[], int] = _now_ms,
        rng: random.Random | None = None,
    ) -> None:
        self._producer = producer
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()

    async def route(
        self, pipeline: Pipeline, record: RoadRecord, exc: BaseException, kind: str
    ) -> Hop:
        """Produce ``record`` to its next hop with its history updated; return the hop.

        Raises :class:`~synapseops.errors.KafkaUnavailable` if the broker did not take it
        (nor, when the hop was refused for good, its dead letter); the record must then not
        be committed.
        """
        now_ms = self._clock_ms()
        retry_after = getattr(exc, "retry_after", None) if kind == RETRYABLE else None
        hop = next_hop(
            record.history,
            pipeline.spec,
            now_ms,
            retry_after if isinstance(retry_after, int | float) else None,
            kind=kind,
            jitter=pipeline.jitter,
            rng=self._rng,
            max_retry_after_s=pipeline.max_retry_after_s,
        )
        try:
            await self._send(hop, record, self._headers(pipeline, record, exc, kind, hop, now_ms))
        except KafkaRejected as refused:
            if hop.dead:
                hop = await self._send_marker(pipeline, record, refused, exc, hop, now_ms)
            else:
                # The next hop will never take it: the dead letter says why, at once.
                hop = next_hop(record.history, pipeline.spec, now_ms, kind=FATAL)
                reason = KafkaRejected(
                    f"{refused} (the record had failed with {type(exc).__name__}: {exc})",
                    code=refused.code,
                )
                headers = self._headers(pipeline, record, reason, FATAL, hop, now_ms)
                try:
                    await self._send(hop, record, headers)
                except KafkaRejected as dead_refused:
                    hop = await self._send_marker(
                        pipeline, record, dead_refused, reason, hop, now_ms
                    )
                exc, kind = reason, FATAL
        self._count(pipeline, record, hop, exc, kind)
        return hop

    def _headers(
        self,
        pipeline: Pipeline,
        record: RoadRecord,
        exc: BaseException,
        kind: str,
        hop: Hop,
        now_ms: int,
    ) -> HeaderList:
        updated = record.history.after_failure(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp_ms,
            pipeline=pipeline.name,
            kind=kind,
            error=exc,
            trace=scrub("".join(traceback.format_exception(exc))),
            now_ms=now_ms,
            not_before_ms=hop.not_before_ms,
            retries=hop.retries,
        )
        # No secret in a dead letter's headers: scrubbed whole, before it is cut to size.
        updated = replace(updated, error_message=truncate_head(scrub(str(exc)), MAX_MESSAGE_BYTES))
        headers = updated.to_headers()
        try:
            return kh.with_kind(headers, pipeline.kind_of(record))
        except UnknownKind:
            return headers  # dead for that very reason; its headers stay as they came

    async def _send(self, hop: Hop, record: RoadRecord, headers: HeaderList) -> None:
        await self._producer.send(hop.topic, record.value, key=record.key, headers=headers)

    async def _send_marker(
        self,
        pipeline: Pipeline,
        record: RoadRecord,
        refused: KafkaRejected,
        cause: BaseException,
        hop: Hop,
        now_ms: int,
    ) -> Hop:
        """The dead letter without its value (module docstring); refusals other than size go
        back to the caller as :class:`KafkaUnavailable`: it keeps the record and tries again."""
        if not refused.too_large:
            raise KafkaUnavailable(f"the dead-letter topic refuses records: {refused}")
        why = KafkaRejected(
            f"{refused}; dead letter kept without its value (the record had failed with "
            f"{type(cause).__name__}: {cause})",
            code=refused.code,
        )
        headers = [
            (name, value)
            for name, value in self._headers(pipeline, record, why, FATAL, hop, now_ms)
            if name.startswith("synapseops-") or name == kh.TRACEPARENT
        ]
        headers += [
            (VALUE_OMITTED, str(len(record.value or b"")).encode()),
            (VALUE_AT, record.coordinates.encode()),
        ]
        try:
            await self._producer.send(hop.topic, None, key=record.key, headers=headers)
        except KafkaRejected as again:
            raise KafkaUnavailable(f"the dead-letter topic refuses a marker: {again}") from again
        log.error(
            "dead letter too large for its topic; stored as a marker without its value",
            extra=record.log_fields(pipeline.name)
            | {"hop": hop.topic, "bytes": len(record.value or b"")},
        )
        return hop

    def _count(
        self, pipeline: Pipeline, record: RoadRecord, hop: Hop, exc: BaseException, kind: str
    ) -> None:
        error_class = type(exc).__name__
        if hop.dead:
            metrics.DEAD_LETTERS.labels(pipeline.name, error_class).inc()
        else:
            metrics.RETRIES.labels(pipeline.name, str((hop.tier or 0) + 1)).inc()
            if hop.parked:
                metrics.PARKED.labels(pipeline.name).inc()
        log.info(
            "record routed to the dead letter" if hop.dead else "record routed to wait for a retry",
            extra=record.log_fields(pipeline.name)
            | {
                "hop": hop.topic,
                "attempt": record.history.attempt + 1,
                "error_kind": kind,
                "error_class": error_class,
                "not_before_ms": hop.not_before_ms,
            },
        )
