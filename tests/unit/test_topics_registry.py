"""Derived topic names: retry tiers and dead letters belong to the pipeline, not the topic."""

from __future__ import annotations

import pytest

from topics.registry import (
    PipelineSpec,
    TopicRegistry,
    TopicSpec,
    format_delay,
    parse_tiers,
    platform_registry,
)


def test_retry_and_dead_letter_names_are_derived_from_the_pipeline() -> None:
    pipeline = PipelineSpec("payment-settlement", ("stripe.events",), (10, 60, 300))
    assert pipeline.retry_topics == (
        "payment-settlement.retry.10s",
        "payment-settlement.retry.60s",
        "payment-settlement.retry.300s",
    )
    assert pipeline.dlq_topic == "payment-settlement.dlq"
    assert pipeline.parking_topic == "payment-settlement.parking"
    assert [spec.name for spec in pipeline.derived_topics()] == [
        *pipeline.retry_topics,
        pipeline.parking_topic,
        pipeline.dlq_topic,
    ]


@pytest.mark.parametrize(
    ("seconds", "text"), [(10, "10s"), (300.0, "300s"), (0.5, "500ms"), (1.5, "1500ms")]
)
def test_delays_in_names(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text


def test_two_pipelines_on_one_topic_have_separate_retry_and_dead_letter_topics() -> None:
    registry = TopicRegistry()
    registry.declare(TopicSpec("shared.input"))
    settle = registry.declare_pipeline(PipelineSpec("settle", ("shared.input",), (1, 2)))
    audit = registry.declare_pipeline(PipelineSpec("audit", ("shared.input",), (1, 2)))
    assert not set(settle.retry_topics) & set(audit.retry_topics)
    assert settle.dlq_topic != audit.dlq_topic
    for name in (*settle.retry_topics, *audit.retry_topics, settle.dlq_topic, audit.dlq_topic):
        assert name in registry
    assert len(registry) == 1 + 4 + 4


def test_a_pipeline_cannot_read_an_undeclared_topic() -> None:
    with pytest.raises(ValueError, match="undeclared topic"):
        TopicRegistry().declare_pipeline(PipelineSpec("p", ("nowhere",), (1,)))


def test_one_name_cannot_be_declared_twice_differently() -> None:
    registry = TopicRegistry()
    registry.declare(TopicSpec("a", partitions=3))
    registry.declare(TopicSpec("a", partitions=3))  # the same declaration again is fine
    with pytest.raises(ValueError, match="declared twice"):
        registry.declare(TopicSpec("a", partitions=6))


def test_platform_registry_follows_the_configured_tiers() -> None:
    registry = platform_registry(parse_tiers("250ms,2s"))
    names = [spec.name for spec in registry]
    assert "event-log.retry.250ms" in names and "event-log.retry.2s" in names
    assert "event-log.retry.10s" not in names
    assert names == sorted(names)


def test_configs_hold_what_drift_is_checked_against() -> None:
    spec = TopicSpec("c", retention_ms=1000, cleanup_policy="compact", extra_configs=(("a", "b"),))
    assert spec.configs() == {
        "retention.ms": "1000",
        "cleanup.policy": "compact",
        "max.message.bytes": "1048588",
        "a": "b",
    }


def test_tiers_with_one_delay_twice_are_refused() -> None:
    import pytest

    from topics.registry import PipelineSpec

    with pytest.raises(ValueError, match="must differ"):
        PipelineSpec(name="p", inputs=("t",), retry_delays=(5.0, 5.0, 10.0))
