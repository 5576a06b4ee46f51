"""The pydantic models: strict where coercion would hide a bug, and in step with the schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas import CANONICAL_EVENT, NOTIFICATION_TRIGGER
from schemas.models import CanonicalEvent, NotificationTrigger
from schemas.serde import AvroSerde
from schemas.store import LocalSchemaStore
from synapseops.errors import SchemaInvalid

STORE = LocalSchemaStore()
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _trigger(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "large_payment",
        "pipeline": "payment-settlement",
        "subject_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "summary": "payment of 1,902.00 USD",
        "details": {"amount_minor": "190200", "currency": "usd"},
        "occurred_at": WHEN,
        "trace_id": TRACE,
    } | overrides


def _event(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "evt_1",
        "source": "github",
        "source_type": "api_polling",
        "type": "pull_request.opened",
        "time": WHEN,
        "ingested_at": WHEN,
        "attributes": {"number": 2, "draft": False},
        "trace_id": TRACE,
    } | overrides


@pytest.mark.parametrize(
    ("model", "subject"),
    [(NotificationTrigger, NOTIFICATION_TRIGGER), (CanonicalEvent, CANONICAL_EVENT)],
)
def test_model_fields_are_the_newest_schema_fields(model: type[BaseModel], subject: str) -> None:
    _, schema = STORE.latest(subject)
    assert list(model.model_fields) == [field["name"] for field in schema["fields"]]


def test_a_valid_trigger_encodes_and_comes_back_equal() -> None:
    trigger = NotificationTrigger.model_validate(_trigger())
    serde = AvroSerde(STORE, NOTIFICATION_TRIGGER)
    assert (
        NotificationTrigger.from_record(serde.decode(serde.encode(trigger.to_record()))) == trigger
    )


def test_a_valid_event_encodes_and_comes_back_equal() -> None:
    event = CanonicalEvent.model_validate(_event(tags=["bot"], raw_ref="t/0/1"))
    serde = AvroSerde(STORE, CANONICAL_EVENT)
    assert CanonicalEvent.from_record(serde.decode(serde.encode(event.to_record()))) == event


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": "dead-letter"},  # not snake_case
        {"kind": "DeadLetter"},
        {"summary": ""},
        {"pipeline": "   "},
        {"occurred_at": datetime(2026, 3, 1, 12, 0)},  # naive: which 12:00?
        {"trace_id": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},  # not an id
        {"details": {"amount_minor": 190200}},  # strings only, no silent str()
        {"severity": "urgent"},
        {"colour": "red"},
    ],
)
def test_invalid_triggers_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NotificationTrigger.model_validate(_trigger(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {"attributes": {"n": 2**63}},  # beyond an Avro long
        {"attributes": {"n": [1, 2]}},  # no nested values in the warehouse map
        {"source_type": "API"},
        {"ingested_at": "2026-03-01T12:00:00"},  # naive
        {"id": ""},
        {"specversion": "0.3"},  # CloudEvents 1.0 only
    ],
)
def test_invalid_events_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CanonicalEvent.model_validate(_event(**overrides))


def test_attribute_types_are_not_coerced() -> None:
    event = CanonicalEvent.model_validate(_event(attributes={"n": "1", "b": True, "f": 1.5}))
    assert event.attributes == {"n": "1", "b": True, "f": 1.5}
    assert type(event.attributes["b"]) is bool


def test_from_record_wraps_validation_errors() -> None:
    with pytest.raises(SchemaInvalid, match="NotificationTrigger"):
        NotificationTrigger.from_record(_trigger(kind=""))
