"""SQLAlchemy Core tables of the API Integration service, matching migrations ``0004``-``0009``.

::

    connectors ──< endpoints ──(source / target)──< flows >── mappings ──< mapping_versions
                      │                              │  └──── credentials
                      └── secret_credential_id ──────┘
    flows ──< runs ──> run_bodies  (request/response bodies above the row cap)

- A **credential** keeps only Fernet ciphertext (:mod:`sinks.integration.credentials`); the
  clear secret is never stored, returned or logged. ``signing_secret`` is the kind an endpoint's
  webhook signature secret has (it never becomes an auth header).
- A **mapping version** is immutable: the store only inserts, and a trigger refuses UPDATE, so
  a Run's ``mapping_version`` always names the rules it ran with. ``rules`` is JSONB; read it
  as text (``rules::text``) and decode with ``streams.mapping.load_payload`` so numbers in
  rules stay exact (psycopg2 would decode them as floats).
- A **flow** pins ``mapping_version`` or leaves it NULL for "latest"; the composite foreign
  key makes a pinned version exist.
- A **run** is one attempt: UNIQUE(flow_id, source_event_id, attempt) makes a redelivered
  record write the same row, not a second one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

PROTOCOLS = ("webhook", "rest", "kafka")
DIRECTIONS = ("source", "target")
SIGNATURE_SCHEMES = ("shopify", "standard_webhooks", "hmac_hex", "none")
CREDENTIAL_KINDS = ("api_key", "bearer", "basic", "signing_secret")
RUNNING, SUCCEEDED, FAILED, DEAD = "running", "succeeded", "failed", "dead"
# Delivered, but another attempt of the same event had already succeeded (see 0005).
DUPLICATE = "duplicate"
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, DEAD, DUPLICATE)
# Names go into URLs (/webhooks/{connector}/{endpoint}) and logs: keep them boring.
CONNECTOR_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,62})$"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _created() -> Column[Any]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column[Any]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now())


connectors = Table(
    "connectors",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("protocol", Text, nullable=False),
    Column("base_url", Text, nullable=True),
    Column("config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created(),
    _updated(),
    CheckConstraint(_in("protocol", PROTOCOLS), name="ck_connectors_protocol"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    # Fernet token of the secret (for basic: "username:password"); never the clear text.
    Column("ciphertext", LargeBinary, nullable=False),
    # api_key only: the header the key travels in (e.g. X-Api-Key).
    Column("header_name", Text, nullable=True),
    _created(),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(_in("kind", CREDENTIAL_KINDS), name="ck_credentials_kind"),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "connector_id",
        BigInteger,
        ForeignKey("connectors.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("method", Text, nullable=True),
    Column("path", Text, nullable=True),
    # NULL: not chosen (0007); the webhook ingress refuses such a source.
    Column("signature_scheme", Text, nullable=True),
    Column("signature_header", Text, nullable=True),
    Column(
        "secret_credential_id",
        BigInteger,
        ForeignKey("credentials.id", ondelete="RESTRICT"),
        nullable=True,
    ),
    # Polled REST sources: how often, and where the last poll stopped.
    Column("poll_interval_s", Integer, nullable=True),
    Column("cursor", JSONB, nullable=True),
    # Kafka sources/targets: the topic.
    Column("kafka_topic", Text, nullable=True),
    Column("config", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _created(),
    _updated(),
    # /webhooks/{connector}/{endpoint} names at most one source endpoint.
    UniqueConstraint("connector_id", "direction", "name", name="uq_endpoints_connector_name"),
    CheckConstraint(_in("direction", DIRECTIONS), name="ck_endpoints_direction"),
    CheckConstraint(_in("signature_scheme", SIGNATURE_SCHEMES), name="ck_endpoints_signature"),
    CheckConstraint("poll_interval_s IS NULL OR poll_interval_s > 0", name="ck_endpoints_poll"),
)

mappings = Table(
    "mappings",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("description", Text, nullable=True),
    _created(),
)

mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column(
        "mapping_id",
        BigInteger,
        ForeignKey("mappings.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True),
    Column("rules", JSONB, nullable=False),
    _created(),
    Column("created_by", Text, nullable=True),
    CheckConstraint("version >= 1", name="ck_mapping_versions_version"),
)

flows = Table(
    "flows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column(
        "source_endpoint_id",
        BigInteger,
        ForeignKey("endpoints.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column(
        "target_endpoint_id",
        BigInteger,
        ForeignKey("endpoints.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column(
        "credential_id",
        BigInteger,
        ForeignKey("credentials.id", ondelete="RESTRICT"),
        nullable=True,
    ),
    Column(
        "mapping_id", BigInteger, ForeignKey("mappings.id", ondelete="RESTRICT"), nullable=False
    ),
    # NULL = the mapping's latest version at the time each event is delivered.
    Column("mapping_version", Integer, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    _created(),
    _updated(),
    ForeignKeyConstraint(
        ["mapping_id", "mapping_version"],
        ["mapping_versions.mapping_id", "mapping_versions.version"],
        name="fk_flows_mapping_version",
        ondelete="RESTRICT",
    ),
    Index("ix_flows_source_endpoint", "source_endpoint_id"),
)

run_bodies = Table(
    "run_bodies",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("content", LargeBinary, nullable=False),
    Column("content_type", Text, nullable=True),
    _created(),
)

runs = Table(
    "runs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("flow_id", BigInteger, ForeignKey("flows.id", ondelete="CASCADE"), nullable=False),
    Column("source_event_id", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default=RUNNING),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("mapping_version", Integer, nullable=True),
    # {method, url, headers (redacted), body (capped; null when stored in run_bodies)}.
    Column("request", JSONB, nullable=True),
    Column("response_status", Integer, nullable=True),
    # {headers, body: JSON or text (capped)}.
    Column("response", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_class", Text, nullable=True),
    # The label and message of the first mapping rule that failed ("rule 3 (erp.total): ...").
    Column("failed_rule", Text, nullable=True),
    # Bodies above the row cap: the request's (body_ref) and the response's.
    Column("body_ref", BigInteger, ForeignKey("run_bodies.id"), nullable=True),
    Column("response_body_ref", BigInteger, ForeignKey("run_bodies.id"), nullable=True),
    # The run a re-run command named (NULL for a first delivery).
    Column("rerun_of", BigInteger, nullable=True),
    Column("trace_id", Text, nullable=True),
    UniqueConstraint("flow_id", "source_event_id", "attempt", name="uq_runs_flow_event_attempt"),
    CheckConstraint(_in("status", RUN_STATUSES), name="ck_runs_status"),
    CheckConstraint("attempt >= 1", name="ck_runs_attempt"),
    Index("ix_runs_flow_started_at", "flow_id", "started_at"),
    Index("ix_runs_status_started_at", "status", "started_at"),
    Index(
        "uq_runs_one_success",
        "flow_id",
        "source_event_id",
        unique=True,
        postgresql_where=text("status = 'succeeded'"),
    ),
)

# One row (id 1): the flow configuration's version, bumped by triggers on every write to
# connectors, endpoints (not a poller's cursor), credentials, mappings, mapping_versions and
# flows (migration 0009). The delivery worker's flow catalog compares it once per batch.
integration_config = Table(
    "integration_config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    CheckConstraint("id = 1", name="ck_integration_config_one_row"),
)
