"""The source endpoints the worker reads, one query for every protocol, and the cursor of a
polled one.

A source endpoint is read while its connector speaks ``protocol`` and at least one enabled
flow starts at it; the REST poller (``streams/integration/poller.py``) and the Kafka-topic
forwarder (``streams/integration/topic_sources.py``) both list them here, and each checks the
rows for its protocol (an invalid one is skipped and said, never fatal).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import select, update

from sinks.db import database_errors
from sinks.integration.tables import connectors, endpoints, flows
from streams.mapping import dump_output, load_payload


def enabled_source_endpoints(engine: sqlalchemy.Engine, protocol: str) -> list[dict[str, Any]]:
    """Every source endpoint of a ``protocol`` connector with an enabled flow, unchecked:
    the endpoint's columns (``id``, ``name``, ``direction``, ``path``, ``poll_interval_s``,
    ``cursor``, ``kafka_topic``, ``config``, ``secret_credential_id``) and its connector's
    ``connector`` (name) and ``base_url``; ordered by endpoint id."""
    statement = (
        select(
            endpoints.c.id,
            endpoints.c.name,
            endpoints.c.direction,
            endpoints.c.path,
            endpoints.c.poll_interval_s,
            endpoints.c.cursor,
            endpoints.c.kafka_topic,
            endpoints.c.config,
            endpoints.c.secret_credential_id,
            connectors.c.name.label("connector"),
            connectors.c.base_url,
        )
        .join(connectors, connectors.c.id == endpoints.c.connector_id)
        .where(
            connectors.c.protocol == protocol,
            endpoints.c.direction == "source",
            select(flows.c.id)
            .where(flows.c.source_endpoint_id == endpoints.c.id, flows.c.enabled)
            .exists(),
        )
        .order_by(endpoints.c.id)
    )
    with database_errors(f"read {protocol} source endpoints"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def save_cursor(engine: sqlalchemy.Engine, endpoint_id: int, cursor: Any) -> None:
    """Store where a polled endpoint reads on from (any JSON value)."""
    document = load_payload(dump_output(cursor))
    with database_errors("save poll cursor"), engine.begin() as conn:
        conn.execute(update(endpoints).where(endpoints.c.id == endpoint_id).values(cursor=document))
