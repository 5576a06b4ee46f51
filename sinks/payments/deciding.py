"""The first transaction of a batch of Stripe events: decide every event under its payment's lock.

:func:`decide_wave` runs inside one transaction: lock the batch's payments, see which of its
events are processed already and lock and load every settlement they may touch (one round
trip, :func:`sinks.payments.rows.lock_and_read`), then apply the pure state machine to the
events **in offset order** on an in-memory copy of those rows — so two events of one entry in
one batch see each other exactly as they would one after the other — and write the outcome:
the settlements, each event once *with* what it did, the audit trail, one statement per table,
all in one round trip. The transaction is folded (:func:`sinks.driver_sql.folded_transaction`):
its BEGIN goes with the first round trip and its COMMIT with the last, so a wave costs two
round trips (three when a new refund step must count its charge's refunds), whatever its
size. An event is stored after its decision, not before: its payment's advisory lock keeps any
other writer of it out meanwhile, and its row is written once instead of inserted, then marked.

One booking per payment per wave: an event of a payment that already asked finance for a
booking (or an approval) in this wave is *deferred*, with every later event of that payment,
to the next wave, which starts after finance answered and the answer was recorded. What an
event decides never depends on a finance answer still unknown (a refund step counts earlier
refunds unless finance refused them; a duplicate ``succeeded`` must see the entry settled),
so a batch decides exactly what the events would have decided one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sinks.driver_sql import Script
from sinks.payments import rows
from sinks.payments.rows import AuditEntry, EventMark, Row
from sinks.payments.tables import OUTCOME_FAILED, OUTCOME_IGNORED, OUTCOME_RECORDED
from streams.payments.events import EntryKind, PaymentEvent
from streams.payments.settlement import (
    Action,
    Decision,
    Settlement,
    SettlementState,
    settlement_id_for,
)

Decide = Callable[[PaymentEvent, Settlement | None, int], Decision]


@dataclass(frozen=True)
class EventRecord:
    """One consumed Stripe event as ``payment_events`` keeps it."""

    event_id: str
    payment_id: str | None
    event_type: str
    created: datetime | None
    api_version: str | None
    livemode: bool | None
    raw: bytes
    http_headers: dict[str, Any]
    traceparent: str | None
    trace_id: str | None
    topic: str
    partition: int
    offset: int
    received_at: datetime


@dataclass(frozen=True)
class Pending:
    """One consumed Stripe event waiting for its decision (``payment`` None: not a type
    settlement acts on)."""

    event: EventRecord
    payment: PaymentEvent | None

    @property
    def lock_key(self) -> str:
        return str(self.event.payment_id or self.event.event_id)


@dataclass(frozen=True)
class Decided:
    """What the first transaction decided for one event. ``duplicate``: processed before."""

    duplicate: bool
    decision: Decision | None = None
    settlement: Settlement | None = None  # the entry as this transaction left it
    received_at: datetime | None = None  # ingress time of the event that asked for booking
    reposting: bool = False  # finance was asked to book it before: look it up first


@dataclass
class Wave:
    """Decisions by position in the input; ``deferred``: positions left for the next wave."""

    decided: dict[int, Decided] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)
    marks: list[EventMark] = field(default_factory=list)
    audits: list[AuditEntry] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)


def decide_wave(conn: Connection, pending: Sequence[Pending], decide: Decide) -> Wave:
    payments = [p.payment for p in pending if p.payment is not None]
    now, finished, state = rows.lock_and_read(
        conn,
        (p.lock_key for p in pending),
        (p.event.event_id for p in pending),
        (settlement_id_for(p) for p in payments),
        (p.payment_id for p in payments),
    )
    new_refunds = [
        p for p in payments if p.kind is EntryKind.REFUND and settlement_id_for(p) not in state
    ]
    if new_refunds:
        # A new refund step counts the charge's earlier refunds, wherever they are filed.
        state = rows.refund_rows(conn, {p.object_id for p in new_refunds}) | state
    wave = Wave()
    asking: set[str] = set()  # payments that asked finance (or a person) in this wave
    for index, item in enumerate(pending):
        key = item.lock_key
        if key in asking:
            wave.deferred.append(index)
            continue
        event_id = item.event.event_id
        if event_id in finished:
            wave.decided[index] = Decided(duplicate=True)
            continue
        if item.payment is None:
            mark = EventMark(event_id, None, OUTCOME_IGNORED, "not a settlement event")
            wave.marks.append(mark)
            finished.add(event_id)
            wave.decided[index] = Decided(duplicate=False)
            continue
        decided = _decide_one(wave, state, item, item.payment, decide, now)
        wave.decided[index] = decided
        action = decided.decision.action if decided.decision else Action.IGNORE
        if action in (Action.SETTLE, Action.AWAIT_APPROVAL):
            asking.add(key)
        else:
            finished.add(event_id)
    writes = Script()  # every write of the wave in one round trip
    rows.add_settlements(writes, [state[sid] for sid in sorted(wave.touched)])
    rows.add_events(writes, [p.event for p in pending], wave.marks)
    rows.add_audits(writes, wave.audits)
    writes.run(conn, commit=True)
    return wave


def row_charge(settlement_id: str) -> str | None:
    """The charge of a refund entry's id (``stl_<charge>_refund_<total>``), else None."""
    head, sep, _total = settlement_id.rpartition("_refund_")
    return head.removeprefix("stl_") if sep and head.startswith("stl_") else None


