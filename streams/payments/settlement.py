"""What a payment event does to a payment's settlements — decided without I/O.

States (a payment's charge entry; refunds and disputes are entries of their own)::

    (none) ──created/processing──▶ pending ──succeeded──▶ settled
       │                              │  ╲──succeeded, large──▶ pending_approval ─approve─▶ settled
       │                              │                                          ─reject──▶ failed
       └──────────succeeded───────────┘──payment_failed / canceled──▶ failed ──succeeded──▶ …

``failed`` is not terminal for a PaymentIntent (a customer may retry with another card), but
``settled`` is: nothing moves a settled entry backwards, so a late ``payment_failed`` or a
duplicate ``succeeded`` is absorbed. Settlement ids are derived from Stripe's ids, so the same
entry always gets the same finance ``Idempotency-Key``, across retries, crashes and replays.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from streams.payments.events import EntryKind, PaymentEvent


class SettlementState(StrEnum):
    PENDING = "pending"
    PENDING_APPROVAL = "pending_approval"
    SETTLED = "settled"
    FAILED = "failed"


class Action(StrEnum):
    IGNORE = "ignore"  # duplicate, out of order, or nothing to do
    RECORD = "record"  # store the new state, no finance call
    SETTLE = "settle"  # call finance with the settlement id as Idempotency-Key
    AWAIT_APPROVAL = "await_approval"  # store pending_approval, publish large_payment


@dataclass(frozen=True)
class Settlement:
    settlement_id: str
    payment_id: str
    kind: EntryKind
    amount: int
    currency: str
    state: SettlementState
    # A person's word on a large payment ("approve" / "reject"), once given. It outlives the
    # state: an approved entry is pending again while finance is called, and a duplicate
    # ``succeeded`` must not send it back to the approval inbox.
    approval: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    settlement_id: str
    state: SettlementState | None
    amount: int = 0
    currency: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ApprovalPolicy:
    """Amounts (minor units) at or above which a charge waits for a person, per currency."""

    thresholds: dict[str, int]

    def needs_approval(self, amount: int, currency: str) -> bool:
        limit = self.thresholds.get(currency.upper())
        return limit is not None and amount >= limit


SUCCEEDED = {"payment_intent.succeeded"}
FAILED = {"payment_intent.payment_failed", "payment_intent.canceled"}
OPENED = {
    "payment_intent.created",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.amount_capturable_updated",
}


def settlement_id_for(event: PaymentEvent) -> str:
    if event.kind is EntryKind.CHARGE:
        return f"stl_{event.payment_id}_charge"
    if event.kind is EntryKind.REFUND:
        # charge.refunded carries the cumulative amount; each new total is one refund entry.
        return f"stl_{event.object_id}_refund_{event.amount}"
    return f"stl_{event.object_id}_dispute"


def decide(
    event: PaymentEvent,
    current: Settlement | None,
    policy: ApprovalPolicy,
    refunded_before: int = 0,
) -> Decision:
    """The one thing ``event`` does to the entry ``current`` (None: no entry yet).

    ``refunded_before`` is the total of the charge's refund entries already booked; it turns
    Stripe's cumulative ``amount_refunded`` into the step to book.
    """
    sid = settlement_id_for(event)
    if event.kind is EntryKind.CHARGE:
        return _decide_charge(event, current, policy, sid)
    if current is not None:
        if current.state is SettlementState.PENDING:
            # Decided before, booking not confirmed (finance down, crash before the commit):
            # settle the stored amount again; the same Idempotency-Key keeps it one entry.
            return Decision(
                Action.SETTLE, sid, SettlementState.PENDING, current.amount, current.currency
            )
        return Decision(Action.IGNORE, sid, current.state, reason="entry already exists")
    amount = event.amount - refunded_before if event.kind is EntryKind.REFUND else event.amount
    if amount <= 0:
        return Decision(
            Action.IGNORE, sid, None, reason="refund total not above what is already booked"
        )
    return Decision(Action.SETTLE, sid, SettlementState.PENDING, amount, event.currency)


def _decide_charge(
    event: PaymentEvent, current: Settlement | None, policy: ApprovalPolicy, sid: str
) -> Decision:
    state = current.state if current else None
    if current is not None and current.approval == "reject":
        return Decision(Action.IGNORE, sid, state, reason="rejected by a person")
    if state in (SettlementState.SETTLED, SettlementState.PENDING_APPROVAL):
        return Decision(Action.IGNORE, sid, state, reason=f"already {state}")
    if event.event_type in SUCCEEDED:
        approved = current is not None and current.approval == "approve"
        if not approved and policy.needs_approval(event.amount, event.currency):
            return Decision(
                Action.AWAIT_APPROVAL,
                sid,
                SettlementState.PENDING_APPROVAL,
                event.amount,
                event.currency,
                reason="amount at or above the approval threshold",
            )
        return Decision(Action.SETTLE, sid, SettlementState.PENDING, event.amount, event.currency)
    if event.event_type in FAILED:
        if state is SettlementState.FAILED:
            return Decision(Action.IGNORE, sid, state, reason="already failed")
        reason = event.failure_code or event.event_type.rsplit(".", 1)[-1]
        return Decision(
            Action.RECORD, sid, SettlementState.FAILED, event.amount, event.currency, reason
        )
    if event.event_type in OPENED and state is None:
        return Decision(Action.RECORD, sid, SettlementState.PENDING, event.amount, event.currency)
    return Decision(Action.IGNORE, sid, state, reason=f"{event.event_type} changes nothing")


def after_approval(
    current: Settlement, approved: bool, who: str, note: str | None = None
) -> Decision:
    """A person decided on a ``pending_approval`` entry (``note``: why, if they said).

    An approval already given whose booking is not confirmed yet (``pending`` with
    ``approval == "approve"``: finance was down, or the worker died mid-call) settles again:
    the command is redelivered or retried, and the Idempotency-Key keeps it one entry.
    """
    if approved and current.state is SettlementState.PENDING and current.approval == "approve":
        return Decision(
            Action.SETTLE,
            current.settlement_id,
            SettlementState.PENDING,
            current.amount,
            current.currency,
            reason=f"approved by {who}",
        )
    if current.state is not SettlementState.PENDING_APPROVAL:
        return Decision(
            Action.IGNORE, current.settlement_id, current.state, reason=f"{current.state}"
        )
    if approved:
        return Decision(
            Action.SETTLE,
            current.settlement_id,
            SettlementState.PENDING,
            current.amount,
            current.currency,
            reason=f"approved by {who}",
        )
    return Decision(
        Action.RECORD,
        current.settlement_id,
        SettlementState.FAILED,
        current.amount,
        current.currency,
        reason=f"rejected by {who}: {note}" if note else f"rejected by {who}",
    )
