"""The one publisher of notification triggers: a typed :class:`NotificationTrigger` in, Avro out.

Every producer of triggers goes through it — the dead-letter store (``dead_letter``), the
payment gateway (``large_payment``), and whatever a next service fires — so each trigger is
validated by the same model (a bad one fails at its producer, with a field name) and encoded
with the same schema ids (``schemas/``) onto ``synapseops.notifications.triggers``, with a
``traceparent`` that continues its cause's trace.

Encoding may ask the schema registry (``SYNAPSEOPS_SCHEMA_REGISTRY_URL``) until the worker
registered the subjects at start; :meth:`TriggerPublisher.publish` therefore encodes off the
event loop. A producer that must tell an encoding failure (permanent: the record does not fit
the schema) from a send failure (retryable) calls :meth:`~TriggerPublisher.encode_off_loop`
and :meth:`~TriggerPublisher.send` itself, as the dead-letter store does.
"""

from __future__ import annotations

import asyncio

from schemas.models import NotificationTrigger
from schemas.serde import AvroSerde
from schemas.store import schema_store
from synapseops import headers as kh
from synapseops.ids import child_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings
from topics.registry import NOTIFICATION_TRIGGERS


class TriggerEncoder:
    """``notification_trigger`` records as Avro (Confluent wire format), with the schema ids
    of the configured store: the registry when one is configured, else the schema files."""

    def __init__(self, settings: Settings) -> None:
        store = schema_store(settings.schema_registry)
        self._serde = AvroSerde(store, NOTIFICATION_TRIGGERS.value_schema)

    def encode(self, trigger: NotificationTrigger) -> bytes:
        return self._serde.encode(trigger.to_record())


class TriggerPublisher:
    """Publishes triggers with ``producer`` (``acks=all``) to ``topic``."""

    def __init__(
        self,
        producer: AsyncProducer,
        settings: Settings,
        *,
        topic: str = NOTIFICATION_TRIGGERS.name,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.encoder = TriggerEncoder(settings)

    async def publish(
        self, trigger: NotificationTrigger, *, key: bytes, traceparent: str | None
    ) -> None:
        """Encode and send one trigger; its delivery is durable when this returns."""
        await self.send(await self.encode_off_loop(trigger), key=key, traceparent=traceparent)

    async def encode_off_loop(self, trigger: NotificationTrigger) -> bytes:
        return await asyncio.to_thread(self.encoder.encode, trigger)

    async def send(self, value: bytes, *, key: bytes, traceparent: str | None) -> None:
        """Send an encoded trigger, continuing ``traceparent``'s trace (or starting one)."""
        headers = [(kh.TRACEPARENT, child_traceparent(traceparent).encode())]
        await self.producer.send(self.topic, value, key=key, headers=headers)
