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
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.payments.tables import OUTCOME_WAITING, payment_events, settlement_audit, settlements
from streams.payments.events import EntryKind
from streams.payments.settlement import Settlement, SettlementState

if TYPE_CHECKING:
    from sinks.payments.deciding import EventRecord

Row = dict[str, Any]


def shallow(record: Any) -> Row:
    """A dataclass's fields as a row, without :func:`dataclasses.asdict`'s deep copies (its
    JSON fields go to the driver as they are)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


# Advisory locks of many payments in one statement, in ascending lock id: the sub-select's
# ORDER BY (kept by OFFSET 0, which stops the planner from flattening it) is the lock order.
LOCK_PAYMENTS = text(
    "SELECT now() AS at, pg_advisory_xact_lock(ordered.id) FROM ("
    " SELECT DISTINCT hashtext(k) AS id FROM unnest(CAST(:keys AS text[])) AS k"
    " ORDER BY id OFFSET 0) AS ordered"
)
_insert_events = pg_insert(payment_events)
INSERT_EVENTS = _insert_events.on_conflict_do_update(
    index_elements=["event_id"], set_={"event_id": _insert_events.excluded.event_id}
).returning(payment_events.c.event_id, payment_events.c.processed_at)
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
_upsert = pg_insert(settlements)
# RETURNING makes SQLAlchemy batch the rows into multi-row VALUES (insertmanyvalues); without
# it this upsert went to the driver's executemany, one round trip per row.
UPSERT_SETTLEMENTS = _upsert.on_conflict_do_update(
    index_elements=["settlement_id"], set_={c: _upsert.excluded[c] for c in EVENT_COLUMNS}
).returning(settlements.c.settlement_id)
# Many rows' updates as one statement over arrays (one bind parameter per column, so the
# statement is the same whatever the batch size).
FINISH_SETTLEMENTS = text(
    "UPDATE settlements AS s SET state = a.state, reason = a.reason,"
    " finance_reference = COALESCE(a.ref, s.finance_reference),"
    " settled_at = CASE WHEN a.booked THEN now() ELSE s.settled_at END, updated_at = now()"
    " FROM unnest(CAST(:ids AS text[]), CAST(:states AS text[]), CAST(:reasons AS text[]),"
    " CAST(:refs AS text[]), CAST(:booked AS boolean[])) AS a(id, state, reason, ref, booked)"
    " WHERE s.settlement_id = a.id"
)
MARK_EVENTS = text(
    "UPDATE payment_events AS e SET settlement_id = COALESCE(m.sid, e.settlement_id),"
    " processed_at = CASE WHEN m.done THEN now() END,"
    " outcome = CASE WHEN m.done THEN m.outcome END,"
    " reason = CASE WHEN m.done THEN m.reason END"
    " FROM unnest(CAST(:ids AS text[]), CAST(:sids AS text[]), CAST(:done AS boolean[]),"
    " CAST(:outcomes AS text[]), CAST(:reasons AS text[])) AS m(id, sid, done, outcome, reason)"
    " WHERE e.event_id = m.id AND e.processed_at IS NULL"
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
        row = shallow(self)
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
    result = conn.execute(INSERT_EVENTS, [shallow(unique[eid]) for eid in sorted(unique)])
    return {eid: processed for eid, processed in result.all()}


def upsert_settlements(conn: Connection, rows: Sequence[Row]) -> None:
    """Write the settlements as the batch's events left them (decided under their locks)."""
    if not rows:
        return
    columns = ("settlement_id", "payment_id", "kind", *EVENT_COLUMNS)
    ordered = sorted(rows, key=lambda row: str(row["settlement_id"]))
    conn.execute(UPSERT_SETTLEMENTS, [{c: row[c] for c in columns} for row in ordered]).all()


def finish_settlements(conn: Connection, rows: Sequence[Row]) -> None:
    """Write finance's answers: state, reason, reference and settled time of each row."""
    if not rows:
        return
    ordered = sorted(rows, key=lambda row: str(row["settlement_id"]))
    conn.execute(
        FINISH_SETTLEMENTS,
        {
            name: [row[column] for row in ordered]
            for name, column in (
                ("ids", "settlement_id"),
                ("states", "state"),
                ("reasons", "reason"),
                ("refs", "finance_reference"),
                ("booked", "booked"),
            )
        },
    )


def mark_events(conn: Connection, marks: Sequence[EventMark]) -> None:
    """Record what each event did; an event already processed keeps its first outcome."""
    if not marks:
        return
    ordered = sorted(marks, key=lambda m: m.event_id)
    conn.execute(
        MARK_EVENTS,
        {
            "ids": [m.event_id for m in ordered],
            "sids": [m.settlement_id for m in ordered],
            "done": [m.processed for m in ordered],
            "outcomes": [m.outcome for m in ordered],
            "reasons": [m.reason for m in ordered],
        },
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
        conn.execute(settlement_audit.insert(), [e.as_row() for e in entries])
