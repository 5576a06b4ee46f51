"""Read-side queries of the Payment Gateway: what the settlements API and the console show.

Nothing here writes; the settlement pipeline owns the tables (``sinks/payments/tables.py``).
Every function takes the engine, runs blocking psycopg2 I/O (call it from a thread, never on
the event loop) and raises the error tree through :func:`sinks.db.database_errors`.

Days are UTC calendar days. Amounts are summed per currency only — never across currencies.

The reconciliation report (:func:`reconciliation`) puts every Stripe event *accepted* on a day
(its ingress time, ``synapseops-received-at``) into one bucket:

=================  =========================================================================
settled            its settlement reached the finance ledger
failed             payment failed, finance refused, or a person rejected it
pending_approval   a large payment still waiting for a person
pending            stored but not finished: in flight or on the retry road
dead               a ``dead`` dead letter of the ``payment-settlement`` pipeline holds it, and
                   no other delivery of the event finished it
no_effect          changed nothing on purpose (``recorded``/``ignored``: out of order,
                   already settled, a type that is not settled)
=================  =========================================================================

An event that waited for approval is counted by its settlement's state *now* (an approval
that went through makes it ``settled``). ``dead`` is counted from the dead letters, apart from
the events' own outcomes, so ``balanced`` (accepted == sum of the buckets) is a real check: it
turns false when an outcome is unknown to the report or a dead letter was counted for an event
never accepted that day. (An event one delivery of which died while a duplicate finished it
counts once, in its outcome's bucket.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, and_, case, exists, func, literal, select

from sinks.db import database_errors
from sinks.dead_letters.tables import DEAD, dead_letters
from sinks.payments.tables import (
    OUTCOME_IGNORED,
    OUTCOME_RECORDED,
    OUTCOME_WAITING,
    payment_events,
    settlement_attempts,
    settlement_audit,
    settlements,
)
from synapseops import headers as kh
from topics.registry import PAYMENT_SETTLEMENT, STRIPE_EVENTS

SETTLED = "settled"
FAILED = "failed"
PENDING_APPROVAL = "pending_approval"
PENDING = "pending"
DEAD_BUCKET = "dead"
NO_EFFECT = "no_effect"
BUCKETS = (SETTLED, FAILED, PENDING_APPROVAL, PENDING, DEAD_BUCKET, NO_EFFECT)


@dataclass(frozen=True)
class SettlementFilter:
    state: str | None = None
    currency: str | None = None  # upper-case ISO 4217
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    payment_id: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c = settlements.c
        result: list[ColumnElement[bool]] = []
        if self.state is not None:
            result.append(c.state == self.state)
        if self.currency is not None:
            result.append(c.currency == self.currency)
        if self.since is not None:
            result.append(c.created_at >= self.since)
        if self.until is not None:
            result.append(c.created_at < self.until)
        if self.payment_id is not None:
            result.append(c.payment_id == self.payment_id)
        return result


@dataclass(frozen=True)
class SettlementTrail:
    """One settlement with everything that happened to it, oldest first."""

    settlement: dict[str, Any]
    events: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    audit: list[dict[str, Any]]


@dataclass
class Bucket:
    count: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> minor units

    def add(self, count: int, currency: str | None, amount: int | None) -> None:
        self.count += count
        if currency is not None and amount is not None:
            self.amounts[currency] = self.amounts.get(currency, 0) + amount


@dataclass(frozen=True)
class Reconciliation:
    day: date
    accepted: Bucket
    buckets: dict[str, Bucket]

    @property
    def accounted(self) -> int:
        return sum(bucket.count for bucket in self.buckets.values())

    @property
    def balanced(self) -> bool:
        return self.accepted.count == self.accounted


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


# ---- settlements -----------------------------------------------------------------------


def list_settlements(
    engine: sqlalchemy.Engine, criteria: SettlementFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Matching settlements, newest first, and how many match in all."""
    clauses = criteria.clauses()
    page = (
        select(settlements)
        .where(*clauses)
        .order_by(settlements.c.created_at.desc(), settlements.c.settlement_id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(settlements).where(*clauses)
    with database_errors("settlements list"), engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(page).mappings()]
        return rows, int(conn.execute(total).scalar_one())


def get_settlement(engine: sqlalchemy.Engine, settlement_id: str) -> dict[str, Any] | None:
    statement = select(settlements).where(settlements.c.settlement_id == settlement_id)
    with database_errors("settlements get"), engine.connect() as conn:
        row = conn.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def settlement_trail(engine: sqlalchemy.Engine, settlement_id: str) -> SettlementTrail | None:
    """The settlement, its Stripe events (raw bytes and headers), finance attempts and audit."""
    events = (
        select(payment_events)
        .where(payment_events.c.settlement_id == settlement_id)
        .order_by(payment_events.c.received_at, payment_events.c.id)
    )
    attempts = (
        select(settlement_attempts)
        .where(settlement_attempts.c.settlement_id == settlement_id)
        .order_by(settlement_attempts.c.started_at, settlement_attempts.c.id)
    )
    audit = (
        select(settlement_audit)
        .where(settlement_audit.c.settlement_id == settlement_id)
        .order_by(settlement_audit.c.at, settlement_audit.c.id)
    )
    # One transaction (REPEATABLE READ): the four reads see the same moment.
    with database_errors("settlement trail"), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            row = (
                conn.execute(
                    select(settlements).where(settlements.c.settlement_id == settlement_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            return SettlementTrail(
                settlement=dict(row),
                events=[dict(r) for r in conn.execute(events).mappings()],
                attempts=[dict(r) for r in conn.execute(attempts).mappings()],
                audit=[dict(r) for r in conn.execute(audit).mappings()],
            )


def daily_volumes(
    engine: sqlalchemy.Engine,
    *,
    since: date | None = None,
    until: date | None = None,
    currency: str | None = None,
) -> list[dict[str, Any]]:
    """Per UTC day of ``created_at`` (``since``..``until`` inclusive), currency and state:
    ``{day, currency, state, count, amount}``, oldest day first."""
    day = func.date(func.timezone("UTC", settlements.c.created_at)).label("day")
    clauses: list[ColumnElement[bool]] = []
    if since is not None:
        clauses.append(settlements.c.created_at >= day_bounds(since)[0])
    if until is not None:
        clauses.append(settlements.c.created_at < day_bounds(until)[1])
    if currency is not None:
        clauses.append(settlements.c.currency == currency)
    statement = (
        select(
            day,
            settlements.c.currency,
            settlements.c.state,
            func.count().label("count"),
            func.coalesce(func.sum(settlements.c.amount), 0).label("amount"),
        )
        .where(*clauses)
        .group_by(day, settlements.c.currency, settlements.c.state)
        .order_by(day, settlements.c.currency, settlements.c.state)
    )
    with database_errors("settlement volumes"), engine.connect() as conn:
        return [
            {**row, "count": int(row["count"]), "amount": int(row["amount"])}
            for row in conn.execute(statement).mappings()
        ]


# ---- reconciliation --------------------------------------------------------------------

_DEAD_EVENT_ID = dead_letters.c.headers[kh.EVENT_ID].astext


def _dead_letter_clauses() -> list[ColumnElement[bool]]:
    # Commands (approvals) die on the same pipeline; only Stripe events are reconciled.
    return [
        dead_letters.c.pipeline == PAYMENT_SETTLEMENT,
        dead_letters.c.status == DEAD,
        dead_letters.c.original_topic == STRIPE_EVENTS.name,
    ]


def _event_buckets(conn: sqlalchemy.Connection, start: datetime, end: datetime) -> Any:
    pe, s = payment_events.c, settlements.c
    has_dead_letter = exists().where(*_dead_letter_clauses(), _DEAD_EVENT_ID == pe.event_id)
    bucket = case(
        (pe.processed_at.is_(None), literal(PENDING)),
        (pe.outcome.in_((OUTCOME_RECORDED, OUTCOME_IGNORED)), literal(NO_EFFECT)),
        (pe.outcome == OUTCOME_WAITING, func.coalesce(s.state, literal(PENDING_APPROVAL))),
        else_=pe.outcome,
    ).label("bucket")
    statement = (
        select(bucket, s.currency, func.count().label("n"), func.sum(s.amount).label("amount"))
        .select_from(payment_events.outerjoin(settlements, s.settlement_id == pe.settlement_id))
        .where(
            pe.received_at >= start,
            pe.received_at < end,
            # A stored event that died is counted once, as dead (from the dead letters).
            ~and_(pe.processed_at.is_(None), has_dead_letter),
        )
        .group_by(bucket, s.currency)
    )
    return conn.execute(statement).mappings()


def _parse_received_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _dead_events(conn: sqlalchemy.Connection, start: datetime, end: datetime) -> tuple[Bucket, int]:
    """The dead bucket of the day, and how many of its events were never stored (accepted
    at ingress, but undecodable or dead before the pipeline's first write)."""
    pe, s = payment_events.c, settlements.c
    statement = (
        select(
            _DEAD_EVENT_ID.label("event_id"),
            dead_letters.c.headers[kh.RECEIVED_AT].astext.label("received_header"),
            dead_letters.c.original_timestamp,
            dead_letters.c.dead_at,
            dead_letters.c.id,
            pe.event_id.label("stored_event_id"),
            pe.received_at,
            pe.processed_at,
            s.currency,
            s.amount,
        )
        .select_from(
            dead_letters.outerjoin(payment_events, pe.event_id == _DEAD_EVENT_ID).outerjoin(
                settlements, s.settlement_id == pe.settlement_id
            )
        )
        # A record dies after it was received: dead_at bounds the scan from below.
        .where(*_dead_letter_clauses(), dead_letters.c.dead_at >= start)
        .order_by(dead_letters.c.id)
    )
    bucket, unstored, seen = Bucket(), 0, set()
    for row in conn.execute(statement).mappings():
        received = (
            row["received_at"]
            or _parse_received_at(row["received_header"])
            or row["original_timestamp"]
            or row["dead_at"]
        )
        identity = row["event_id"] or f"dead-letter:{row['id']}"
        if not (start <= received < end) or identity in seen:
            continue
        if row["processed_at"] is not None:
            # One delivery died, a duplicate of it was processed: the event ended in its
            # outcome's bucket, not here (counting both would unbalance the day).
            continue
        seen.add(identity)
        bucket.add(1, row["currency"], row["amount"])
        unstored += row["stored_event_id"] is None
    return bucket, unstored


def reconciliation(engine: sqlalchemy.Engine, day: date) -> Reconciliation:
    """The day's accepted events against where each ended (see the module docstring)."""
    start, end = day_bounds(day)
    buckets = {name: Bucket() for name in BUCKETS}
    stored_count = (
        select(func.count())
        .select_from(payment_events)
        .where(payment_events.c.received_at >= start, payment_events.c.received_at < end)
    )
    with database_errors("settlement reconciliation"), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            for row in _event_buckets(conn, start, end):
                name = row["bucket"]
                if name not in buckets:
                    # An outcome this report does not know: leave it out, so the day shows
                    # as unbalanced instead of hiding it in a wrong bucket.
                    continue
                amount = None if name == NO_EFFECT else _int_or_none(row["amount"])
                buckets[name].add(int(row["n"]), row["currency"], amount)
            buckets[DEAD_BUCKET], unstored_dead = _dead_events(conn, start, end)
            accepted = Bucket(count=int(conn.execute(stored_count).scalar_one()) + unstored_dead)
    for name, bucket in buckets.items():
        if name != NO_EFFECT:
            for currency, amount in bucket.amounts.items():
                accepted.amounts[currency] = accepted.amounts.get(currency, 0) + amount
    return Reconciliation(day=day, accepted=accepted, buckets=buckets)


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None
