"""The settlement repository: every state change of a settlement in one PostgreSQL transaction.

Two transactions per batch of bookings, with the finance calls between them and outside both
(``streams/payments/pipeline.py`` explains why that is exactly-once):

* :meth:`SettlementRepository.begin_events` (:mod:`sinks.payments.deciding`) — lock the batch's
  payments, store its Stripe events (``ON CONFLICT (event_id)``: the de-duplication), lock
  the settlement rows they touch, let the caller's pure function decide each event in offset
  order, and write the decisions: settlement rows, the events' outcomes and the audit trail,
  one statement per table. An event whose row already has ``processed_at`` is a duplicate and
  changes nothing. Deciding to book stamps ``finance_requested_at`` once; a booking of an
  entry already stamped is a *re-post* (``Step.reposting``): an earlier call's outcome is
  unknown, and the gateway asks finance before posting again. A person's approve/reject
  (:meth:`SettlementRepository.begin_command`) is decided the same way, one at a time.
* :meth:`SettlementRepository.record` (:mod:`sinks.payments.recording`) — after finance
  answered: each state (``settled`` with the finance reference, or ``failed`` with finance's
  reason), every attempt, the events' outcomes and the audit entries, together.

Locks: transaction-scoped advisory locks on the payment ids come first, then the row locks, each
kind in a fixed order (:mod:`sinks.payments.rows`). A row lock alone cannot serialise the
*first* event of an entry (there is no row to lock yet) or the refund arithmetic over a
payment's refund rows; the advisory lock does both. Every method is blocking: call it in an
executor. Database errors come out as the error tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update

from sinks.db import database_errors
from sinks.driver_sql import folded_transaction
from sinks.payments import rows
from sinks.payments.deciding import Decide, Decided, EventRecord, Pending, Wave, decide_wave
from sinks.payments.recording import Answer, Attempt, Finished, record_answers
from sinks.payments.tables import OUTCOME_FAILED, settlements
from streams.payments.settlement import Action, Decision, Settlement
from synapseops.errors import SchemaInvalid

__all__ = [
    "Answer",
    "Attempt",
    "Decide",
    "EventRecord",
    "Finished",
    "Pending",
    "SettlementRepository",
    "Step",
    "Wave",
]

Step = Decided  # what a first transaction decided for one record


class SettlementRepository:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    # ---- first transaction ------------------------------------------------------------------

    def begin_events(self, pending: Sequence[Pending], decide: Decide) -> Wave:
        """Store and decide ``pending`` (one partition's events, in offset order) as far as
        one wave goes; :class:`Wave` says which were decided and which wait for the next."""
        with database_errors("settlements: begin events"), folded_transaction(self.engine) as conn:
            return decide_wave(conn, pending, decide)

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

    # ---- second transaction -----------------------------------------------------------------

    def record(
        self, answers: Sequence[Answer], waiting: Sequence[str], payments: Sequence[str]
    ) -> dict[str, Finished | Exception]:
        """Record finance's answers and mark ``waiting`` events done (their trigger is out);
        the result of each final answer by settlement id (see :mod:`sinks.payments.recording`);
        ``payments``: the lock keys of the payments concerned."""
        if not answers and not waiting:
            return {}
        with (
            database_errors("settlements: record answers"),
            folded_transaction(self.engine) as conn,
        ):
            return record_answers(conn, answers, waiting, payments)

    def load(self, settlement_id: str) -> Settlement | None:
        with database_errors("settlements: load"), self.engine.connect() as conn:
            current = rows.load(conn, settlement_id, lock=False)
            return current.settlement if current else None
