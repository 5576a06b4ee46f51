"""The Payment Gateway's reconciliation report: every Stripe event accepted on one UTC day
against where it ended (read side, like :mod:`sinks.payments.queries`: blocking psycopg2 I/O,
errors through :func:`sinks.db.database_errors`).

The report (:func:`reconciliation`) puts every Stripe event *accepted* on a day
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
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, and_, case, exists, func, literal, select

from sinks.db import database_errors
from sinks.dead_letters.tables import DEAD, dead_letters
from sinks.payments.queries import day_bounds
from sinks.payments.tables import (
    OUTCOME_IGNORED,
    OUTCOME_RECORDED,
    OUTCOME_WAITING,
    payment_events,
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
