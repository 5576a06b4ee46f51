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
(:mod:`topics.drift`); only the two entry points here talk to the broker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
from topics.drift import ActualTopic, TopicDrift, TopicRow, compare
from topics.registry import TopicRegistry, TopicSpec, platform_registry

log = logging.getLogger(__name__)


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
    _await_leaders(
        admin, {spec.name: spec.partitions for spec in specs if spec.name in created}, timeout
    )
    return created


def _await_leaders(admin: AdminClient, expected: Mapping[str, int], timeout: float) -> None:
    """Wait until every created topic has a leader for each of its partitions.

    CreateTopics answers once the controller has recorded the topic, before the broker has
    elected its leaders; until then a client asking for the topic (an offset lookup, a first
    produce) is told "unknown partition" or "not leader". Right after a broker starts this
    lasts long enough for the next step to trip on it, so ``apply`` returns only once the
    topics can be used."""
    deadline = time.monotonic() + timeout
    waiting = dict(expected)
    while waiting:
        try:
            metadata = admin.list_topics(timeout=max(deadline - time.monotonic(), 0.1))
        except KafkaException as exc:
            raise KafkaUnavailable(f"kafka admin: listing topics failed: {exc.args[0]}") from exc
        for name, partitions in list(waiting.items()):
            meta = metadata.topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 and p.error is None for p in meta.partitions.values())
            ):
                del waiting[name]
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise KafkaUnavailable(
                f"kafka admin: created topics have no leader yet: {sorted(waiting)[:5]}"
            )
        time.sleep(0.1)


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
