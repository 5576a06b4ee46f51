"""Drift between the registry and the broker, as pure functions over plain data."""

from __future__ import annotations

from topics.drift import ActualTopic, ConfigDrift, compare, config_drift, namespaces, topic_drift
from topics.registry import TopicSpec

SPEC = TopicSpec("orders.in", partitions=6, retention_ms=1000, cleanup_policy="compact,delete")


def _actual(name: str = "orders.in", partitions: int = 6, **configs: str) -> ActualTopic:
    base = {"retention.ms": "1000", "cleanup.policy": "compact,delete", "segment.ms": "1"}
    base["max.message.bytes"] = "1048588"
    return ActualTopic(
        name, partitions, 1, base | {k.replace("_", "."): v for k, v in configs.items()}
    )


def test_a_topic_as_declared_is_in_sync() -> None:
    drift = topic_drift(SPEC, _actual())
    assert drift.in_sync and drift.describe() == []


def test_list_values_in_another_order_are_not_drift() -> None:
    assert topic_drift(SPEC, _actual(cleanup_policy="delete,compact")).in_sync


def test_keys_the_declaration_does_not_own_are_ignored() -> None:
    assert config_drift({"retention.ms": "1"}, {"retention.ms": "1", "segment.ms": "9"}) == ()


def test_a_changed_config_is_drift_with_both_values() -> None:
    drift = topic_drift(SPEC, _actual(retention_ms="5"))
    assert drift.configs == (ConfigDrift("retention.ms", "1000", "5"),)
    assert not drift.in_sync
    assert drift.describe() == ["retention.ms=5, declared 1000"]


def test_a_missing_config_value_is_drift() -> None:
    assert config_drift({"cleanup.policy": "compact"}, {}) == (
        ConfigDrift("cleanup.policy", "compact", None),
    )


def test_fewer_partitions_can_grow_more_can_only_be_reported() -> None:
    short = topic_drift(SPEC, _actual(partitions=3))
    assert short.partitions_short and not short.in_sync
    excess = topic_drift(SPEC, _actual(partitions=12))
    assert not excess.partitions_short and not excess.in_sync
    assert excess.describe() == ["partitions 12, declared 6"]


def test_another_replication_factor_is_drift_reported_with_how_to_fix_it() -> None:
    spec = SPEC.with_durability(3, 2)
    actual = ActualTopic("orders.in", 6, 1, _actual(min_insync_replicas="2").configs)
    drift = topic_drift(spec, actual)
    assert drift.replication_differs and not drift.in_sync
    [line] = drift.describe()
    assert line.startswith("replication factor 1, declared 3 (not changed by apply")
    assert "kafka-reassign-partitions.sh" in line


def test_min_insync_replicas_is_a_declared_config() -> None:
    spec = SPEC.with_durability(1, 2)
    drift = topic_drift(spec, _actual(min_insync_replicas="1"))
    assert drift.configs == (ConfigDrift("min.insync.replicas", "2", "1"),)
    assert not drift.replication_differs


def test_a_spec_without_durability_takes_the_deployments() -> None:
    assert SPEC.with_durability(3, 2).replication_factor == 3
    own = TopicSpec("own", replication_factor=1, min_insync_replicas=1)
    assert own.with_durability(3, 2) == own
    assert "min.insync.replicas" not in SPEC.configs()


def test_compare_gives_missing_drift_in_sync_and_extra_rows() -> None:
    specs = [SPEC, TopicSpec("orders.out", partitions=2, retention_ms=1000)]
    actual = {
        "orders.in": _actual(partitions=3),
        "orders.stale.retry.5s": _actual("orders.stale.retry.5s"),  # ours, undeclared
        "someone.else": _actual("someone.else"),  # not our namespace
        "__consumer_offsets": _actual("__consumer_offsets"),
    }
    rows = compare(specs, actual)
    assert [(row.name, row.status) for row in rows] == [
        ("orders.in", "drift"),
        ("orders.out", "missing"),
        ("orders.stale.retry.5s", "extra"),
    ]
    assert rows[0].declared_partitions == 6 and rows[0].actual_partitions == 3
    assert rows[1].actual_partitions is None and rows[2].declared_partitions is None
    assert [row.status for row in compare(specs, actual, include_extra=False)] == [
        "drift",
        "missing",
    ]


def test_namespaces_are_first_dotted_segments() -> None:
    specs = [TopicSpec("synapseops.events.inbound"), TopicSpec("event-log.dlq"), TopicSpec("x")]
    assert namespaces(specs) == {"synapseops.", "event-log.", "x."}
