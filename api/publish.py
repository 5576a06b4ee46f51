"""The one step every ingress shares: hand the raw body to Kafka and wait for acks=all.

Routes answer 2xx only after :func:`publish_event` returned. When Kafka does not take the
record it counts the request as ``unavailable`` and re-raises
:class:`~synapseops.errors.KafkaUnavailable`; each route answers 503 with ``Retry-After`` in
its own body shape (:func:`unavailable` is the plain one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, status

from api import metrics
from synapseops.errors import KafkaUnavailable
from synapseops.kafka import AsyncProducer, Headers
from synapseops.logging import get_logger

log = get_logger(__name__)

# Seconds a sender is asked to wait before trying again when Kafka is unavailable.
RETRY_AFTER_S = 5


async def publish_event(
    producer: AsyncProducer,
    topic: str,
    body: bytes,
    *,
    key: bytes,
    headers: Headers,
    label: str,
    log_fields: Mapping[str, Any],
) -> tuple[int, int]:
    """``(partition, offset)`` once the record is durable; counts and logs the acceptance."""
    try:
        partition, offset = await producer.send(topic, body, key=key, headers=headers)
    except KafkaUnavailable:
        metrics.INGRESS_REQUESTS.labels(source=label, outcome=metrics.UNAVAILABLE).inc()
        log.warning("ingress event not accepted: kafka unavailable", extra=dict(log_fields))
        raise
    metrics.INGRESS_REQUESTS.labels(source=label, outcome=metrics.ACCEPTED).inc()
    metrics.INGRESS_BYTES.labels(source=label).inc(len(body))
    log.info(
        "ingress event accepted",
        extra={**log_fields, "partition": partition, "offset": offset, "bytes": len(body)},
    )
    return partition, offset


def unavailable(exc: KafkaUnavailable) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"event not accepted, try again: {exc}",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
