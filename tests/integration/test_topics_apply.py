"""``topics apply`` / ``topics list`` against the real broker, with a registry of our own.

Every topic here is named ``t-<uuid>…`` so runs never meet each other or the platform's topics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from typer import Typer
from typer.testing import CliRunner

from synapseops.cli.topics import register
from synapseops.errors import ConfigurationError, KafkaUnavailable
from synapseops.kafka import create_admin
from synapseops.settings import Settings
from topics.admin import apply_topics, list_topics
from topics.drift import ActualTopic
from topics.registry import DAY_MS, PipelineSpec, TopicRegistry, TopicSpec

T = TypeVar("T")


def _registry(prefix: str, *, in_partitions: int = 3, with_state: bool = True) -> TopicRegistry:
    registry = TopicRegistry()
    registry.declare(TopicSpec(f"{prefix}.in", partitions=in_partitions, retention_ms=DAY_MS))
    if with_state:
        registry.declare(TopicSpec(f"{prefix}.state", partitions=1, cleanup_policy="compact"))
    registry.declare_pipeline(
        PipelineSpec(f"{prefix}.proc", (f"{prefix}.in",), retry_delays=(1, 5), partitions=2)
    )
    return registry


def _eventually(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Metadata reaches every client a moment after the controller commits it."""
    deadline = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
    return value


def _actual(settings: Settings, registry: TopicRegistry) -> dict[str, ActualTopic]:
    rows = list_topics(settings, registry)
    return {row.name: row.actual for row in rows if row.actual is not None}


def _set_config(settings: Settings, topic: str, key: str, value: str) -> None:
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = create_admin(settings.kafka)  # held: a collected client cancels its futures
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=10)


def test_apply_creates_then_is_in_sync_and_reports_then_fixes_config_drift(
    settings: Settings, kafka_bootstrap: str, unique_name: str
) -> None:
    registry = _registry(unique_name)
    declared = {spec.name: spec for spec in registry}

    first = apply_topics(settings, registry)
    assert sorted(first.created) == sorted(declared)
    assert first.ok and first.in_sync == []

    actual = _eventually(lambda: _actual(settings, registry), lambda a: set(a) >= set(declared))
    for name, spec in declared.items():
        assert actual[name].partitions == spec.partitions, name
        for key, value in spec.configs().items():
            assert actual[name].configs[key] == value, (name, key)

    second = apply_topics(settings, registry)
    assert second.created == [] and second.drift == []
    assert sorted(second.in_sync) == sorted(declared)

    _set_config(settings, f"{unique_name}.in", "retention.ms", "12345")
    rows = _eventually(
        lambda: {row.name: row for row in list_topics(settings, registry)},
        lambda r: r[f"{unique_name}.in"].status == "drift",
    )
    drifted = rows[f"{unique_name}.in"]
    assert drifted.status == "drift" and drifted.drift is not None
    assert [(c.key, c.declared, c.actual) for c in drifted.drift.configs] == [
        ("retention.ms", str(DAY_MS), "12345")
    ]
    assert all(row.status == "in_sync" for name, row in rows.items() if name != drifted.name)

    reported = apply_topics(settings, registry)
    assert not reported.ok and [d.name for d in reported.drift] == [drifted.name]
    assert reported.configs_fixed == []

    fixed = apply_topics(settings, registry, fix_configs=True)
    assert fixed.ok and fixed.configs_fixed == [drifted.name]
    after = _eventually(
        lambda: _actual(settings, registry)[drifted.name],
        lambda a: a.configs["retention.ms"] == str(DAY_MS),
    )
    assert after.configs["retention.ms"] == str(DAY_MS)


