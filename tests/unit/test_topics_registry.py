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


def test_road_topics_outlive_the_longest_hold_and_take_any_input_record_with_its_history() -> None:
    from synapseops.settings import RetrySettings
    from topics.registry import (
        DAY_MS,
        INPUT_MAX_MESSAGE_BYTES,
        ROAD_HEADER_BUDGET,
        ROAD_MAX_MESSAGE_BYTES,
    )

    longest_cap_ms = 24 * 3600 * 1000  # SYNAPSEOPS_RETRY_MAX_RETRY_AFTER is at most 24h
    for tiers in ("10s,60s,300s", "1s,2s,3s", "1h,6h,24h"):
        pipeline = PipelineSpec("p", ("in",), RetrySettings(tiers=tiers).delays)
        for spec in pipeline.derived_topics():
            assert spec.max_message_bytes >= INPUT_MAX_MESSAGE_BYTES + ROAD_HEADER_BUDGET
            if spec.name == pipeline.dlq_topic:
                continue
            # Before: one day, so a record told to wait longer than that expired while held.
            hold_ms = max(longest_cap_ms, int(max(pipeline.retry_delays) * 1000))
            assert spec.retention_ms >= 10 * hold_ms and spec.retention_ms >= 14 * DAY_MS
    assert ROAD_MAX_MESSAGE_BYTES >= INPUT_MAX_MESSAGE_BYTES + ROAD_HEADER_BUDGET


def test_an_input_the_road_could_not_carry_is_refused_at_declaration() -> None:
    registry = TopicRegistry()
    registry.declare(TopicSpec("huge.input", max_message_bytes=16 * 1_048_576))
    with pytest.raises(ValueError, match="could not carry"):
        registry.declare_pipeline(PipelineSpec("p", ("huge.input",), (1,)))


def test_the_retry_after_cap_is_a_bounded_duration() -> None:
    from pydantic import ValidationError

    from synapseops.settings import RetrySettings

    assert RetrySettings().max_retry_after_s == 3600.0
    assert RetrySettings(max_retry_after="90s").max_retry_after_s == 90.0
    for bad in ("0s", "25h", "soon"):
        with pytest.raises(ValidationError):
            RetrySettings(max_retry_after=bad)
