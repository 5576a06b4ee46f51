"""SQLAlchemy Core tables of the Payment Gateway, matching migrations ``0003`` and ``0006``.

- ``payment_events``: every Stripe event the settlement pipeline consumed, once per Stripe event
  id, with its raw bytes and HTTP headers (the signature stays verifiable) and what it did
  (``outcome``; ``processed_at`` NULL while its settlement is still in flight or on the retry road).
- ``settlements``: one row per ledger entry (a payment's charge, each refund step, a dispute),
  keyed by the settlement id derived from Stripe's ids — the finance ``Idempotency-Key``.
- ``settlement_attempts``: every finance call, with the request and the (capped) response.
- ``settlement_audit``: who/what changed a settlement and when (events, finance, approvals).

Amounts are ``bigint`` minor units with an upper-case ISO 4217 currency, never floats.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

# settlements.state — the values of streams.payments.settlement.SettlementState.
STATES = ("pending", "pending_approval", "settled", "failed")

# payment_events.outcome — what a processed event did (NULL while in flight):
OUTCOME_SETTLED = "settled"  # its settlement reached the finance ledger
OUTCOME_FAILED = "failed"  # payment failed, finance refused (402/4xx) or a person rejected it
OUTCOME_WAITING = "pending_approval"  # a large payment now waits for a person
OUTCOME_RECORDED = "recorded"  # state stored, nothing to book yet (payment_intent.created …)
OUTCOME_IGNORED = "ignored"  # changed nothing (out of order, already settled, unsettled type)
OUTCOMES = (OUTCOME_SETTLED, OUTCOME_FAILED, OUTCOME_WAITING, OUTCOME_RECORDED, OUTCOME_IGNORED)

# settlement_attempts.outcome
ATTEMPT_SETTLED = "settled"
ATTEMPT_REJECTED = "rejected"  # business rejection: finance said no for good
ATTEMPT_RETRY = "retry"  # retryable failure (5xx, timeout, 409 in flight)
ATTEMPT_FATAL = "fatal"  # a request finance can never accept (422 key reused)

# A finance response body is kept for the audit trail, not as an archive.
RESPONSE_BODY_LIMIT = 4096

# fillfactor 50 (migration 0017): the mark after finance answers is a HOT update.
payment_events = Table(
    "payment_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False, unique=True),  # Stripe evt_…: the de-dup key
    Column("payment_id", Text, nullable=True),
    Column("settlement_id", Text, nullable=True),  # the entry this event acted on
    Column("event_type", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=True),  # Stripe's own event time
    Column("api_version", Text, nullable=True),
    Column("livemode", Boolean, nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("http_headers", JSONB, nullable=False),
    Column("traceparent", Text, nullable=True),
    Column("trace_id", Text, nullable=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),  # ingress time
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    Column("outcome", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_payment_events_payment_id", "payment_id"),
    Index("ix_payment_events_settlement_id", "settlement_id"),
    Index("ix_payment_events_received_at", "received_at"),
    Index("ix_payment_events_trace_id", "trace_id"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", Text, primary_key=True),  # also the finance Idempotency-Key
    Column("payment_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # charge | refund | dispute
    Column("amount", BigInteger, nullable=False),  # minor units
    Column("currency", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("finance_reference", Text, nullable=True),
    Column("event_created", DateTime(timezone=True), nullable=True),  # newest event applied
    Column("last_event_id", Text, nullable=True),
    Column("trace_id", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=True),  # ingress of first event
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("approved_by", Text, nullable=True),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    Column("approval_decision", Text, nullable=True),
    # First time finance was asked to book it; a later booking is a re-post (looked up first).
    Column("finance_requested_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "state IN ('pending', 'pending_approval', 'settled', 'failed')",
        name="ck_settlements_state",
    ),
    CheckConstraint("kind IN ('charge', 'refund', 'dispute')", name="ck_settlements_kind"),
    CheckConstraint(
        "approval_decision IS NULL OR approval_decision IN ('approve', 'reject')",
        name="ck_settlements_approval_decision",
    ),
    Index("ix_settlements_state", "state"),
    Index("ix_settlements_created_at", "created_at"),
    Index("ix_settlements_currency", "currency"),
    Index("ix_settlements_payment_id", "payment_id"),
)

settlement_attempts = Table(
    "settlement_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "settlement_id",
        Text,
        ForeignKey("settlements.settlement_id", name="fk_settlement_attempts_settlement"),
        nullable=False,
    ),
    Column("event_id", Text, nullable=True),  # the Stripe event or command that caused it
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("request", JSONB, nullable=False),
    Column("response_status", Integer, nullable=True),  # NULL: no answer (timeout, refused)
    Column("response_body", Text, nullable=True),  # capped at RESPONSE_BODY_LIMIT characters
    Column("outcome", Text, nullable=False),
    Column("error_class", Text, nullable=True),
    Index("ix_settlement_attempts_settlement_id", "settlement_id", "started_at"),
)

settlement_audit = Table(
    "settlement_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    # No foreign key: an event may be audited against an entry it decided not to create.
    Column("settlement_id", Text, nullable=False),
    Column("payment_id", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),  # "stripe:<evt>", "finance", "user:<name>", ...
    Column("detail", JSONB, nullable=False),
    Index("ix_settlement_audit_settlement_id", "settlement_id", "at"),
    Index("ix_settlement_audit_payment_id", "payment_id"),
)
