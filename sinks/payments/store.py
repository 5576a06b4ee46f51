"""The settlement repository: every state change of a settlement in one PostgreSQL transaction.

Two transactions per booking, with the finance call between them and outside both
(``streams/payments/pipeline.py`` explains why that is exactly-once):

* :meth:`SettlementRepository.begin_event` / :meth:`begin_command` — lock the payment, store
  the Stripe event (``ON CONFLICT (event_id) DO NOTHING``: the de-duplication), lock the
  settlement row (``SELECT … FOR UPDATE``), let the caller's pure function decide, and write
  the decision: the settlement row, the event's outcome and the audit entry together. An event
  whose row already has ``processed_at`` is reported as a duplicate and changes nothing.
  Deciding to book stamps ``finance_requested_at`` once; a booking of an entry already
  stamped is a *re-post* (``Step.reposting``): an earlier call's outcome is unknown, and the
  gateway asks finance before posting again.
* :meth:`SettlementRepository.finish` — after finance answered: the state (``settled`` with
  the finance reference, or ``failed`` with finance's reason), the attempt, the event's outcome
  and the audit entry, together.

Locks: a transaction-scoped advisory lock on the payment id comes first, then the row lock. The
row lock alone cannot serialise the *first* event of an entry (there is no row to lock yet) or
the refund arithmetic over a payment's refund rows; the advisory lock does both. Every method is
blocking: call it in an executor. Database errors come out as the error tree. The row-level
statements the transactions are made of live in :mod:`sinks.payments.rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.db import database_errors
from sinks.payments import rows
from sinks.payments.tables import (
    OUTCOME_FAILED,
    OUTCOME_IGNORED,
    OUTCOME_RECORDED,
    OUTCOME_SETTLED,
    OUTCOME_WAITING,
    RESPONSE_BODY_LIMIT,
    payment_events,
    settlement_attempts,
    settlements,
)
from streams.payments.events import EntryKind, PaymentEvent
from streams.payments.settlement import (
    Action,
    Decision,
    Settlement,
    SettlementState,
    settlement_id_for,
)
from synapseops.errors import SchemaInvalid

Decide = Callable[[Settlement | None, int], Decision]


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
class Step:
    """What the first transaction decided. ``duplicate``: processed before, nothing to do."""

    duplicate: bool
    decision: Decision | None = None
    settlement: Settlement | None = None  # the entry as this transaction left it
    received_at: datetime | None = None  # ingress time of the event that asked for booking
    reposting: bool = False  # finance was asked to book it before: look it up first


@dataclass(frozen=True)
class Attempt:
    """One finance call, as ``settlement_attempts`` keeps it."""

    settlement_id: str
    event_id: str | None
    started_at: datetime
    duration_ms: int
    request: dict[str, Any]
    response_status: int | None
    response_body: str | None
    outcome: str
    error_class: str | None = None

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        if row["response_body"] is not None:
            row["response_body"] = row["response_body"][:RESPONSE_BODY_LIMIT]
        return row


@dataclass(frozen=True)
class Finished:
    settlement: Settlement
    newly_settled: bool  # this call moved it to settled (metrics count each booking once)
    received_at: datetime | None


class SettlementRepository:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    # ---- first transaction ------------------------------------------------------------------

    def begin_event(self, event: EventRecord, payment: PaymentEvent | None, decide: Decide) -> Step:
        """Store ``event`` and apply ``decide(current, refunded_before)`` to its entry.

        ``payment`` None: a Stripe type settlement ignores; stored and marked ``ignored``.
        """
        with database_errors("settlements: begin event"), self.engine.begin() as conn:
            rows.lock_payment(conn, event.payment_id or event.event_id)
            # Insert, or lock the row a former delivery stored (the no-op update takes the row
            # lock), and learn in the same round trip whether that delivery finished it.
            insert = pg_insert(payment_events).values(**asdict(event))
            processed = conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["event_id"], set_={"event_id": insert.excluded.event_id}
                ).returning(payment_events.c.processed_at)
            ).scalar_one()
            if processed is not None:
                return Step(duplicate=True)
            if payment is None:
                rows.mark_event(
                    conn, event.event_id, None, OUTCOME_IGNORED, "not a settlement event"
                )
                return Step(duplicate=False)
            sid = settlement_id_for(payment)
            current = rows.load(conn, sid)
            refunded_before = 0
            if payment.kind is EntryKind.REFUND and current is None:
                refunded_before = rows.refunded(conn, payment.object_id)
            decision = decide(current.settlement if current else None, refunded_before)
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
            return self._apply_event(conn, event, payment, decision, current)

    def _apply_event(
        self,
        conn: Connection,
        event: EventRecord,
        payment: PaymentEvent,
        decision: Decision,
        current: rows.Current | None,
    ) -> Step:
        sid = decision.settlement_id
        before = current.settlement.state if current else None
        actor = f"stripe:{event.event_id}"
        detail: dict[str, Any] = {
            "event_type": event.event_type,
            "reason": decision.reason,
            "from": before,
        }
        if decision.action is Action.IGNORE:
            rows.mark_event(conn, event.event_id, sid, OUTCOME_IGNORED, decision.reason)
            rows.audit(conn, sid, payment.payment_id, "event_ignored", actor, detail)
            return Step(False, decision, current.settlement if current else None)
        assert decision.state is not None
        asks_booking = decision.action in (Action.SETTLE, Action.AWAIT_APPROVAL)
        books = decision.action is Action.SETTLE
        after = rows.upsert(conn, payment, decision, event, asks_booking, books)
        detail |= {"to": decision.state.value, "amount": decision.amount}
        detail["currency"] = decision.currency
        if decision.action is Action.RECORD:
            failed = decision.state is SettlementState.FAILED
            outcome = OUTCOME_FAILED if failed else OUTCOME_RECORDED
            rows.mark_event(conn, event.event_id, sid, outcome, decision.reason or None)
            rows.audit(conn, sid, payment.payment_id, "state_changed", actor, detail)
        elif decision.action is Action.AWAIT_APPROVAL:
            # The event stays unprocessed until its large_payment trigger is on Kafka.
            rows.mark_event(conn, event.event_id, sid, None, None, processed=False)
            rows.audit(conn, sid, payment.payment_id, "approval_requested", actor, detail)
        else:
            rows.mark_event(conn, event.event_id, sid, None, None, processed=False)
            rows.audit(conn, sid, payment.payment_id, "settlement_requested", actor, detail)
        reposting = books and current is not None and current.finance_requested_at is not None
        return Step(False, decision, after.settlement, after.received_at, reposting)

    def begin_command(
        self, settlement_id: str, decide: Callable[[Settlement], Decision], actor: str, at: datetime
    ) -> Step:
        """Apply a person's approve/reject (``decide`` is ``after_approval`` bound to it)."""
        with database_errors("settlements: begin command"), self.engine.begin() as conn:
            payment_id = conn.execute(
                select(settlements.c.payment_id).where(settlements.c.settlement_id == settlement_id)
            ).scalar_one_or_none()
            if payment_id is None:
                raise SchemaInvalid(f"no settlement {settlement_id} to approve or reject")
            rows.lock_payment(conn, payment_id)
            current = rows.load(conn, settlement_id)
            assert current is not None
            decision = decide(current.settlement)
            detail: dict[str, Any] = {
                "reason": decision.reason,
                "from": current.settlement.state.value,
            }
            who = f"user:{actor}"
            if decision.action is Action.IGNORE:
                rows.audit(conn, settlement_id, payment_id, "command_ignored", who, detail)
                return Step(False, decision, current.settlement, current.received_at)
            assert decision.state is not None
            approve = decision.action is Action.SETTLE
            values: dict[str, Any] = {"state": decision.state.value, "updated_at": func.now()}
            if current.settlement.approval is None:
                values |= {
                    "approval_decision": "approve" if approve else "reject",
                    "approved_by": actor,
                    "approved_at": at,
                }
            if approve:
                values["finance_requested_at"] = rows.first_request()
            else:
                values["reason"] = decision.reason
            conn.execute(
                update(settlements)
                .where(settlements.c.settlement_id == settlement_id)
                .values(**values)
            )
            if not approve:
                rows.resolve_waiting_events(conn, settlement_id, OUTCOME_FAILED, decision.reason)
            action = "approved" if approve else "rejected"
            rows.audit(
                conn, settlement_id, payment_id, action, who, detail | {"at": at.isoformat()}
            )
            after = rows.load(conn, settlement_id)
            assert after is not None
            reposting = approve and current.finance_requested_at is not None
            return Step(False, decision, after.settlement, after.received_at, reposting)

    def mark_waiting(self, event_id: str) -> None:
        """The event's ``large_payment`` trigger is on Kafka: the event is done."""
        with database_errors("settlements: mark waiting"), self.engine.begin() as conn:
            conn.execute(
                update(payment_events)
                .where(
                    payment_events.c.event_id == event_id, payment_events.c.processed_at.is_(None)
                )
                .values(processed_at=func.now(), outcome=OUTCOME_WAITING)
            )

    # ---- second transaction -----------------------------------------------------------------

    def finish(
        self,
        attempt: Attempt,
        *,
        reference: str | None = None,
        refusal: str | None = None,
    ) -> Finished:
        """Record finance's final answer: ``reference`` (booked) or ``refusal`` (said no)."""
        if (reference is None) == (refusal is None):
            raise ValueError("finish() takes a reference or a refusal")
        sid = attempt.settlement_id
        with database_errors("settlements: finish"), self.engine.begin() as conn:
            current = rows.load(conn, sid)
            if current is None:
                raise SchemaInvalid(f"settlement {sid} vanished before its booking was recorded")
            state = current.settlement.state
            payment_id = current.settlement.payment_id
            after = current
            newly = False
            if state is not SettlementState.SETTLED:
                values: dict[str, Any] = {"updated_at": func.now()}
                if reference is not None:
                    values |= {"state": SettlementState.SETTLED.value, "reason": None}
                    values |= {"finance_reference": reference, "settled_at": func.now()}
                    newly = True
                else:
                    values |= {"state": SettlementState.FAILED.value, "reason": refusal}
                row = (
                    conn.execute(
                        update(settlements)
                        .where(settlements.c.settlement_id == sid)
                        .values(**values)
                        .returning(settlements)
                    )
                    .mappings()
                    .one()
                )
                after = rows.current(row)
            conn.execute(settlement_attempts.insert().values(**attempt.as_row()))
            outcome = OUTCOME_SETTLED if reference is not None else OUTCOME_FAILED
            if attempt.event_id is not None:
                rows.mark_event(conn, attempt.event_id, sid, outcome, refusal)
            if current.settlement.approval is not None:
                rows.resolve_waiting_events(conn, sid, outcome, refusal)
            action = "settled" if reference is not None else "finance_refused"
            detail: dict[str, Any] = {"from": state.value, "status": attempt.response_status}
            detail |= {"reference": reference} if reference else {"reason": refusal}
            rows.audit(conn, sid, payment_id, action, "finance", detail)
            return Finished(after.settlement, newly, after.received_at)

    def record_attempt(self, attempt: Attempt) -> None:
        """A finance call that ended in a retryable or fatal error (state unchanged)."""
        with database_errors("settlements: record attempt"), self.engine.begin() as conn:
            conn.execute(settlement_attempts.insert().values(**attempt.as_row()))

    def load(self, settlement_id: str) -> Settlement | None:
        with database_errors("settlements: load"), self.engine.connect() as conn:
            current = rows.load(conn, settlement_id, lock=False)
            return current.settlement if current else None
