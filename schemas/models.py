"""Pydantic models of the records other teams consume, matching the newest Avro schemas.

They validate before anything is encoded, so a bad record fails at its producer with a field
name, not at a consumer with a byte offset. Types are strict where coercion would hide a bug:
``"1"`` is not an int here, a naive datetime is not a point in time, ids are not blank.

``to_record()`` gives the dict :class:`schemas.serde.AvroSerde` encodes; ``from_record()``
validates a decoded one (:class:`~synapseops.errors.SchemaInvalid` if it does not fit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from synapseops.errors import SchemaInvalid

# Avro ``long`` is a signed 64-bit integer.
AVRO_LONG_MIN, AVRO_LONG_MAX = -(2**63), 2**63 - 1

NonBlank = Annotated[StrictStr, Field(min_length=1, max_length=512, pattern=r"\S")]
# snake_case kinds and types: a typo such as "dead-letter" fails here, not in routing.
Identifier = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
TraceId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{32}$")]
AvroLong = Annotated[StrictInt, Field(ge=AVRO_LONG_MIN, le=AVRO_LONG_MAX)]
AttributeValue = StrictBool | AvroLong | StrictFloat | StrictStr | None

# The trigger kinds the platform itself fires. A service may fire others (any snake_case name).
DEAD_LETTER = "dead_letter"
LARGE_PAYMENT = "large_payment"
INTEGRATION_FAILURE = "integration_failure"
SYNC_CONFLICT = "sync_conflict"  # a CRM field held for a person (manual policy)
KNOWN_TRIGGER_KINDS = frozenset({DEAD_LETTER, LARGE_PAYMENT, INTEGRATION_FAILURE})
SUMMARY_MAX_CHARS = 500

# Where a Data Aggregation event came from (data source kinds in docs/ARCHITECTURE.md).
KNOWN_SOURCE_TYPES = frozenset({"api_polling", "stream", "bulk_upload", "webhook"})


class _AvroModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_record(self) -> dict[str, Any]:
        """The dict for :meth:`AvroSerde.encode` (datetimes stay aware datetimes)."""
        return self.model_dump(mode="python")

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        try:
            return cls.model_validate(record)
        except ValidationError as exc:
            raise SchemaInvalid(f"{cls.__name__} is invalid: {exc}") from exc


class NotificationTrigger(_AvroModel):
    """Subject ``notification_trigger`` (v2) on ``synapseops.notifications.triggers``."""

    kind: Identifier
    pipeline: NonBlank
    subject_id: NonBlank
    summary: Annotated[StrictStr, Field(min_length=1, max_length=SUMMARY_MAX_CHARS)]
    details: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    occurred_at: AwareDatetime
    trace_id: TraceId
    severity: Literal["info", "warning", "critical"] = "warning"
    dedup_key: NonBlank | None = None


class LogBody(_AvroModel):
    """The OpenTelemetry log record inside a :class:`CanonicalEvent` (Avro ``LogBody``).

    ``body``, ``resource`` and ``attributes`` are JSON text (AnyValue is recursive); the
    times are nanoseconds since the epoch, as OTLP sends them.
    """

    time_unix_nano: AvroLong
    observed_time_unix_nano: AvroLong
    severity_number: Annotated[StrictInt, Field(ge=0, le=24)] = 0
    severity_text: StrictStr | None = None
    body: StrictStr | None = None
    resource: StrictStr = "{}"
    attributes: StrictStr = "{}"
    trace_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    span_id: Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{16}$")] | None = None
    event_name: StrictStr | None = None


class CanonicalEvent(_AvroModel):
    """Subject ``canonical_event`` (v3): a CloudEvents envelope with an OTel-log body.

    ``source`` + ``id`` is unique: the de-duplication key of the pipeline and the warehouse.
    """

    id: NonBlank
    source: NonBlank
    specversion: Literal["1.0"] = "1.0"
    type: NonBlank
    time: AwareDatetime
    subject: NonBlank | None = None
    source_type: Identifier
    ingested_at: AwareDatetime
    actor_id: NonBlank | None = None
    attributes: dict[StrictStr, AttributeValue] = Field(default_factory=dict)
    trace_id: TraceId
    tags: list[NonBlank] = Field(default_factory=list)
    raw_ref: NonBlank | None = None
    body: LogBody | None = None

    @field_validator("time", "ingested_at")
    @classmethod
    def _millis(cls, value: datetime) -> datetime:
        # The schema holds milliseconds (the body keeps nanoseconds): an event equals its
        # own round trip through Avro only if it holds no more than that.
        return value.replace(microsecond=value.microsecond // 1000 * 1000)

    @field_validator("attributes", mode="before")
    @classmethod
    def _ints_fit_a_long(cls, value: Any) -> Any:
        # Without this an int past 2**63 would slip into the float branch and lose digits.
        if isinstance(value, dict):
            for key, item in value.items():
                is_int = isinstance(item, int) and not isinstance(item, bool)
                if is_int and not AVRO_LONG_MIN <= item <= AVRO_LONG_MAX:
                    raise ValueError(f"attribute {key!r} does not fit a 64-bit long: {item}")
        return value
