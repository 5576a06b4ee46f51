"""The pure parts of set-based settlement: a batch item's answer, a refund entry's charge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sinks.payments.deciding import row_charge
from sinks.payments.finance import FinanceReceipt, _item_answer
from sinks.payments.recording import Answer, Attempt
from synapseops.errors import (
    FinanceRefused,
    SchemaInvalid,
    TargetRejected,
    TargetUnavailable,
    classify,
)


def _item(status: object, body: object, replayed: bool = False) -> dict[str, object]:
    return {"idempotency_key": "stl_1", "status": status, "body": body, "replayed": replayed}


def test_a_booked_item_is_a_receipt_with_its_reference() -> None:
    answer = _item_answer(_item(201, {"reference": "fin_1"}, replayed=True), 0.01)
    assert isinstance(answer, FinanceReceipt)
    assert (answer.reference, answer.status, answer.replayed) == ("fin_1", 201, True)
    assert isinstance(_item_answer(_item(201, {}), 0.0), SchemaInvalid)
    assert isinstance(_item_answer({"body": {}}, 0.0), SchemaInvalid)


@pytest.mark.parametrize(
    ("status", "error", "kind", "expected"),
    [
        (409, "idempotency_key_in_flight", TargetUnavailable, "retryable"),
        (409, "idempotency_key_reused", TargetRejected, "fatal"),
        (422, "invalid_request", TargetRejected, "fatal"),
        (503, "sandbox_injected_fault", TargetUnavailable, "retryable"),
        (429, "rate_limited", TargetUnavailable, "retryable"),
        (402, "account_frozen", FinanceRefused, "rejected"),
    ],
)
def test_a_failed_item_maps_like_a_single_call(
    status: int, error: str, kind: type[Exception], expected: str
) -> None:
    answer = _item_answer(_item(status, {"error": error}), 0.0)
    assert isinstance(answer, kind)
    assert classify(answer) == expected


def test_a_refund_entry_names_its_charge() -> None:
    assert row_charge("stl_ch_1_refund_300") == "ch_1"
    assert row_charge("stl_ch_a_refund_b_refund_5") == "ch_a_refund_b"
    assert row_charge("stl_pi_1_charge") is None
    assert row_charge("stl_dp_1_dispute") is None


def test_an_answer_is_a_reference_or_a_refusal_or_neither() -> None:
    attempt = Attempt("stl_1", None, datetime.now(UTC), 1, {}, None, None, "retry")
    assert not Answer(attempt).final
    assert Answer(attempt, reference="fin_1").final
    with pytest.raises(ValueError):
        Answer(attempt, reference="fin_1", refusal="no")
