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
from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, func, or_, select

from sinks.driver_sql import Script
from sinks.payments import batch_sql as sql
from sinks.payments.tables import settlements
from streams.payments.events import EntryKind
from streams.payments.settlement import Settlement, SettlementState

if TYPE_CHECKING:
    from sinks.payments.deciding import EventRecord

Row = dict[str, Any]


def shallow(record: Any) -> Row:
    """A dataclass's fields as a row, without :func:`dataclasses.asdict`'s deep copies (its
    JSON fields go to the driver as they are)."""
    kind: type = type(record)
    return {name: getattr(record, name) for name in _field_names(kind)}


@cache
def _field_names(kind: type) -> tuple[str, ...]:
    # dataclasses.fields() walks the class's field table on every call: a few per settlement.
    return tuple(f.name for f in fields(kind))


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


def lock_keys(payment_ids: Iterable[str]) -> list[str]:
    return sorted({payment_lock_key(p) for p in payment_ids})


def lock_payment(conn: Connection, payment_id: str) -> None:
    """One payment's advisory lock (a person's command)."""
    conn.exec_driver_sql(sql.LOCK_PAYMENTS, (lock_keys([payment_id]),))


def lock_and_read(
    conn: Connection,
    lock_ids: Iterable[str],
    event_ids: Iterable[str],
    settlement_ids: Iterable[str],
    payment_ids: Iterable[str],
) -> tuple[datetime, set[str], dict[str, Row]]:
    """One round trip, which begins the (folded) transaction: take the advisory locks of
    ``lock_ids`` (ascending lock id), then read the transaction's ``now()``, which of
    ``event_ids`` are stored *and processed* already, and every settlement row of
    ``settlement_ids`` or of ``payment_ids``, locked in ascending settlement id (by id)."""
    script = Script()
    script.add(sql.LOCK_PAYMENTS, (lock_keys(lock_ids),))
    ids = (sorted(set(event_ids)), sorted(set(settlement_ids)), sorted(set(payment_ids)))
    script.add(sql.DECIDE_READ, ids)
    result = script.run(conn, begin=True)
    assert result is not None
    at: datetime | None = None
    processed: set[str] = set()
    state: dict[str, Row] = {}
    for row in result.mappings():
        at, processed = row["at"], set(row["processed"] or ())
        if row["settlement_id"] is not None:
            state[row["settlement_id"]] = {c: row[c] for c in sql.SETTLEMENT_COLUMNS}
    assert at is not None  # the read always has its one row
    return at, processed, state


def lock_settlements(
    conn: Connection,
    settlement_ids: Iterable[str],
    payments_first: Iterable[str] = (),
    *,
    begin: bool = False,
) -> dict[str, Row]:
    """Every settlement row of ``settlement_ids``, locked in ascending settlement id, by id;
    the advisory locks of ``payments_first`` are taken before, in the same round trip (which
    begins the folded transaction with ``begin``)."""
    sids = sorted(set(settlement_ids))
    keys = lock_keys(payments_first)
    script = Script()
    if keys:
        script.add(sql.LOCK_PAYMENTS, (keys,))
    if not sids:
        script.run(conn, begin=begin)
        return {}
    script.add(sql.LOCK_SETTLEMENTS, (sids, []))
    result = script.run(conn, begin=begin)
    assert result is not None
    return {row["settlement_id"]: dict(row) for row in result.mappings()}


def lock_payments(conn: Connection, payment_ids: Iterable[str]) -> None:
    """The payments' advisory locks alone (ascending lock id)."""
    keys = lock_keys(payment_ids)
    if keys:
        conn.exec_driver_sql(sql.LOCK_PAYMENTS, (keys,))


def load(conn: Connection, settlement_id: str, *, lock: bool = True) -> Current | None:
    statement = select(settlements).where(settlements.c.settlement_id == settlement_id)
    row = conn.execute(statement.with_for_update() if lock else statement).mappings().first()
    return current(row) if row is not None else None


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


def _json(value: Any) -> str:
    """JSON text for a ``jsonb`` parameter (PostgreSQL keeps the value, not the text), by
    msgspec: several per settlement, ~5x cheaper than ``json.dumps``."""
    return msgspec.json.encode(value).decode()


