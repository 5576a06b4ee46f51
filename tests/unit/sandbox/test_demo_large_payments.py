"""The demo's traffic shows the notification service at once: a large payment first (an
approval in the inbox and the sandbox's #approvals), then one about every minute."""

from __future__ import annotations

import random

from sandbox.traffic import LARGE_PAYMENT, ORDINARY_PAYMENTS, StripeAmounts
from synapseops.settings import PaymentSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_payment_is_large_and_one_follows_every_minute() -> None:
    clock = Clock()
    amounts = StripeAmounts(random.Random(7), every_s=60.0, clock=clock)
    large_at: list[float] = []
    for _ in range(600):  # ten minutes of one Stripe event a second
        amount = amounts.next()
        assert amount == LARGE_PAYMENT or amount in ORDINARY_PAYMENTS
        if amount == LARGE_PAYMENT:
            large_at.append(clock.now - 1000.0)
        clock.now += 1.0
    assert large_at == [60.0 * minute for minute in range(10)]


def test_a_large_payment_waits_for_approval_and_an_ordinary_one_does_not() -> None:
    threshold = PaymentSettings().approval_thresholds["USD"]  # the demo charges in USD
    assert LARGE_PAYMENT >= threshold
    assert max(ORDINARY_PAYMENTS) < threshold
