"""Make the broker match the topic registry, without ever destroying data.

``apply_topics`` creates every declared topic that is missing, with its partitions and configs.
For a topic that exists and differs from its declaration it only reports, unless asked:

- fewer partitions than declared → ``grow=True`` adds partitions (keys of existing records
  then hash elsewhere, which is why it is opt-in);
- more partitions than declared → report only (Kafka cannot shrink a topic; the
  declaration is what should change);
- another replication factor → report only, with how to fix it: Kafka changes a topic's
  replicas only by a partition reassignment, which moves data between brokers and is an
  operator's decision (``kafka-reassign-partitions.sh``), never something ``apply`` does;
- a config value other than declared (``min.insync.replicas`` included) → ``fix_configs=True``
  sets it with an incremental alter.

Replication factor and ``min.insync.replicas`` of every topic that names none of its own come
from the settings (``SYNAPSEOPS_KAFKA_REPLICATION_FACTOR`` / ``_MIN_INSYNC_REPLICAS``: 1/1 in
dev and test, 3/2 in prod). Creating a topic with more replicas than the cluster has brokers
is refused up front with a :class:`ConfigurationError` that says which setting to change.

Nothing here deletes a topic. ``list_topics`` gives declared vs actual, one row per topic,
with ``extra`` rows for undeclared topics in a namespace the registry owns (a retry tier left
behind by changed delays, for instance). The comparison is pure functions over plain data
(:func:`compare`, :func:`topic_drift`); only the two entry points talk to the broker.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException

# confluent_kafka.admin documents these names as public but re-exports them without
# __all__, which strict mypy reads as private.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from synapseops.errors import ConfigurationError, KafkaUnavailable
from synapseops.kafka import create_admin
from synapseops.settings import Settings
from topics.registry import TopicRegistry, TopicSpec, platform_registry

log = logging.getLogger(__name__)
TopicStatus = Literal["in_sync", "drift", "missing", "extra"]


@dataclass(frozen=True)
class ActualTopic:
    """A topic as the broker has it (configs: at least every key some declaration owns)."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigDrift:
    key: str
    declared: str
    actual: str | None


@dataclass(frozen=True)
class TopicDrift:
    name: str
    declared_partitions: int
    actual_partitions: int
    declared_replication: int
    actual_replication: int
    configs: tuple[ConfigDrift, ...] = ()

    @property
    def partitions_short(self) -> bool:
        return self.actual_partitions < self.declared_partitions

    @property
    def in_sync(self) -> bool:
        return (
            self.actual_partitions == self.declared_partitions
            and self.actual_replication == self.declared_replication
            and not self.configs
        )

    @property
    def replication_differs(self) -> bool:
        return self.actual_replication != self.declared_replication

    def describe(self) -> list[str]:
        """One human-readable line per difference."""
        lines = []
        if self.actual_partitions != self.declared_partitions:
            lines.append(
                f"partitions {self.actual_partitions}, declared {self.declared_partitions}"
            )
        if self.replication_differs:
            lines.append(
                f"replication factor {self.actual_replication}, "
                f"declared {self.declared_replication} ({REPLICATION_FIX})"
            )
        lines.extend(f"{c.key}={c.actual}, declared {c.declared}" for c in self.configs)
        return lines


# Kafka has no "alter replication factor": replicas change only through a reassignment.
REPLICATION_FIX = (
    "not changed by apply: move replicas with kafka-reassign-partitions.sh --execute and a "
    "plan listing the new replicas of each partition, or change "
    "SYNAPSEOPS_KAFKA_REPLICATION_FACTOR to what the cluster has"
)