def add_settlements(script: Script, rows: Sequence[Row]) -> None:
    """Write the settlements as the batch's events left them (decided under their locks)."""
    ordered = sorted(rows, key=lambda row: str(row["settlement_id"]))
    values = [tuple(row[c] for c in sql.UPSERT_COLUMNS) for row in ordered]
    script.add_rows(sql.UPSERT_SETTLEMENTS, sql.UPSERT_ROW, values)


def add_events(script: Script, events: Sequence[EventRecord], marks: Sequence[EventMark]) -> None:
    """Store each event once with what it did (``marks``, at most one per event): an event
    already stored and processed keeps its first outcome (see ``batch_sql.INSERT_EVENTS``)."""
    by_id = {m.event_id: m for m in marks}
    unique = {e.event_id: e for e in reversed(events)}  # a statement may not touch a row twice
    values: list[tuple[Any, ...]] = []
    for event_id in sorted(unique):
        event, mark = unique[event_id], by_id.get(event_id)
        facts = (
            event.event_id,
            event.payment_id,
            event.event_type,
            event.created,
            event.api_version,
            event.livemode,
            event.raw,
            _json(event.http_headers),
            event.traceparent,
            event.trace_id,
            event.topic,
            event.partition,
            event.offset,
            event.received_at,
        )
        if mark is None:
            values.append((*facts, None, False, None, None))
        else:
            values.append((*facts, mark.settlement_id, mark.processed, mark.outcome, mark.reason))
    script.add_rows(sql.INSERT_EVENTS, sql.EVENT_ROW, values)


def add_finished(script: Script, rows: Sequence[Row]) -> None:
    """Write finance's answers: state, reason, reference and settled time of each row."""
    if not rows:
        return
    ordered = sorted(rows, key=lambda row: str(row["settlement_id"]))
    columns = ("settlement_id", "state", "reason", "finance_reference", "booked")
    script.add(sql.FINISH_SETTLEMENTS, [[row[c] for row in ordered] for c in columns])


def add_marks(script: Script, marks: Sequence[EventMark]) -> None:
    """Record what each (finished) event did; an event already processed keeps its first
    outcome."""
    if not marks:
        return
    ordered = sorted(marks, key=lambda m: m.event_id)
    script.add(
        sql.MARK_EVENTS,
        (
            [m.event_id for m in ordered],
            [m.settlement_id for m in ordered],
            [m.outcome for m in ordered],
            [m.reason for m in ordered],
        ),
    )


def add_resolved(script: Script, resolved: Sequence[tuple[str, str, str | None]]) -> None:
    """(settlement id, outcome, reason): events that left these entries waiting for a person
    now show how each ended."""
    if resolved:
        script.add(
            sql.RESOLVE_WAITING, tuple(list(column) for column in zip(*resolved, strict=True))
        )


def add_attempts(script: Script, attempts: Sequence[Row]) -> None:
    values = [
        tuple(_json(a[c]) if c == "request" else a[c] for c in sql.ATTEMPT_COLUMNS)
        for a in attempts
    ]
    script.add_rows(sql.INSERT_ATTEMPTS, sql.ATTEMPT_ROW, values)


def add_audits(script: Script, entries: Sequence[AuditEntry]) -> None:
    values = [
        (e.settlement_id, e.payment_id, e.action, e.actor, _json(e.as_row()["detail"]))
        for e in entries
    ]
    script.add_rows(sql.INSERT_AUDIT, sql.AUDIT_ROW, values)


def resolve_waiting_events(
    conn: Connection, settlement_id: str, outcome: str, reason: str | None
) -> None:
    """Events that left their entry waiting for a person now show how it ended."""
    script = Script()
    add_resolved(script, [(settlement_id, outcome, reason)])
    script.run(conn)


def audit(
    conn: Connection,
    settlement_id: str,
    payment_id: str | None,
    action: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    script = Script()
    add_audits(script, [AuditEntry(settlement_id, payment_id, action, actor, detail)])
    script.run(conn)
