"""The statements of a settlement batch as driver SQL (:mod:`sinks.driver_sql`).

Each takes every row of a batch at once, and each transaction sends its writes together as one
:class:`~sinks.driver_sql.Script`, so a batch costs the same few round trips whatever its size
(:mod:`sinks.payments.deciding` and :mod:`sinks.payments.recording` say which). Column names
are checked against :mod:`sinks.payments.tables` by tests/unit/payments/test_batch_sql.py.
"""

from __future__ import annotations

from sinks.payments.tables import OUTCOME_WAITING, settlements

SETTLEMENT_COLUMNS = tuple(settlements.c.keys())

# Advisory locks of many payments in one statement, in ascending lock id: the sub-select's
# ORDER BY (kept by OFFSET 0, which stops the planner from flattening it) is the lock order.
LOCK_PAYMENTS = """
SELECT count(pg_advisory_xact_lock(ordered.id)) FROM (
    SELECT DISTINCT hashtext(k) AS id FROM unnest(%s::text[]) AS k ORDER BY id OFFSET 0
) AS ordered
"""

# After the payments' locks, the first transaction's one read: its now(), which of the batch's
# events are stored and processed already (a former delivery's, an earlier wave's), and every
# settlement row of its settlement ids or payment ids, locked in ascending id (the lateral
# sub-select's ORDER BY is its lock order). Always at least one row; the settlement columns
# are NULL when there is none.
DECIDE_READ = f"""
SELECT n.at, n.processed, s.*
FROM (SELECT now() AS at, ARRAY(
          SELECT event_id FROM payment_events
          WHERE event_id = ANY(%s::text[]) AND processed_at IS NOT NULL) AS processed) AS n
LEFT JOIN LATERAL (
    SELECT {", ".join(SETTLEMENT_COLUMNS)} FROM settlements
    WHERE settlement_id = ANY(%s::text[]) OR payment_id = ANY(%s::text[])
    ORDER BY settlement_id
    FOR UPDATE
) AS s ON true
"""

# Every settlement row of these settlement ids or payment ids, locked in ascending id.
LOCK_SETTLEMENTS = f"""
SELECT {", ".join(SETTLEMENT_COLUMNS)} FROM settlements
WHERE settlement_id = ANY(%s::text[]) OR payment_id = ANY(%s::text[])
ORDER BY settlement_id
FOR UPDATE
"""

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
UPSERT_COLUMNS = ("settlement_id", "payment_id", "kind", *EVENT_COLUMNS)
UPSERT_SETTLEMENTS = f"""
INSERT INTO settlements ({", ".join(UPSERT_COLUMNS)}) VALUES {{rows}}
ON CONFLICT (settlement_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in EVENT_COLUMNS)}
"""
UPSERT_ROW = (
    "(%s::text, %s::text, %s::text, %s::bigint, %s::text, %s::text, %s::text, "
    "%s::timestamptz, %s::text, %s::text, %s::timestamptz, %s::timestamptz, %s::timestamptz)"
)

# Each event stored once with what it did (decided under its payment's lock, so the row a
# former delivery stored, read by KNOWN_EVENTS, cannot change meanwhile). A stored event takes
# its outcome only while unprocessed (the first outcome stays) and only when there is one: an
# event that changes nothing (a duplicate, one left for the next wave) writes nothing.
EVENT_FACTS = (
    "event_id",
    "payment_id",
    "event_type",
    "created",
    "api_version",
    "livemode",
    "raw",
    "http_headers",
    "traceparent",
    "trace_id",
    "topic",
    "partition",
    '"offset"',
    "received_at",
)
INSERT_EVENTS = f"""
INSERT INTO payment_events AS e ({", ".join(EVENT_FACTS)},
                                 settlement_id, processed_at, outcome, reason)
SELECT {", ".join("v." + c for c in EVENT_FACTS)}, v.settlement_id,
       CASE WHEN v.done THEN now() END, CASE WHEN v.done THEN v.outcome END,
       CASE WHEN v.done THEN v.reason END
FROM (VALUES {{rows}}) AS v ({", ".join(EVENT_FACTS)}, settlement_id, done, outcome, reason)
ON CONFLICT (event_id) DO UPDATE SET
    settlement_id = coalesce(EXCLUDED.settlement_id, e.settlement_id),
    processed_at = EXCLUDED.processed_at, outcome = EXCLUDED.outcome, reason = EXCLUDED.reason
WHERE e.processed_at IS NULL
  AND (EXCLUDED.processed_at IS NOT NULL
       OR (EXCLUDED.settlement_id IS NOT NULL
           AND EXCLUDED.settlement_id IS DISTINCT FROM e.settlement_id))
"""
EVENT_ROW = (
    "(%s::text, %s::text, %s::text, %s::timestamptz, %s::text, %s::boolean, %s::bytea, "
    "%s::jsonb, %s::text, %s::text, %s::text, %s::int, %s::bigint, %s::timestamptz, "
    "%s::text, %s::boolean, %s::text, %s::text)"
)

# Finance's answers: state, reason, reference and settled time of each row.
FINISH_SETTLEMENTS = """
UPDATE settlements AS s SET state = a.state, reason = a.reason,
    finance_reference = coalesce(a.ref, s.finance_reference),
    settled_at = CASE WHEN a.booked THEN now() ELSE s.settled_at END, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[])
    AS a(id, state, reason, ref, booked)
WHERE s.settlement_id = a.id
"""

# What each event did, once it is known (finance answered, the trigger is out); an event
# already processed keeps its first outcome.
MARK_EVENTS = """
UPDATE payment_events AS e SET settlement_id = coalesce(m.sid, e.settlement_id),
    processed_at = now(), outcome = m.outcome, reason = m.reason
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS m(id, sid, outcome, reason)
WHERE e.event_id = m.id AND e.processed_at IS NULL
"""

# Events that left their entry waiting for a person now show how it ended.
RESOLVE_WAITING = f"""
UPDATE payment_events AS e SET outcome = w.outcome, reason = w.reason
FROM unnest(%s::text[], %s::text[], %s::text[]) AS w(sid, outcome, reason)
WHERE e.settlement_id = w.sid AND e.outcome = '{OUTCOME_WAITING}'
"""

ATTEMPT_COLUMNS = (
    "settlement_id",
    "event_id",
    "started_at",
    "duration_ms",
    "request",
    "response_status",
    "response_body",
    "outcome",
    "error_class",
)
INSERT_ATTEMPTS = f"INSERT INTO settlement_attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES {{rows}}"
ATTEMPT_ROW = (
    "(%s::text, %s::text, %s::timestamptz, %s::int, %s::jsonb, %s::int, %s::text, %s::text, "
    "%s::text)"
)

AUDIT_COLUMNS = ("settlement_id", "payment_id", "action", "actor", "detail")
INSERT_AUDIT = f"INSERT INTO settlement_audit ({', '.join(AUDIT_COLUMNS)}) VALUES {{rows}}"
AUDIT_ROW = "(%s::text, %s::text, %s::text, %s::text, %s::jsonb)"
