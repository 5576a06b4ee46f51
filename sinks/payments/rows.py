"""Row-level statements of the settlement repository (:mod:`sinks.payments.store`), one
connection in hand: the payment lock, loading and upserting a settlement, marking an event,
the audit trail. Nothing here opens or commits a transaction; the repository does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.payments.tables import OUTCOME_WAITING, payment_events, settlement_audit, settlements
from streams.payments.events import EntryKind, PaymentEvent
from streams.payments.settlement import Decision, Settlement, SettlementState

if TYPE_CHECKING:
    from sinks.payments.store import EventRecord


@dataclass(frozen=True)
class Current:
    settlement: Settlement
    last_event_id: str | None
    received_at: datetime | None
    finance_requested_at: datetime | None


def first_request() -> Any:
    """``finance_requested_at`` as the first booking request left it (now, if none did)."""
    return func.coalesce(settlements.c.finance_requested_at, func.now())


def lock_payment(conn: Connection, payment_id: str) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"payment:{payment_id}"})


def load(conn: Connection, settlement_id: str, *, lock: bool = True) -> Current | None:
    statement = select(settlements).where(settlements.c.settlement_id == settlement_id)
    row = conn.execute(statement.with_for_update() if lock else statement).mappings().first()
    return current(row) if row is not None else None


def current(row: Any) -> Current:
    settlement = Settlement(
        settlement_id=row["settlement_id"],
        payment_id=row["payment_id"],
        kind=EntryKind(row["kind"]),
        amount=row["amount"],
        currency=row["currency"],
        state=SettlementState(row["state"]),
        approval=row["approval_decision"],
    )
    return Current(
        settlement, row["last_event_id"], row["received_at"], row["finance_requested_at"]
    )


def refunded(conn: Connection, charge_id: str) -> int:
    """What the charge's refund entries already book (failed ones book nothing)."""
    # settlement ids of refunds are stl_<charge>_refund_<total>; '_' is a LIKE wildcard.
    prefix = f"stl_{charge_id}_refund_".replace("\\", "\\\\").replace("_", "\\_")
    total = conn.execute(
        select(func.coalesce(func.sum(settlements.c.amount), 0)).where(
            settlements.c.settlement_id.like(prefix + "%", escape="\\"),
            settlements.c.state != SettlementState.FAILED.value,
        )
    ).scalar_one()
    return int(total)


def upsert(
    conn: Connection,
    payment: PaymentEvent,
    decision: Decision,
    event: EventRecord,
    asks_booking: bool,
    books: bool,
) -> Current:
    values: dict[str, Any] = {
        "settlement_id": decision.settlement_id,
        "payment_id": payment.payment_id,
        "kind": payment.kind.value,
        "amount": decision.amount,
        "currency": decision.currency,
        "state": decision.state.value if decision.state else None,
        "reason": decision.reason or None,
        "event_created": event.created,
        "last_event_id": event.event_id,
        "trace_id": event.trace_id,
        "received_at": event.received_at,
        "finance_requested_at": func.now() if books else None,
    }
    statement = pg_insert(settlements).values(**values)
    excluded = statement.excluded
    changes: dict[str, Any] = {
        "amount": excluded.amount,
        "currency": excluded.currency,
        "state": excluded.state,
        "reason": excluded.reason,
        "event_created": func.greatest(settlements.c.event_created, excluded.event_created),
        "last_event_id": excluded.last_event_id,
        "updated_at": func.now(),
    }
    if asks_booking:
        # Latency is measured from the ingress of the event that asked for the booking.
        changes |= {"received_at": excluded.received_at, "trace_id": excluded.trace_id}
    if books:
        changes["finance_requested_at"] = first_request()
    row = (
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["settlement_id"], set_=changes
            ).returning(settlements)
        )
        .mappings()
        .one()
    )
    return current(row)


def mark_event(
    conn: Connection,
    event_id: str,
    settlement_id: str | None,
    outcome: str | None,
    reason: str | None,
    *,
    processed: bool = True,
) -> None:
    values: dict[str, Any] = {"settlement_id": settlement_id}
    if processed:
        values |= {"processed_at": func.now(), "outcome": outcome, "reason": reason}
    conn.execute(
        update(payment_events)
        .where(payment_events.c.event_id == event_id, payment_events.c.processed_at.is_(None))
        .values(**values)
    )


def resolve_waiting_events(
    conn: Connection, settlement_id: str, outcome: str, reason: str | None
) -> None:
    """Events that left their entry waiting for a person now show how it ended."""
    conn.execute(
        update(payment_events)
        .where(
            payment_events.c.settlement_id == settlement_id,
            payment_events.c.outcome == OUTCOME_WAITING,
        )
        .values(outcome=outcome, reason=reason)
    )


def audit(
    conn: Connection,
    settlement_id: str,
    payment_id: str | None,
    action: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        settlement_audit.insert().values(
            settlement_id=settlement_id,
            payment_id=payment_id,
            action=action,
            actor=actor,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )
