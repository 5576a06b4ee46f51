"""The two ways the API hands a record to Kafka: ingress events and commands, acks=all.

Routes answer 2xx only after :func:`publish_event` / :func:`publish_command` returned. Both
stamp the record's message kind (``synapseops-message-kind``): the road dispatches on it, so a
command that failed once is still that command on a retry tier or after a replay. An event's
kind is its topic's declared one (``topics/registry.py``); a command names its own.

When Kafka does not take an event, :func:`publish_event` counts the request as
``unavailable`` and re-raises :class:`~synapseops.errors.KafkaUnavailable`; each route answers
503 with ``Retry-After`` in its own body shape (:func:`unavailable` is the plain one). A record
Kafka refuses for good (:class:`~synapseops.errors.KafkaRejected`: too large for the topic)
is answered here: 413 for a size, 503 for a missing topic (the deployment is incomplete).
Commands answer 503 themselves (one body shape for every command route).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, status

from api import metrics
from synapseops import headers as kh
from synapseops.errors import KafkaRejected, KafkaUnavailable
from synapseops.headers import received_at_now
from synapseops.ids import new_id
from synapseops.kafka import AsyncProducer, Headers
from synapseops.logging import get_logger
from topics.registry import default_kind

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
    kind = default_kind(topic)
    stamped = kh.with_kind(headers, kind) if kind is not None else list(headers)
    try:
        partition, offset = await producer.send(topic, body, key=key, headers=stamped)
    except KafkaUnavailable:
        metrics.INGRESS_REQUESTS.labels(source=label, outcome=metrics.UNAVAILABLE).inc()
        log.warning("ingress event not accepted: kafka unavailable", extra=dict(log_fields))
        raise
    except KafkaRejected as exc:
        outcome = metrics.TOO_LARGE if exc.too_large else metrics.UNAVAILABLE
        metrics.INGRESS_REQUESTS.labels(source=label, outcome=outcome).inc()
        log.warning("ingress event refused by kafka", extra={**log_fields, "error": str(exc)})
        raise refused(exc) from exc
    metrics.INGRESS_REQUESTS.labels(source=label, outcome=metrics.ACCEPTED).inc()
    metrics.INGRESS_BYTES.labels(source=label).inc(len(body))
    log.info(
        "ingress event accepted",
        extra={**log_fields, "partition": partition, "offset": offset, "bytes": len(body)},
    )
    return partition, offset


@dataclass(frozen=True)
class Command:
    """A command for a pipeline: ``kind`` is one its topic declares (``TopicSpec.kinds``),
    ``name`` what it asks (``settlement.approve``), ``key`` orders it with its entity."""

    topic: str
    kind: str
    name: str
    key: bytes
    value: bytes
    traceparent: str


@dataclass(frozen=True)
class Published:
    command_id: str
    topic: str
    partition: int
    offset: int


async def publish_command(
    producer: AsyncProducer, command: Command, log_fields: Mapping[str, Any] | None = None
) -> Published:
    """Send ``command`` and wait for acks=all; HTTP 503 (with ``Retry-After``) if Kafka does
    not take it. Headers as ingress stamps them (``synapseops/headers.py``), source ``api``."""
    command_id = new_id("cmd")
    headers = kh.ingress_headers(
        event_id=command_id,
        source="api",
        event_type=command.name,
        received_at=received_at_now(),
        traceparent=command.traceparent,
    )
    headers.append((kh.MESSAGE_KIND, command.kind.encode()))
    where = {"command": command.name, "command_id": command_id, "topic": command.topic}
    try:
        partition, offset = await producer.send(
            command.topic, command.value, key=command.key, headers=headers
        )
    except KafkaUnavailable as exc:
        log.warning("command not accepted: kafka unavailable", extra=where)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{command.name} not accepted, try again: {exc}",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    except KafkaRejected as exc:
        raise refused(exc) from exc
    log.info(
        "command published",
        extra={**where, **(log_fields or {}), "partition": partition, "offset": offset},
    )
    return Published(command_id, command.topic, partition, offset)


def unavailable(exc: KafkaUnavailable) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"event not accepted, try again: {exc}",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def refused(exc: KafkaRejected) -> HTTPException:
    """The answer for a record Kafka will never take: 413 when too large, else 503."""
    if exc.too_large:
        return HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"too large for the event stream: {exc}"
        )
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"not accepted: the event stream is not set up for it ({exc})",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