def _refunded(state: dict[str, Row], charge_id: str) -> int:
    """What the charge's refund entries already book (failed ones book nothing)."""
    return sum(
        int(row["amount"])
        for sid, row in state.items()
        if row_charge(sid) == charge_id and row["state"] != SettlementState.FAILED.value
    )


def _decide_one(
    wave: Wave,
    state: dict[str, Row],
    item: Pending,
    payment: PaymentEvent,
    decide: Decide,
    now: datetime,
) -> Decided:
    event = item.event
    sid = settlement_id_for(payment)
    row = state.get(sid)
    current = rows.current(row) if row is not None else None
    refunded_before = 0
    if payment.kind is EntryKind.REFUND and current is None:
        refunded_before = _refunded(state, payment.object_id)
    decision = decide(payment, current.settlement if current else None, refunded_before)
    if (
        decision.action is Action.IGNORE
        and current is not None
        and current.settlement.state is SettlementState.PENDING_APPROVAL
        and current.last_event_id == event.event_id
    ):
        # This event put the entry in the approval inbox, but its trigger may not have
        # reached Kafka before a crash: owe it again (its dedup_key absorbs a repeat).
        decision = Decision(
            Action.AWAIT_APPROVAL,
            sid,
            SettlementState.PENDING_APPROVAL,
            current.settlement.amount,
            current.settlement.currency,
            reason="approval trigger owed",
        )
    actor = f"stripe:{event.event_id}"
    before = current.settlement.state if current else None
    detail: dict[str, Any] = {"event_type": event.event_type, "reason": decision.reason}
    detail["from"] = before
    if decision.action is Action.IGNORE:
        wave.marks.append(EventMark(event.event_id, sid, OUTCOME_IGNORED, decision.reason))
        wave.audits.append(AuditEntry(sid, payment.payment_id, "event_ignored", actor, detail))
        return Decided(False, decision, current.settlement if current else None)
    assert decision.state is not None
    books = decision.action is Action.SETTLE
    after_row = _applied(row, payment, decision, event, now)
    state[sid] = after_row
    wave.touched.add(sid)
    after = rows.current(after_row)
    detail |= {"to": decision.state.value, "amount": decision.amount}
    detail["currency"] = decision.currency
    if decision.action is Action.RECORD:
        failed = decision.state is SettlementState.FAILED
        outcome = OUTCOME_FAILED if failed else OUTCOME_RECORDED
        wave.marks.append(EventMark(event.event_id, sid, outcome, decision.reason or None))
        action = "state_changed"
    else:
        # In flight until finance answers, or until its large_payment trigger is on Kafka.
        wave.marks.append(EventMark(event.event_id, sid, None, None, processed=False))
        action = "settlement_requested" if books else "approval_requested"
    wave.audits.append(AuditEntry(sid, payment.payment_id, action, actor, detail))
    reposting = books and current is not None and current.finance_requested_at is not None
    return Decided(False, decision, after.settlement, after.received_at, reposting)


def _applied(
    row: Row | None, payment: PaymentEvent, decision: Decision, event: Any, now: datetime
) -> Row:
    """The settlement row after ``decision`` (what the single-row upsert used to write)."""
    asks_booking = decision.action in (Action.SETTLE, Action.AWAIT_APPROVAL)
    books = decision.action is Action.SETTLE
    assert decision.state is not None
    changes: Row = {
        "amount": decision.amount,
        "currency": decision.currency,
        "state": decision.state.value,
        "reason": decision.reason or None,
        "last_event_id": event.event_id,
        "updated_at": now,
    }
    if row is None:
        return changes | {
            "settlement_id": decision.settlement_id,
            "payment_id": payment.payment_id,
            "kind": payment.kind.value,
            "event_created": event.created,
            "trace_id": event.trace_id,
            "received_at": event.received_at,
            "finance_requested_at": now if books else None,
            "approval_decision": None,
        }
    known = [t for t in (row["event_created"], event.created) if t is not None]
    changes["event_created"] = max(known) if known else None
    if asks_booking:
        # Latency is measured from the ingress of the event that asked for the booking.
        changes |= {"received_at": event.received_at, "trace_id": event.trace_id}
    if books:
        changes["finance_requested_at"] = row["finance_requested_at"] or now
    return row | changes
