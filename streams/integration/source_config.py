"""What makes a source endpoint's configuration valid: one check, on write and at run time.

The API refuses an endpoint these functions find problems with (422, the problems as the
reason); the REST poller and the Kafka-topic forwarder run the same functions over what they
read from the database and skip (and log) an endpoint that fails them — a row written before
this check existed, or by hand, must not stop the other endpoints. Pure: no I/O.

A polled REST source (connector protocol ``rest``, ``poll_interval_s`` set) reads its answer
as :class:`PollConfig` says; a Kafka-topic source (protocol ``kafka``) names one topic that
:func:`source_topic_problem` accepts: a literal name (no ``^regex`` subscription), not one of
the platform's own topics or namespaces (it would loop the platform's output back into its
input), not a Kafka-internal (``__*``) or Faust-internal (``<group>-…``) topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from streams.mapping.paths import PathSyntaxError, parse_source
from synapseops.settings import Settings
from topics.registry import platform_registry

# Kafka's own rule for topic names (kafka.common.internals.Topic): 1-249 of these characters.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
Scalar = str | int | float | bool


def checked_path(value: str | None) -> str | None:
    """``value`` when it is a path of the mapping language (or ``None``); else ValueError."""
    if value is not None:
        try:
            parse_source(value)
        except PathSyntaxError as exc:
            raise ValueError(str(exc)) from exc
    return value


class PollConfig(BaseModel):
    """How a polled REST source reads its answers (see ``streams/integration/poller.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor_param: str = Field(default="since", min_length=1, max_length=200)
    items_path: str = "items"
    next_cursor_path: str = "cursor"
    item_id_path: str = "id"
    entity_key_path: str | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)
    initial_cursor: Scalar | None = None

    @field_validator("items_path", "next_cursor_path", "item_id_path", "entity_key_path")
    @classmethod
    def _a_path(cls, value: str | None) -> str | None:
        return checked_path(value)

    @property
    def key_path(self) -> str:
        return self.entity_key_path or self.item_id_path


def is_platform_header(name: str) -> bool:
    """A header only the platform may set: every ``synapseops-*`` name (road and ingress,
    today's and any a next service adds) and the W3C trace context, which an ingress
    continues or starts itself. A foreign record's copies are dropped, never trusted."""
    lowered = name.lower()
    return lowered.startswith("synapseops-") or lowered in ("traceparent", "tracestate")


class KafkaSourceConfig(BaseModel):
    """Options of a Kafka-topic source (the endpoint's ``config``).

    ``event_id_header`` names the header of the user's records that holds their own event id
    (e.g. CloudEvents' ``ce_id``), so a record produced twice is delivered once; without it
    the id is the record's ``<topic>/<partition>/<offset>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id_header: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("event_id_header")
    @classmethod
    def _not_ours(cls, value: str | None) -> str | None:
        if value is not None and is_platform_header(value):
            raise ValueError(f"{value!r} is a platform header; name a header of your records")
        return value


@dataclass(frozen=True)
class ReservedTopics:
    """Topics a Kafka-topic source may not read: the platform's own and the internal ones."""

    names: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, platform_topics: Iterable[str], worker_group: str) -> ReservedTopics:
        names = frozenset(platform_topics)
        # Every first dotted segment of a platform topic is the platform's namespace: an
        # undeclared name in it (a tier left by changed delays) is still the platform's output.
        spaces = {name.split(".", 1)[0] + "." for name in names if "." in name}
        # Kafka's internal topics, and Faust's (<app id>-__assignor-__leader, -changelog).
        return cls(names, tuple(sorted(spaces)) + ("__", f"{worker_group}-"))


def reserved_topics(settings: Settings) -> ReservedTopics:
    """The deployment's reserved topics: every topic of its registry, derived ones included."""
    registry = platform_registry(settings.retry.delays)
    return ReservedTopics.of((spec.name for spec in registry), settings.worker.group_id)


def source_topic_problem(topic: str | None, reserved: ReservedTopics) -> str | None:
    """Why a Kafka-topic source may not read ``topic``; ``None`` when it may."""
    if topic is None or not topic.strip():
        return "a kafka source endpoint needs kafka_topic"
    if topic.startswith("^"):
        return f"kafka_topic {topic!r} is a regex subscription; name one topic"
    if not _TOPIC_NAME.match(topic) or topic in (".", ".."):
        return f"kafka_topic {topic!r} is not a Kafka topic name ([A-Za-z0-9._-], 1-249)"
    if topic in reserved.names or topic.startswith(reserved.prefixes):
        return (
            f"kafka_topic {topic!r} is a platform or internal topic; a source reading it would "
            "feed the platform's own output back into it"
        )
    return None


def _model_problems(model: type[BaseModel], config: Mapping[str, Any]) -> list[str]:
    try:
        model.model_validate(dict(config))
    except ValidationError as exc:
        return [
            f"config.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
    return []


def poll_config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of a polled REST source's ``config`` (empty: valid)."""
    return _model_problems(PollConfig, config)


def source_endpoint_problems(
    protocol: str, endpoint: Mapping[str, Any], reserved: ReservedTopics
) -> list[str]:
    """Every problem of a source endpoint of a ``protocol`` connector (empty: valid).

    ``endpoint`` has the endpoint's columns (``direction``, ``path``, ``poll_interval_s``,
    ``kafka_topic``, ``config``); a target endpoint, or a webhook source, has none here.
    """
    if endpoint.get("direction") != "source":
        return []
    config = endpoint.get("config") or {}
    if not isinstance(config, Mapping):
        return ["config must be a JSON object"]
    if protocol == "rest" and endpoint.get("poll_interval_s") is not None:
        problems = poll_config_problems(config)
        path = endpoint.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append("a polled REST source needs a path starting with '/'")
        return problems
    if protocol == "kafka":
        problem = source_topic_problem(endpoint.get("kafka_topic"), reserved)
        return ([problem] if problem else []) + _model_problems(KafkaSourceConfig, config)
    return []
