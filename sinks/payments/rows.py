"""Statements of the settlement repository (:mod:`sinks.payments.store`), one connection in hand.

Set-based: each statement takes every row of a batch at once (one round trip however many
records the batch holds) — the payment locks, the events, the settlements, the event outcomes,
the audit trail. Nothing here opens or commits a transaction; the repository does.

Lock order, the same for every caller so that lanes, tiers and commands never deadlock: the
payments' advisory locks in ascending lock id (:func:`lock_payments`), then settlement rows in
ascending settlement id (``ORDER BY settlement_id FOR UPDATE`` locks in the order it returns),
and a payment's settlement rows are only ever locked by a holder of its advisory lock or, in
the second transaction, in that same settlement-id order with no advisory lock held.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Connection,
    Text,
    case,
    column,
    func,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.payments.tables import OUTCOME_WAITING, payment_events, settlement_audit, settlements
from streams.payments.events import EntryKind
from streams.payments.settlement import Settlement, SettlementState

if TYPE_CHECKING:
    from sinks.payments.deciding import EventRecord

Row = dict[str, Any]

# Advisory locks of many payments in one statement, in ascending lock id: the sub-select's
# ORDER BY (kept by OFFSET 0, which stops the planner from flattening it) is the lock order.
LOCK_PAYMENTS = text(
    "SELECT now() AS at, pg_advisory_xact_lock(ordered.id) FROM ("
    " SELECT DISTINCT hashtext(k) AS id FROM unnest(CAST(:keys AS text[])) AS k"
    " ORDER BY id OFFSET 0) AS ordered"
)
# The columns an event writes to its settlement (the rest belong to approvals and finance).
EVENT_COLUMNS = (
    "amount",
    "currency",
    "state",
    "reason",
    "event_created",
    "last_event_id",
    "trace_id",
    "received_at",
    "finance_requested_at",
    "updated_at",
)


@dataclass(frozen=True)
class Current:
    settlement: Settlement
    last_event_id: str | None
    received_at: datetime | None
    finance_requested_at: datetime | None


@dataclass(frozen=True)
class EventMark:
    """What an event did, for ``payment_events`` (``processed`` False: still in flight)."""

    event_id: str
    settlement_id: str | None
    outcome: str | None
    reason: str | None
    processed: bool = True


@dataclass(frozen=True)
class AuditEntry:
    settlement_id: str
    payment_id: str | None
    action: str
    actor: str
    detail: dict[str, Any]

    def as_row(self) -> Row:
        row = asdict(self)
        row["detail"] = {k: v for k, v in self.detail.items() if v is not None}
        return row


def payment_lock_key(payment_id: str) -> str:
    return f"payment:{payment_id}"


def first_request() -> Any:
    """``finance_requested_at`` as the first booking request left it (now, if none did)."""
    return func.coalesce(settlements.c.finance_requested_at, func.now())


def lock_payment(conn: Connection, payment_id: str) -> None:
    lock_payments(conn, [payment_id])


def lock_payments(conn: Connection, payment_ids: Iterable[str]) -> datetime:
    """Take the advisory lock of each payment (ascending lock id); the transaction's ``now()``."""
    keys = sorted({payment_lock_key(p) for p in payment_ids})
    at = conn.execute(LOCK_PAYMENTS, {"keys": keys}).first()
    if at is None:
        return datetime.now().astimezone()
    stamp: datetime = at[0]
    return stamp


def load(conn: Connection, settlement_id: str, *, lock: bool = True) -> Current | None:
    statement = select(settlements).where(settlements.c.settlement_id == settlement_id)
    row = conn.execute(statement.with_for_update() if lock else statement).mappings().first()
    return current(row) if row is not None else None


def lock_settlements(
    conn: Connection, settlement_ids: Iterable[str], payment_ids: Iterable[str] = ()
) -> dict[str, Row]:
    """Every settlement row of ``settlement_ids`` or of ``payment_ids``, locked in ascending
    settlement id; by settlement id."""
    sids, pids = sorted(set(settlement_ids)), sorted(set(payment_ids))
    if not sids and not pids:
        return {}
    statement = (
        select(settlements)
        .where(or_(settlements.c.settlement_id.in_(sids), settlements.c.payment_id.in_(pids)))
        .order_by(settlements.c.settlement_id)
        .with_for_update()
    )
    return {row["settlement_id"]: dict(row) for row in conn.execute(statement).mappings()}


