"""Exactly once without trusting finance to keep an Idempotency-Key: look up before re-posting.

The sandbox finance forgets a key ``idempotency_retention_s`` after answering it (24 h by
default, as real finance APIs do); a rule of 0 plays "the retry came a day later". Today's
code re-posted blind and booked the payment twice once the key was gone; now a booking whose
earlier call had an unknown outcome is looked up by settlement id first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sinks.payments.tables import settlement_attempts
from synapseops.errors import TargetUnavailable
from tests.integration.payments.factory import PaymentFactory
from tests.integration.payments.test_payments_pipeline import (
    THRESHOLD,
    Harness,
    command,
    database,
    harness,
    record,
    sandbox,
)

__all__ = ["database", "harness", "sandbox"]  # fixtures shared with test_payments_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
def keys_forgotten(harness: Harness) -> Iterator[None]:
    """Finance forgets every answered key at once (a day passes between tries)."""
    rules = f"{harness.sandbox.url}/_sandbox/finance/rules"
    httpx.put(rules, json={"idempotency_retention_s": 0}).raise_for_status()
    yield
    httpx.put(rules, json={}).raise_for_status()


def posts(harness: Harness, settlement_id: str) -> list[dict[str, Any]]:
    """Booking requests that reached finance's ledger code (not failed by a fault)."""
    seen = httpx.get(f"{harness.sandbox.url}/_sandbox/finance/attempts").json()
    return [
        r
        for r in seen
        if r["method"] == "POST"
        and r["outcome"] != "injected"
        and (r.get("body") or {}).get("settlement_id") == settlement_id
    ]


def test_a_booking_whose_answer_was_lost_is_found_not_booked_again(
    harness: Harness, keys_forgotten: None
) -> None:
    payment = PaymentFactory(amount=6_543)
    event = record(payment.succeeded())
    harness.booked_unheard(event)
    assert len(harness.ledger(payment.charge_settlement)) == 1

    assert harness.handle(event).status == "done"
    (entry,) = harness.ledger(payment.charge_settlement)  # today: two entries
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["finance_reference"]) == ("settled", entry["reference"])
    assert len(posts(harness, payment.charge_settlement)) == 1  # no second POST
    attempts = harness.rows(settlement_attempts, settlement_id=payment.charge_settlement)
    assert [(a["outcome"], a["response_status"]) for a in attempts] == [
        ("retry", None),
        ("settled", 200),
    ]
    assert attempts[1]["request"]["looked_up_first"].endswith(payment.charge_settlement)


def test_a_booking_finance_never_made_is_posted_again_after_the_lookup(
    harness: Harness, keys_forgotten: None
) -> None:
    payment = PaymentFactory(amount=321)
    event = record(payment.succeeded())
    harness.fault(status=503, count=1)  # refused before it reached the ledger
    with pytest.raises(TargetUnavailable):
        harness.handle(event)
    assert harness.handle(event).status == "done"
    (entry,) = harness.ledger(payment.charge_settlement)
    assert harness.settlement(payment.charge_settlement)["finance_reference"] == entry["reference"]
    assert len(posts(harness, payment.charge_settlement)) == 1


def test_an_approval_retried_after_a_lost_answer_books_once(
    harness: Harness, keys_forgotten: None
) -> None:
    payment = PaymentFactory(amount=THRESHOLD * 2)
    assert harness.handle(record(payment.succeeded())).status == "done"
    approve = command(payment, "approve")
    harness.booked_unheard(approve)
    # The same command again, as its retry tier (or a replay) hands it over.
    assert harness.handle(approve).status == "done"
    (entry,) = harness.ledger(payment.charge_settlement)
    row = harness.settlement(payment.charge_settlement)
    assert (row["state"], row["finance_reference"], row["approved_by"]) == (
        "settled",
        entry["reference"],
        "ops@example.com",
    )
