"""Ingestion health per data source, read from the warehouse itself.

Why PostgreSQL and not Faust tables: ``warehouse.events`` holds both times of every event
(``time``, when it happened; ``ingested_at``, when the platform observed it), so volume and
exact latency percentiles of any window are one grouped query (``percentile_cont``) over the
rows that are really there, with no second store to keep in step and nothing lost to a
worker's restart. Errors are the pipeline's dead letters of that source (their headers name
it). A source is flagged when its p99 latency over the window passes ``high_latency_s``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy

from sinks.db import database_errors

_PER_SOURCE = sqlalchemy.text(
    """
    SELECT source,
           count(*) AS events,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - time))
               AS p50_s,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - time))
               AS p99_s,
           max(ingested_at) AS last_ingested_at
    FROM warehouse.events
    WHERE ingested_at > now() - make_interval(mins => :minutes)
    GROUP BY source ORDER BY source
    """
)
_PER_MINUTE = sqlalchemy.text(
    """
    SELECT date_trunc('minute', ingested_at) AS minute,
           count(*) AS events,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - time))
               AS p50_s,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ingested_at - time))
               AS p99_s
    FROM warehouse.events
    WHERE source = :source AND ingested_at > now() - make_interval(mins => :minutes)
    GROUP BY 1 ORDER BY 1
    """
)
_ERRORS = sqlalchemy.text(
    """
    SELECT headers->>'synapseops-source' AS source, count(*) AS errors
    FROM dead_letters
    WHERE pipeline = 'aggregation-transform'
      AND dead_at > now() - make_interval(mins => :minutes)
    GROUP BY 1
    """
)


def source_health(
    engine: sqlalchemy.Engine, minutes: int = 60, high_latency_s: float = 60.0
) -> list[dict[str, Any]]:
    """One entry per source seen in the window: events, p50/p99 latency (s), errors, flag."""
    with database_errors("reading ingestion health"), engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(_PER_SOURCE, {"minutes": minutes})]
        errors = {
            row.source: int(row.errors)
            for row in conn.execute(_ERRORS, {"minutes": minutes})
            if row.source
        }
    by_source = {row["source"]: row for row in rows}
    for source in errors:
        by_source.setdefault(
            source,
            {"source": source, "events": 0, "p50_s": None, "p99_s": None, "last_ingested_at": None},
        )
    result = []
    for source in sorted(by_source):
        row = by_source[source]
        p99 = row["p99_s"]
        result.append(
            row
            | {
                "errors": errors.get(source, 0),
                "flagged": p99 is not None and float(p99) > high_latency_s,
            }
        )
    return result


def minutes_of(engine: sqlalchemy.Engine, source: str, minutes: int = 60) -> list[dict[str, Any]]:
    """Volume and latency percentiles of one source per minute of the window."""
    with database_errors("reading ingestion minutes"), engine.connect() as conn:
        rows = conn.execute(_PER_MINUTE, {"source": source, "minutes": minutes})
        return [dict(row._mapping) for row in rows]
