"""The second transaction of a batch: record what finance answered, for every booking at once.

:func:`record_answers` takes the payments' advisory locks and locks the answered settlements
(ascending id, see :mod:`sinks.payments.rows`) in one round trip, moves each to ``settled``
with finance's reference or ``failed`` with finance's reason (an entry already settled stays as
it is), and stores every attempt — answered or not — and the events' outcomes and audit
entries, one statement per table, all in a second round trip that ends with the COMMIT (a
folded transaction: :func:`sinks.driver_sql.folded_transaction`): two round trips per batch,
whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sinks.driver_sql import Script
from sinks.payments import rows
from sinks.payments.rows import AuditEntry, EventMark, Row
from sinks.payments.tables import (
    OUTCOME_FAILED,
    OUTCOME_SETTLED,
    OUTCOME_WAITING,
    RESPONSE_BODY_LIMIT,
)
from streams.payments.settlement import Settlement, SettlementState
from synapseops.errors import SchemaInvalid


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

    def as_row(self) -> Row:
        row = rows.shallow(self)
        if row["response_body"] is not None:
            row["response_body"] = row["response_body"][:RESPONSE_BODY_LIMIT]
        return row


@dataclass(frozen=True)
class Answer:
    """Finance's word on one booking: ``reference`` (booked), ``refusal`` (said no), or
    neither (the call failed: only the attempt is logged, the state stays)."""

    attempt: Attempt
    reference: str | None = None
    refusal: str | None = None

    def __post_init__(self) -> None:
        if self.reference is not None and self.refusal is not None:
            raise ValueError("an answer is a reference or a refusal, not both")

    @property
    def final(self) -> bool:
        return self.reference is not None or self.refusal is not None


@dataclass(frozen=True)
class Finished:
    settlement: Settlement
    newly_settled: bool  # this call moved it to settled (metrics count each booking once)
    received_at: datetime | None


def record_answers(
    conn: Connection,
    answers: Sequence[Answer],
    waiting: Sequence[str],
    payments: Sequence[str],
) -> dict[str, Finished | Exception]:
    """Record ``answers`` and mark the ``waiting`` events (their approval trigger is on Kafka)
    done; the result of each final answer, by settlement id. ``payments``: the lock keys of
    every payment concerned, taken first as the first transaction takes them — it locks event
    rows before settlement rows and this one the other way round, so without them a
    redelivered event deciding while its earlier delivery is recorded could deadlock."""
    final = (a.attempt.settlement_id for a in answers if a.final)
    state = rows.lock_settlements(conn, final, payments_first=payments, begin=True)
    results: dict[str, Finished | Exception] = {}
    changed: dict[str, Row] = {}
    marks = [EventMark(eid, None, OUTCOME_WAITING, None) for eid in waiting]
    audits: list[AuditEntry] = []
    attempts: list[Row] = []
    resolved: list[tuple[str, str, str | None]] = []
    for answer in answers:
        attempt = answer.attempt
        sid = attempt.settlement_id
        if not answer.final:
            attempts.append(attempt.as_row())
            continue
        row = state.get(sid)
        if row is None:
            results[sid] = SchemaInvalid(
                f"settlement {sid} vanished before its booking was recorded"
            )
            continue
        attempts.append(attempt.as_row())
        before = SettlementState(row["state"])
        newly = before is not SettlementState.SETTLED and answer.reference is not None
        if before is not SettlementState.SETTLED:
            if answer.reference is not None:
                row |= {"state": SettlementState.SETTLED.value, "reason": None}
                row["finance_reference"] = answer.reference
            else:
                row |= {"state": SettlementState.FAILED.value, "reason": answer.refusal}
            row["booked"] = newly
            changed[sid] = row
        outcome = OUTCOME_SETTLED if answer.reference is not None else OUTCOME_FAILED
        if attempt.event_id is not None:
            marks.append(EventMark(attempt.event_id, sid, outcome, answer.refusal))
        if row["approval_decision"] is not None:
            resolved.append((sid, outcome, answer.refusal))
        action = "settled" if answer.reference is not None else "finance_refused"
        detail: dict[str, Any] = {"from": before.value, "status": attempt.response_status}
        detail |= {"reference": answer.reference} if answer.reference else {}
        detail |= {} if answer.reference else {"reason": answer.refusal}
        audits.append(AuditEntry(sid, row["payment_id"], action, "finance", detail))
        after = rows.current(row)
        results[sid] = Finished(after.settlement, newly, after.received_at)
    writes = Script()  # every write in one round trip, in the order they used to go
    rows.add_resolved(writes, resolved)
    rows.add_finished(writes, list(changed.values()))
    rows.add_attempts(writes, attempts)
    rows.add_marks(writes, marks)
    rows.add_audits(writes, audits)
    writes.run(conn, commit=True)
    return results
