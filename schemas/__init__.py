"""Avro schemas (``schemas/avro/<subject>/v<N>.avsc``) of the topics other teams consume.

``store`` says where schemas live and which id names one, ``serde`` turns records into
Confluent wire-format bytes and back, ``models`` validates records before they are encoded.
"""

from schemas.serde import AvroSerde
from schemas.store import (
    ConfluentRegistryStore,
    LocalSchemaStore,
    SchemaStore,
    schema_store,
)

NOTIFICATION_TRIGGER = "notification_trigger"
CANONICAL_EVENT = "canonical_event"

__all__ = [
    "CANONICAL_EVENT",
    "NOTIFICATION_TRIGGER",
    "AvroSerde",
    "ConfluentRegistryStore",
    "LocalSchemaStore",
    "SchemaStore",
    "schema_store",
]
