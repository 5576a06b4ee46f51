"""The replay rate limiter, on a fake clock (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from sinks.dead_letters.replay import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_no_rate_means_no_wait() -> None:
    for rate in (None, 0):
        limiter = RateLimiter(rate)
        assert [limiter.reserve() for _ in range(5)] == [0.0] * 5


def test_slots_are_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    waits = [limiter.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_wait_paces_calls_to_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)

    async def run() -> None:
        for _ in range(21):
            await limiter.wait()

    asyncio.run(run())
    # 21 calls at 10/s span 2 seconds: the first goes at once.
    assert clock.now - 100.0 == pytest.approx(2.0)
    assert len(clock.slept) == 20


def test_an_idle_limiter_does_not_bank_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock, sleep=clock.sleep)
    assert limiter.reserve() == 0.0
    clock.now += 60.0  # a minute idle
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.5)


def test_time_spent_elsewhere_counts_towards_the_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    limiter.reserve()
    clock.now += 0.75  # the send itself took 0.75 s
    assert limiter.reserve() == pytest.approx(0.25)


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(-1.0)