def refund_rows(conn: Connection, charge_ids: Iterable[str]) -> dict[str, Row]:
    """The refund entries of these charges (settlement ids ``stl_<charge>_refund_<total>``)."""
    # '_' is a LIKE wildcard: escape it, and the escape character itself.
    prefixes = [
        f"stl_{c}_refund_".replace("\\", "\\\\").replace("_", "\\_") + "%" for c in charge_ids
    ]
    if not prefixes:
        return {}
    statement = select(settlements).where(
        or_(*(settlements.c.settlement_id.like(p, escape="\\") for p in prefixes))
    )
    return {row["settlement_id"]: dict(row) for row in conn.execute(statement).mappings()}


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


def insert_events(conn: Connection, events: Sequence[EventRecord]) -> dict[str, datetime | None]:
    """Store each event once (``ON CONFLICT (event_id)``; the no-op update locks the row a
    former delivery stored); ``processed_at`` of each, by event id (None: not finished)."""
    unique = {e.event_id: e for e in reversed(events)}  # one row each: a statement may not
    if not unique:  # touch a row twice
        return {}
    insert = pg_insert(payment_events).values([asdict(unique[eid]) for eid in sorted(unique)])
    statement = insert.on_conflict_do_update(
        index_elements=["event_id"], set_={"event_id": insert.excluded.event_id}
    ).returning(payment_events.c.event_id, payment_events.c.processed_at)
    return {eid: processed for eid, processed in conn.execute(statement).all()}


def upsert_settlements(conn: Connection, rows: Sequence[Row]) -> None:
    """Write the settlements as the batch's events left them (decided under their locks)."""
    if not rows:
        return
    columns = ("settlement_id", "payment_id", "kind", *EVENT_COLUMNS)
    ordered = sorted(rows, key=lambda row: str(row["settlement_id"]))
    statement = pg_insert(settlements).values([{c: row[c] for c in columns} for row in ordered])
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["settlement_id"],
            set_={c: statement.excluded[c] for c in EVENT_COLUMNS},
        )
    )


def finish_settlements(conn: Connection, rows: Sequence[Row]) -> None:
    """Write finance's answers: state, reason, reference and settled time of each row."""
    if not rows:
        return
    answer = values(
        column("settlement_id", Text),
        column("state", Text),
        column("reason", Text),
        column("finance_reference", Text),
        column("booked", Boolean),
        name="answer",
    ).data(
        [
            (r["settlement_id"], r["state"], r["reason"], r["finance_reference"], r["booked"])
            for r in sorted(rows, key=lambda row: str(row["settlement_id"]))
        ]
    )
    conn.execute(
        update(settlements)
        .where(settlements.c.settlement_id == answer.c.settlement_id)
        .values(
            state=answer.c.state,
            reason=answer.c.reason,
            finance_reference=func.coalesce(
                answer.c.finance_reference, settlements.c.finance_reference
            ),
            settled_at=case((answer.c.booked, func.now()), else_=settlements.c.settled_at),
            updated_at=func.now(),
        )
    )


def mark_events(conn: Connection, marks: Sequence[EventMark]) -> None:
    """Record what each event did; an event already processed keeps its first outcome."""
    if not marks:
        return
    mark = values(
        column("event_id", Text),
        column("settlement_id", Text),
        column("processed", Boolean),
        column("outcome", Text),
        column("reason", Text),
        name="mark",
    ).data(
        [
            (m.event_id, m.settlement_id, m.processed, m.outcome, m.reason)
            for m in sorted(marks, key=lambda m: m.event_id)
        ]
    )
    done = mark.c.processed
    conn.execute(
        update(payment_events)
        .where(
            payment_events.c.event_id == mark.c.event_id, payment_events.c.processed_at.is_(None)
        )
        .values(
            settlement_id=func.coalesce(mark.c.settlement_id, payment_events.c.settlement_id),
            processed_at=case((done, func.now()), else_=None),
            outcome=case((done, mark.c.outcome), else_=None),
            reason=case((done, mark.c.reason), else_=None),
        )
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
    audit_all(conn, [AuditEntry(settlement_id, payment_id, action, actor, detail)])


def audit_all(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    if entries:
        conn.execute(settlement_audit.insert().values([e.as_row() for e in entries]))