@dataclass(frozen=True)
class TopicRow:
    """One line of ``topics list``: a declared topic, an undeclared one, or both sides."""

    name: str
    status: TopicStatus
    declared: TopicSpec | None
    actual: ActualTopic | None
    drift: TopicDrift | None = None

    @property
    def declared_partitions(self) -> int | None:
        return self.declared.partitions if self.declared else None

    @property
    def actual_partitions(self) -> int | None:
        return self.actual.partitions if self.actual else None


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    in_sync: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)
    configs_fixed: list[str] = field(default_factory=list)
    # What is still different after this run (nothing was fixed for these, or not all).
    drift: list[TopicDrift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift


# ---- pure comparison ---------------------------------------------------------------------


def _normalise(value: str | None) -> str | None:
    # List-valued configs (cleanup.policy) come back in any order: "compact,delete".
    if value is None:
        return None
    return ",".join(sorted(part.strip() for part in value.split(",")))


def config_drift(declared: Mapping[str, str], actual: Mapping[str, str]) -> tuple[ConfigDrift, ...]:
    """Declared keys whose actual value differs; keys the declaration does not own are ignored."""
    return tuple(
        ConfigDrift(key, value, actual.get(key))
        for key, value in sorted(declared.items())
        if _normalise(actual.get(key)) != _normalise(value)
    )


def topic_drift(spec: TopicSpec, actual: ActualTopic) -> TopicDrift:
    """How ``actual`` differs from ``spec``; a spec naming no replication factor has no opinion
    on it (the entry points below always fill it in from the settings first)."""
    declared_replication = spec.replication_factor or actual.replication_factor
    return TopicDrift(
        name=spec.name,
        declared_partitions=spec.partitions,
        actual_partitions=actual.partitions,
        declared_replication=declared_replication,
        actual_replication=actual.replication_factor,
        configs=config_drift(spec.configs(), actual.configs),
    )


def namespaces(specs: Iterable[TopicSpec]) -> frozenset[str]:
    """Name prefixes the registry owns: the first dotted segment of each declared name."""
    return frozenset(spec.name.split(".", 1)[0] + "." for spec in specs)


def compare(
    specs: Iterable[TopicSpec], actual: Mapping[str, ActualTopic], *, include_extra: bool = True
) -> list[TopicRow]:
    """Declared vs actual, sorted by name. ``extra``: undeclared, in a namespace we own."""
    declared = {spec.name: spec for spec in specs}
    rows = []
    for name, spec in declared.items():
        topic = actual.get(name)
        if topic is None:
            rows.append(TopicRow(name, "missing", spec, None))
            continue
        drift = topic_drift(spec, topic)
        rows.append(TopicRow(name, "in_sync" if drift.in_sync else "drift", spec, topic, drift))
    if include_extra:
        owned = namespaces(declared.values())
        for name, topic in actual.items():
            if name not in declared and name.startswith(tuple(owned)):
                rows.append(TopicRow(name, "extra", None, topic))
    return sorted(rows, key=lambda row: row.name)


# ---- the broker side -----------------------------------------------------------------------


def _wait(future: concurrent.futures.Future[Any], what: str, timeout: float) -> Any:
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"kafka admin: {what} failed: {exc.args[0]}") from exc
    except concurrent.futures.TimeoutError as exc:
        raise KafkaUnavailable(f"kafka admin: {what} timed out after {timeout}s") from exc


@dataclass(frozen=True)
class ClusterState:
    """What one metadata call and one describe call say about the cluster."""

    topics: dict[str, ActualTopic]
    brokers: int


def _read_actual(admin: AdminClient, owned: Iterable[str], timeout: float) -> ClusterState:
    """Every topic on the broker; configs only for ``owned`` names (one describe call)."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"kafka admin: listing topics failed: {exc.args[0]}") from exc
    shapes = {
        name: (len(meta.partitions), len(next(iter(meta.partitions.values())).replicas))
        for name, meta in metadata.topics.items()
        if meta.error is None and meta.partitions
    }
    wanted = [ConfigResource(ResourceType.TOPIC, name) for name in owned if name in shapes]
    configs: dict[str, dict[str, str]] = {}
    if wanted:
        for resource, future in admin.describe_configs(wanted, request_timeout=timeout).items():
            entries = _wait(future, f"describing {resource.name}", timeout)
            configs[resource.name] = {key: entry.value for key, entry in entries.items()}
    topics = {
        name: ActualTopic(name, partitions, replicas, configs.get(name, {}))
        for name, (partitions, replicas) in shapes.items()
    }
    return ClusterState(topics, len(metadata.brokers))


def declared_topics(settings: Settings, registry: TopicRegistry | None = None) -> list[TopicSpec]:
    """The registry's topics (the platform's by default) with the deployment's durability."""
    chosen = platform_registry(settings.retry.delays) if registry is None else registry
    replication, min_insync = settings.topic_replication
    return [spec.with_durability(replication, min_insync) for spec in chosen]


