"""The failure router: a failed record goes to its next retry tier or dead letter, durably.

The SAME key and value bytes are produced (nothing is re-encoded, so an undecodable record
stays exactly as it came); only the road's headers change (:mod:`streams.road.headers`).
:meth:`FailureRouter.route` returns once the broker has the record on all in-sync replicas
(acks=all), so the caller may commit the failed record's offset right after.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from streams.road import metrics
from streams.road.headers import MAX_MESSAGE_BYTES, truncate_head
from streams.road.record import RoadRecord
from streams.road.tiers import RETRYABLE, Hop, next_hop
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.redaction import scrub

if TYPE_CHECKING:
    from streams.road.pipeline import Pipeline

log = get_logger(__name__)


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

        Raises :class:`~synapseops.errors.KafkaUnavailable` if the broker did not take it;
        the record must then not be committed.
        """
        history = record.history
        now_ms = self._clock_ms()
        retry_after = getattr(exc, "retry_after", None) if kind == RETRYABLE else None
        hop = next_hop(
            history,
            pipeline.spec,
            now_ms,
            retry_after if isinstance(retry_after, int | float) else None,
            kind=kind,
            jitter=pipeline.jitter,
            rng=self._rng,
        )
        updated = history.after_failure(
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
        await self._producer.send(
            hop.topic, record.value, key=record.key, headers=updated.to_headers()
        )
        error_class = type(exc).__name__
        if hop.dead:
            metrics.DEAD_LETTERS.labels(pipeline.name, error_class).inc()
        else:
            metrics.RETRIES.labels(pipeline.name, str((hop.tier or 0) + 1)).inc()
        log.info(
            "record routed to the dead letter" if hop.dead else "record routed to a retry tier",
            extra={
                "pipeline": pipeline.name,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "hop": hop.topic,
                "attempt": updated.attempt,
                "error_kind": kind,
                "error_class": error_class,
                "not_before_ms": hop.not_before_ms,
            },
        )
        return hop
