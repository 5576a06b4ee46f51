"""Tier decisions: 1 + 3 tries then the dead letter, fatal at once, jitter bounds, Retry-After."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.road.headers import FailureHistory
from streams.road.tiers import FATAL, RETRYABLE, delay_for, next_hop
from topics.registry import PipelineSpec

SPEC = PipelineSpec(name="pay", inputs=("in",), retry_delays=(10.0, 60.0, 300.0))
NOW = 1_000_000


def test_jitter_stays_within_bounds_and_spreads() -> None:
    rng = random.Random(7)
    samples = [delay_for(1, SPEC.retry_delays, 0.2, rng) for _ in range(5000)]
    assert min(samples) >= 48.0
    assert max(samples) <= 72.0
    # Uniform over ±20 %: both ends are reached, not just the middle.
    assert min(samples) < 49.0 and max(samples) > 71.0
    assert delay_for(2, SPEC.retry_delays, 0.0) == 300.0


@pytest.mark.parametrize(
    ("retries", "topic", "tier", "delay"),
    [(0, "pay.retry.10s", 0, 10.0), (1, "pay.retry.60s", 1, 60.0), (2, "pay.retry.300s", 2, 300.0)],
)
def test_each_retryable_failure_moves_one_tier_on(
    retries: int, topic: str, tier: int, delay: float
) -> None:
    hop = next_hop(FailureHistory(attempt=retries, retries=retries), SPEC, NOW, jitter=0.0)
    assert (hop.topic, hop.tier, hop.retries, hop.dead) == (topic, tier, retries + 1, False)
    assert hop.not_before_ms == NOW + int(delay * 1000)


def test_the_fourth_failure_is_dead() -> None:
    hop = next_hop(FailureHistory(attempt=3, retries=3), SPEC, NOW)
    assert hop.dead
    assert hop.topic == "pay.dlq"
    assert hop.not_before_ms is None
    assert hop.retries == 3


def test_fatal_goes_to_the_dead_letter_at_once() -> None:
    hop = next_hop(FailureHistory(), SPEC, NOW, kind=FATAL)
    assert hop.dead and hop.topic == "pay.dlq"
    # Even with a Retry-After, fatal is fatal.
    assert next_hop(FailureHistory(), SPEC, NOW, 5.0, kind=FATAL).dead


def test_a_replayed_record_gets_its_tiers_again_however_many_attempts() -> None:
    replayed = FailureHistory(attempt=4, retries=3).for_replay("rpl_1")
    hop = next_hop(replayed, SPEC, NOW, kind=RETRYABLE, jitter=0.0)
    assert hop.topic == "pay.retry.10s"


def test_retry_after_within_the_tier_delay_waits_on_that_tier() -> None:
    longer = next_hop(FailureHistory(), SPEC, NOW, 9.5, jitter=0.2, rng=random.Random(1))
    assert (longer.topic, longer.parked) == ("pay.retry.10s", False)
    assert longer.not_before_ms is not None and longer.not_before_ms >= NOW + 9_500
    shorter = next_hop(FailureHistory(), SPEC, NOW, 1.0, jitter=0.0)
    assert shorter.not_before_ms == NOW + 10_000


def test_a_longer_retry_after_waits_on_the_tier_whose_delay_covers_it() -> None:
    # Regression: a 42 s wait used to be held on the 10 s tier, pausing its partition for
    # 42 s with every record behind it.
    hop = next_hop(FailureHistory(), SPEC, NOW, 42.0, jitter=0.2, rng=random.Random(1))
    assert (hop.topic, hop.tier, hop.retries, hop.parked) == ("pay.retry.60s", 0, 1, False)
    assert hop.not_before_ms == NOW + 42_000
    # Waiting longer does not use up tries: the next failure is still the second try.
    second = next_hop(FailureHistory(attempt=1, retries=1), SPEC, NOW, 200.0, jitter=0.0)
    assert (second.topic, second.tier, second.retries) == ("pay.retry.300s", 1, 2)


def test_a_retry_after_longer_than_every_tier_is_parked() -> None:
    hop = next_hop(FailureHistory(retries=2), SPEC, NOW, 1_200.0, jitter=0.0)
    assert (hop.topic, hop.tier, hop.retries, hop.parked, hop.dead) == (
        "pay.parking",
        2,
        3,
        True,
        False,
    )
    assert hop.not_before_ms == NOW + 1_200_000


@pytest.mark.parametrize("asked", [7_200.0, 1e12, math.inf])
def test_retry_after_is_capped(asked: float) -> None:
    hop = next_hop(FailureHistory(), SPEC, NOW, asked, jitter=0.0, max_retry_after_s=3_600.0)
    assert hop.topic == "pay.parking"
    assert hop.not_before_ms == NOW + 3_600_000


@pytest.mark.parametrize("asked", [-5.0, 0.0, math.nan, -math.inf])
def test_a_meaningless_retry_after_is_no_request(asked: float) -> None:
    hop = next_hop(FailureHistory(), SPEC, NOW, asked, jitter=0.0)
    assert (hop.topic, hop.not_before_ms) == ("pay.retry.10s", NOW + 10_000)


@settings(max_examples=300, deadline=None)
@given(
    retries=st.integers(0, 2),
    asked=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    cap=st.floats(1.0, 86_400.0),
)
def test_no_record_waits_on_a_tier_longer_than_that_tiers_delay(
    retries: int, asked: float | None, cap: float
) -> None:
    hop = next_hop(
        FailureHistory(attempt=retries, retries=retries),
        SPEC,
        NOW,
        asked,
        jitter=0.2,
        rng=random.Random(retries),
        max_retry_after_s=cap,
    )
    assert hop.not_before_ms is not None and hop.tier == retries
    wait_s = (hop.not_before_ms - NOW) / 1000
    tier_delay = SPEC.retry_delays[retries]
    assert wait_s >= tier_delay * 0.8 - 0.001
    assert wait_s <= max(tier_delay * 1.2, cap) + 0.001
    if hop.parked:
        assert hop.topic == SPEC.parking_topic and wait_s > max(SPEC.retry_delays)
    else:
        on = SPEC.retry_topics.index(hop.topic)
        # Held no longer than the tier it waits on holds anyway (its jitter included).
        assert wait_s <= SPEC.retry_delays[on] * 1.2 + 0.001


def test_jittered_due_time_is_within_the_tier_bounds() -> None:
    rng = random.Random(3)
    for _ in range(1000):
        hop = next_hop(FailureHistory(retries=1), SPEC, NOW, jitter=0.2, rng=rng)
        assert hop.not_before_ms is not None
        assert NOW + 48_000 <= hop.not_before_ms <= NOW + 72_000