def list_topics(
    settings: Settings,
    registry: TopicRegistry | None = None,
    *,
    include_extra: bool = True,
    timeout: float = 15.0,
) -> list[TopicRow]:
    specs = declared_topics(settings, registry)
    cluster = _read_actual(create_admin(settings.kafka), [spec.name for spec in specs], timeout)
    return compare(specs, cluster.topics, include_extra=include_extra)


def _create(admin: AdminClient, specs: list[TopicSpec], brokers: int, timeout: float) -> list[str]:
    widest = max(spec.replication_factor or 1 for spec in specs)
    if widest > brokers:
        # The broker would refuse each topic with INVALID_REPLICATION_FACTOR; say what to change.
        raise ConfigurationError(
            f"topics need replication factor {widest} but the cluster has {brokers} "
            "broker(s); set SYNAPSEOPS_KAFKA_REPLICATION_FACTOR (and "
            "SYNAPSEOPS_KAFKA_MIN_INSYNC_REPLICAS) to what the cluster can hold"
        )
    new = [
        NewTopic(spec.name, spec.partitions, spec.replication_factor or 1, config=spec.configs())
        for spec in specs
    ]
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(
                    f"kafka admin: creating {name} failed: {exc.args[0]}"
                ) from exc
            # Another apply won the race; its declaration is the same registry's.
            log.warning("topic appeared while creating it", extra={"topic": name})
            continue
        except concurrent.futures.TimeoutError as exc:
            raise KafkaUnavailable(f"kafka admin: creating {name} timed out") from exc
        log.info("topic created", extra={"topic": name})
        created.append(name)
    return created


def apply_topics(
    settings: Settings,
    registry: TopicRegistry | None = None,
    *,
    grow: bool = False,
    fix_configs: bool = False,
    timeout: float = 15.0,
) -> ApplyReport:
    """Create what is missing; grow / fix configs only when asked; never delete anything."""
    specs = declared_topics(settings, registry)
    admin = create_admin(settings.kafka)
    cluster = _read_actual(admin, [spec.name for spec in specs], timeout)
    rows = compare(specs, cluster.topics, include_extra=False)
    report = ApplyReport()
    missing = [row.declared for row in rows if row.status == "missing" and row.declared]
    report.created = _create(admin, missing, cluster.brokers, timeout) if missing else []
    report.in_sync = [row.name for row in rows if row.status == "in_sync"]
    for row in rows:
        if row.drift is None or row.drift.in_sync:
            continue
        drift = row.drift
        if grow and drift.partitions_short:
            request = [NewPartitions(row.name, drift.declared_partitions)]
            for name, future in admin.create_partitions(request, request_timeout=timeout).items():
                _wait(future, f"growing {name} to {drift.declared_partitions} partitions", timeout)
            log.info(
                "topic grown", extra={"topic": row.name, "partitions": drift.declared_partitions}
            )
            report.grown.append(row.name)
            drift = replace(drift, actual_partitions=drift.declared_partitions)
        if fix_configs and drift.configs:
            entries = [
                ConfigEntry(c.key, c.declared, incremental_operation=AlterConfigOpType.SET)
                for c in drift.configs
            ]
            resource = ConfigResource(ResourceType.TOPIC, row.name, incremental_configs=entries)
            for _, future in admin.incremental_alter_configs([resource]).items():
                _wait(future, f"setting configs of {row.name}", timeout)
            log.info("topic configs fixed", extra={"topic": row.name})
            report.configs_fixed.append(row.name)
            drift = replace(drift, configs=())
        if not drift.in_sync:
            report.drift.append(drift)
    return report
