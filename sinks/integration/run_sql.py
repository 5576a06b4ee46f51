"""The statements :mod:`sinks.integration.run_batch` sends, as driver SQL.

A batch's Runs are written by a few multi-row statements whose size is the batch's: SQLAlchemy
cannot cache such a statement, so every batch paid its compilation (a Core ``VALUES`` of 200
rows, ~13% of the delivery worker's CPU) plus a bind object per value. These are plain
PostgreSQL text with ``%s`` placeholders, sent through ``Connection.exec_driver_sql``: psycopg2
quotes the parameters in C, SQLAlchemy still owns the connection (pool, events, error
wrapping, invalidation on a disconnect). The column names are checked against
:data:`sinks.integration.tables.runs` by the unit tests (tests/unit/integration/test_run_sql.py).
"""

from __future__ import annotations

from sinks.driver_sql import rows_of as rows_of  # shared with the payments' statements
from sinks.integration.tables import DUPLICATE, RUNNING, SUCCEEDED

# (flow id, source event id) pairs → delivered?, highest attempt, the kept sources.
KNOWN = f"""
SELECT r.flow_id, r.source_event_id,
       bool_or(r.status = '{SUCCEEDED}') AS delivered,
       max(r.attempt) AS highest,
       jsonb_agg(r.request -> 'source') FILTER (WHERE r.request ? 'source') AS sources
FROM runs AS r
WHERE (r.flow_id, r.source_event_id) IN (VALUES {{rows}})
GROUP BY r.flow_id, r.source_event_id
"""
KNOWN_ROW = "(%s::bigint, %s::text)"

# Bodies in parameter order: the rows go in by ``n``, and a serial id grows in insertion order
# (what SQLAlchemy's ``sort_by_parameter_order`` relies on for PostgreSQL as well), so the
# returned ids sorted are the parameters' ids in order.
BODIES = """
INSERT INTO run_bodies (content, content_type)
SELECT v.content, v.content_type FROM (VALUES {rows}) AS v (content, content_type, n)
ORDER BY v.n
RETURNING id
"""
BODIES_ROW = "(%s::bytea, %s::text, %s::int)"

# Every attempt written running; a record handled again rewrites its own attempt's row.
START = f"""
INSERT INTO runs (flow_id, source_event_id, attempt, status, mapping_version, request,
                  trace_id, rerun_of)
VALUES {{rows}}
ON CONFLICT ON CONSTRAINT uq_runs_flow_event_attempt DO UPDATE SET
    status = '{RUNNING}', started_at = now(), finished_at = NULL, duration_ms = NULL,
    mapping_version = EXCLUDED.mapping_version, request = EXCLUDED.request,
    response_status = NULL, response = NULL, error = NULL, error_class = NULL,
    failed_rule = NULL, body_ref = NULL, response_body_ref = NULL,
    rerun_of = EXCLUDED.rerun_of, trace_id = EXCLUDED.trace_id
RETURNING id, flow_id, source_event_id
"""
START_ROW = (
    f"(%s::bigint, %s::text, %s::int, '{RUNNING}', %s::int, %s::jsonb, %s::text, %s::bigint)"
)

# Another attempt of the same pair already succeeded: this one is the duplicate.
_RACED = f"""v.status = '{SUCCEEDED}' AND EXISTS (
        SELECT 1 FROM runs AS other
        WHERE other.flow_id = runs.flow_id AND other.source_event_id = runs.source_event_id
          AND other.status = '{SUCCEEDED}' AND other.id <> runs.id)"""

# Every outcome; the duplicate's note is a parameter (the last one).
FINISH = f"""
UPDATE runs SET
    status = CASE WHEN {_RACED} THEN '{DUPLICATE}' ELSE v.status END,
    finished_at = now(),
    duration_ms = v.duration_ms,
    failed_rule = v.failed_rule,
    error = CASE WHEN {_RACED} THEN %s ELSE v.error END,
    error_class = v.error_class,
    request = coalesce(v.request, runs.request),
    body_ref = v.body_ref,
    response_status = v.response_status,
    response = v.response,
    response_body_ref = v.response_body_ref
FROM (VALUES {{rows}}) AS v (id, status, duration_ms, failed_rule, error, error_class, request,
                            body_ref, response_status, response, response_body_ref)
WHERE runs.id = v.id
"""
FINISH_ROW = (
    "(%s::bigint, %s::text, %s::int, %s::text, %s::text, %s::text, %s::jsonb, %s::bigint, "
    "%s::int, %s::jsonb, %s::bigint)"
)