def test_partitions_grow_only_when_asked_and_apply_never_deletes_or_shrinks(
    settings: Settings, kafka_bootstrap: str, unique_name: str
) -> None:
    assert apply_topics(settings, _registry(unique_name, in_partitions=2)).ok
    source = f"{unique_name}.in"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(source, key=b"k", value=b"kept", partition=0)
    assert producer.flush(10) == 0

    wider = _registry(unique_name, in_partitions=4)
    report = apply_topics(settings, wider)
    assert [(d.name, d.partitions_short) for d in report.drift] == [(source, True)]
    assert _actual(settings, wider)[source].partitions == 2

    grown = apply_topics(settings, wider, grow=True)
    assert grown.ok and grown.grown == [source]
    assert _eventually(lambda: _actual(settings, wider)[source].partitions, lambda n: n == 4) == 4

    # Declared lower than the broker, and one topic no longer declared: report, touch nothing.
    narrower = _registry(unique_name, in_partitions=1, with_state=False)
    report = apply_topics(settings, narrower, grow=True, fix_configs=True)
    assert [(d.name, d.actual_partitions, d.declared_partitions) for d in report.drift] == [
        (source, 4, 1)
    ]
    rows = {row.name: row for row in list_topics(settings, narrower)}
    assert rows[f"{unique_name}.state"].status == "extra"
    assert rows[source].actual_partitions == 4

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(source, 0), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, 1), "the record written before the applies is still there"


def test_cli_list_shows_declared_against_actual(settings: Settings, kafka_bootstrap: str) -> None:
    app = Typer()
    register(app)
    # Wide enough that rich does not fold topic names across lines.
    result = CliRunner().invoke(app, ["topics", "list", "--no-extra"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "synapseops.notifications.triggers" in result.output


def test_an_unreachable_broker_is_kafka_unavailable(settings: Settings) -> None:
    nowhere = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap": "127.0.0.1:1"})}
    )
    with pytest.raises(KafkaUnavailable):
        apply_topics(nowhere, _registry("t-unreachable"), timeout=2)


def _durable(settings: Settings, replication: int, min_insync: int) -> Settings:
    kafka = settings.kafka.model_copy(
        update={"replication_factor": replication, "min_insync_replicas": min_insync}
    )
    return settings.model_copy(update={"kafka": kafka})


def test_replication_and_min_insync_come_from_the_settings_and_their_drift_is_reported(
    settings: Settings, kafka_bootstrap: str, unique_name: str
) -> None:
    """The test broker is one node: topics are made with 1/1, then the same registry is
    applied as a prod deployment (3/2) would see it."""
    registry = _registry(unique_name, with_state=False)
    declared = sorted(spec.name for spec in registry)
    assert apply_topics(_durable(settings, 1, 1), registry).ok
    made = _eventually(lambda: _actual(settings, registry), lambda a: set(a) >= set(declared))
    assert {made[name].configs["min.insync.replicas"] for name in declared} == {"1"}

    prod = _durable(settings, 3, 2)
    report = apply_topics(prod, registry)
    assert sorted(d.name for d in report.drift) == declared
    for drift in report.drift:
        assert (drift.actual_replication, drift.declared_replication) == (1, 3)
        assert [(c.key, c.declared, c.actual) for c in drift.configs] == [
            ("min.insync.replicas", "2", "1")
        ]
        rf_line, isr_line = drift.describe()
        assert "kafka-reassign-partitions.sh" in rf_line and "not changed by apply" in rf_line
        assert isr_line == "min.insync.replicas=1, declared 2"

    fixed = apply_topics(prod, registry, fix_configs=True)
    assert sorted(fixed.configs_fixed) == declared
    # The config is fixed; the replication factor is still reported, never changed.
    assert not fixed.ok and all(d.configs == () and d.replication_differs for d in fixed.drift)
    after = _eventually(
        lambda: _actual(settings, registry),
        lambda a: all(a[name].configs["min.insync.replicas"] == "2" for name in declared),
    )
    assert {after[name].replication_factor for name in declared} == {1}


def test_topics_wider_than_the_cluster_are_refused_with_the_setting_to_change(
    settings: Settings, kafka_bootstrap: str, unique_name: str
) -> None:
    with pytest.raises(ConfigurationError, match="SYNAPSEOPS_KAFKA_REPLICATION_FACTOR"):
        apply_topics(_durable(settings, 3, 2), _registry(unique_name))
    rows = list_topics(settings, _registry(unique_name))
    assert {row.status for row in rows} == {"missing"}, "nothing was half-created"

    app = Typer()
    register(app)
    # Tiers no other test uses: their topics are missing, so apply has to create some.
    env = {
        "SYNAPSEOPS_KAFKA_REPLICATION_FACTOR": "3",
        "SYNAPSEOPS_RETRY_TIERS": "4567ms,8912ms",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["topics", "apply"], env=env)
    assert result.exit_code == 2, result.output
    assert "broker(s)" in result.output
