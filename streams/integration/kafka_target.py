"""A flow whose target is a Kafka topic: what makes such a target valid, and the record a
delivery produces. Pure: no I/O.

A target endpoint of a ``kafka`` connector names its topic in ``kafka_topic`` and, in its
``config``, ``key``: a path into the *mapped output* (``source_order_id``, ``customer.id``)
whose value becomes the record's key, so one entity's records stay in order on one partition.
The topic passes the same rules as a Kafka-topic source's (:func:`~streams.integration.
source_config.source_topic_problem`: a literal name, never a platform or internal topic — a
flow producing into ``integration.events`` or a tier would forge the platform's own input).

The record's value is the mapped output as exact JSON, byte for byte what an HTTP target gets
as its body. Its headers say which delivery it is: ``Idempotency-Key`` (the flow's key for the
source event, the same as an HTTP target gets, and the same on every attempt) so a consumer
dedupes a record produced again after a crash; ``synapseops-run-id`` the Run that produced it;
the source event id, the flow id and the trace. ``Idempotency-Key`` is not a platform header,
so a flow chained on this topic can name it as its ``event_id_header``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.integration.source_config import ReservedTopics, checked_path, source_topic_problem
from streams.mapping import dump_output, resolve
from synapseops import headers as kh
from synapseops.errors import SchemaInvalid

RUN_ID_HEADER = "synapseops-run-id"
JSON_CONTENT_TYPE = "application/json"


class KafkaTargetConfig(BaseModel):
    """Options of a Kafka target endpoint (its ``config``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("key")
    @classmethod
    def _a_path(cls, value: str | None) -> str | None:
        return checked_path(value)


@dataclass(frozen=True)
class KafkaTarget:
    """Where a Kafka-target flow produces: the topic, and the output path of the key."""

    connector: str
    topic: str
    key_path: str | None = None


def target_topic_problem(topic: str | None, reserved: ReservedTopics) -> str | None:
    """Why a Kafka target may not produce to ``topic``; ``None`` when it may."""
    if topic is None or not topic.strip():
        return "a kafka target endpoint needs kafka_topic"
    if topic in reserved.names or topic.startswith(reserved.prefixes):
        return (
            f"kafka_topic {topic!r} is a platform or internal topic; a flow producing to it "
            "would forge the platform's own records"
        )
    return source_topic_problem(topic, reserved)  # the name rules: one literal topic


def kafka_target_problems(endpoint: Mapping[str, Any], reserved: ReservedTopics) -> list[str]:
    """Every problem of a target endpoint of a ``kafka`` connector (empty: valid)."""
    problem = target_topic_problem(endpoint.get("kafka_topic"), reserved)
    problems = [problem] if problem else []
    config = endpoint.get("config") or {}
    if not isinstance(config, Mapping):
        return [*problems, "config must be a JSON object"]
    # A target endpoint's config may also carry the HTTP options (timeout_s, headers) when the
    # connector changes kind; only the Kafka options are read here.
    try:
        KafkaTargetConfig.model_validate({"key": config.get("key")})
    except ValidationError as exc:
        problems += [f"config.key: {error['msg']}" for error in exc.errors()]
    return problems


def kafka_target(connector: str, endpoint: Mapping[str, Any]) -> KafkaTarget:
    """The target of an endpoint :func:`kafka_target_problems` accepted."""
    config = endpoint.get("config") or {}
    return KafkaTarget(connector, str(endpoint.get("kafka_topic")), config.get("key"))


def record_key(target: KafkaTarget, output: Mapping[str, Any]) -> bytes | None:
    """The record key: the output's value at ``key_path`` as text (``None`` without a path).

    Raises :class:`SchemaInvalid` (fatal) when the output has no scalar there: a record keyed
    by nothing would lose the entity's order.
    """
    if target.key_path is None:
        return None
    value = resolve(output, target.key_path)
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        raise SchemaInvalid(
            f"the mapped output has no scalar at {target.key_path!r} for the record key"
        )
    return (value if isinstance(value, str) else dump_output(value).decode()).encode()


def record_headers(
    *, idempotency_key: str, run_id: int, event_id: str, flow_id: int, traceparent: str | None
) -> list[tuple[str, bytes]]:
    """The headers of a produced record (see the module's docstring)."""
    headers = [
        ("Idempotency-Key", idempotency_key.encode()),
        (RUN_ID_HEADER, str(run_id).encode()),
        (kh.EVENT_ID, event_id.encode()),
        (kh.FLOW_ID, str(flow_id).encode()),
        (kh.CONTENT_TYPE, JSON_CONTENT_TYPE.encode()),
    ]
    if traceparent:
        headers.append((kh.TRACEPARENT, traceparent.encode()))
    return headers
