"""The rate-limit arithmetic of the simulated platforms, on a clock the test controls."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.limits import FixedWindow, LimitBook, RollingWindow, TokenBucket


def test_rolling_window_frees_a_slot_when_the_oldest_hit_leaves_it() -> None:
    window = RollingWindow()
    allowed = [window.take("app", 3, 10.0, now=t).allowed for t in (0.0, 1.0, 2.0, 3.0)]
    assert allowed == [True, True, True, False]
    refused = window.take("app", 3, 10.0, now=4.0)
    assert refused.remaining == 0 and refused.retry_after_s == pytest.approx(6.0)
    assert window.take("app", 3, 10.0, now=10.5).allowed  # the hit at 0.0 left the window
    assert window.take("other-app", 3, 10.0, now=4.0).remaining == 2  # per key


def test_fixed_window_counts_until_its_reset_and_can_peek_without_counting() -> None:
    window = FixedWindow()
    first = window.take("token", 2, 3600, now=1000.0)
    assert (first.remaining, first.reset_at) == (1, 4600.0)
    assert window.take("token", 2, 3600, now=1001.0, count=False).remaining == 1
    assert window.take("token", 2, 3600, now=1002.0).remaining == 0
    spent = window.take("token", 2, 3600, now=1003.0)
    assert not spent.allowed and spent.retry_after_s == pytest.approx(3597.0)
    assert window.take("token", 2, 3600, now=4600.0).remaining == 1  # a new hour


def test_token_bucket_allows_a_burst_then_one_per_interval() -> None:
    bucket = TokenBucket()
    burst = [bucket.take("C1", 1.0, 3, now=0.0).allowed for _ in range(4)]
    assert burst == [True, True, True, False]
    assert bucket.take("C1", 1.0, 3, now=0.5).retry_after_s == pytest.approx(0.5)
    assert bucket.take("C1", 1.0, 3, now=1.0).allowed
    assert not bucket.take("C1", 1.0, 3, now=1.2).allowed
    assert bucket.take("C2", 1.0, 3, now=1.2).allowed  # another channel has its own bucket


def test_limit_book_merges_partial_changes_and_refuses_bad_ones() -> None:
    book = LimitBook()
    changed = book.update({"hubspot": {"max_requests": 5}, "slack": {"enabled": False}})
    assert changed.hubspot.max_requests == 5 and changed.hubspot.interval_ms == 10_000
    assert not changed.slack.enabled and changed.github.authenticated_per_window == 5_000
    with pytest.raises(ValidationError):
        book.update({"hubspot": {"max_requests": 0}})
    with pytest.raises(ValidationError):
        book.update({"nosuch": {}})
    assert book.settings.hubspot.max_requests == 5  # a refused change changes nothing
    book.reset()
    assert book.settings.hubspot.max_requests == 100 and book.settings.slack.enabled
