"""Demo-sized data for the console's page-time test: what a day of the demo leaves behind.

The configuration (connectors, endpoints, flows, mappings, CRM platforms and a mapping, data
sources, a notification channel and workflow) is made through the JSON API, as an admin's
machine would; the volume (runs, settlements with their events, attempts and audit, dead
letters of every service, CRM links and conflicts, warehouse rows, ingestion jobs,
notification runs and approvals) is written in bulk, by SQL in the owning services' tables,
since pushing hundreds of each through Kafka would make the test minutes long without
changing what the pages read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy

from tests.e2e.worlds import flow_via_api, shop_and_erp

ORDER_RULES = {"rules": [{"target": "order_name", "source": "name"}, {"target": "n", "const": 1}]}
RUNS = 600
SETTLEMENTS = 400
DEAD_LETTERS = 300
CRM_LINKS = 500
CRM_CONFLICTS = 60
WAREHOUSE_ROWS = 6000
JOBS = 20
NOTIFICATION_RUNS = 300
APPROVALS = 200


@dataclass(frozen=True)
class Seeded:
    flow_ids: list[int]
    mapping_id: int
    crm_mapping_id: int
    sources: list[str]
    counts: dict[str, int]


def _post(api: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    answer = api.post(path, json=body)
    assert answer.status_code < 300, f"POST {path}: {answer.status_code} {answer.text}"
    return answer.json()


@dataclass(frozen=True)
class _Machine:
    """The bootstrap token's client, as the browser tests' worlds speak to a stack."""

    api: httpx.Client
    sandbox: str

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return _post(self.api, path, body)

    def get(self, path: str, **params: Any) -> Any:
        answer = self.api.get(path, params=params)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        return answer.json()


def _configure(api: httpx.Client, sandbox: str) -> dict[str, Any]:
    machine = _Machine(api, sandbox)
    flows = [
        flow_via_api(machine, shop_and_erp(machine, f"demo{n}"), ORDER_RULES) for n in range(2)
    ]
    flow_ids = [int(made["flow"]["id"]) for made in flows]
    platforms = {}
    for kind, origin in (("salesforce", "synapseops"), ("hubspot", "1234")):
        platforms[kind] = _post(
            api,
            "/api/v1/crm/platforms",
            {
                "name": f"demo-{kind}",
                "kind": kind,
                "base_url": f"{sandbox}/{kind}",
                "own_origin": origin,
                "token": f"{kind}-demo-token",
            },
        )["id"]
    crm_mapping = _post(
        api,
        "/api/v1/crm/mappings",
        {
            "name": "demo-leads",
            "salesforce_platform_id": platforms["salesforce"],
            "hubspot_platform_id": platforms["hubspot"],
            "poll_interval_s": 3600,
            "spec": {
                "salesforce_object": "Lead",
                "hubspot_object": "contacts",
                "match": {"salesforce": "Email", "hubspot": "email"},
                "fields": [
                    {"salesforce": "FirstName", "hubspot": "firstname"},
                    {"salesforce": "Title", "hubspot": "jobtitle", "policy": "manual"},
                ],
            },
        },
    )
    sources = []
    for n in range(3):
        name = f"demo-logs-{n}"
        _post(api, "/api/v1/aggregation/sources", {"name": name, "kind": "stream", "logic": "otel"})
        sources.append(name)
    channel = _post(
        api,
        "/api/v1/notification-channels",
        {
            "name": "demo-approvals",
            "kind": "slack_bot",
            "config": {"channel": "#approvals"},
            "secret": "xoxb-demo",
        },
    )
    workflow = _post(
        api,
        "/api/v1/notification-workflows",
        {
            "name": "demo large payments",
            "trigger_kind": "large_payment",
            "spec": {
                "steps": [
                    {"type": "wait_for_approval", "channel": channel["name"], "title": "Approve?"}
                ]
            },
        },
    )
    return {
        "flow_ids": flow_ids,
        "mapping_id": int(flows[0]["mapping"]["id"]),
        "crm_mapping_id": int(crm_mapping["id"]),
        "sources": sources,
        "workflow_id": int(workflow["id"]),
    }


# One statement per table, each a generate_series: the rows spread over the last day (or hour).
_VOLUME = [
    (
        "runs",
        """
        INSERT INTO runs (flow_id, source_event_id, attempt, status, started_at, finished_at,
                          duration_ms, mapping_version, request, response_status, response,
                          error, error_class, trace_id)
        SELECT (ARRAY[:flow_a, :flow_b])[1 + g % 2], 'evt-' || g, 1,
               CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'succeeded' END,
               now() - g * interval '140 seconds', now() - g * interval '140 seconds'
                   + interval '80 milliseconds',
               80, 1,
               jsonb_build_object('method', 'POST', 'url', 'http://erp/api/orders',
                                  'headers', jsonb_build_object('authorization', '**redacted**'),
                                  'body', jsonb_build_object('order_name', '#' || g)),
               CASE WHEN g % 10 = 0 THEN 503 ELSE 201 END,
               jsonb_build_object('headers', '{}'::jsonb, 'body', jsonb_build_object('id', g)),
               CASE WHEN g % 10 = 0 THEN 'ERP answered 503' END,
               CASE WHEN g % 10 = 0 THEN 'TargetUnavailable' END,
               md5('run' || g)
        FROM generate_series(1, :n) AS g
        """,
        RUNS,
    ),
    (
        "settlements",
        """
        WITH made AS (
          INSERT INTO settlements (settlement_id, payment_id, kind, amount, currency, state,
                                   reason, finance_reference, last_event_id, trace_id,
                                   received_at, created_at, updated_at, settled_at)
          SELECT 'st_demo' || g, 'pi_demo' || g, 'charge', 1000 + g * 37,
                 (ARRAY['usd', 'eur', 'gbp', 'jpy'])[1 + g % 4],
                 CASE WHEN g % 20 = 0 THEN 'failed' WHEN g % 33 = 0 THEN 'pending_approval'
                      ELSE 'settled' END,
                 CASE WHEN g % 20 = 0 THEN 'finance refused' END,
                 CASE WHEN g % 20 <> 0 THEN 'FIN-' || g END,
                 'evt_demo' || g, md5('pay' || g),
                 now() - g * interval '25 minutes', now() - g * interval '25 minutes',
                 now() - g * interval '25 minutes', now() - g * interval '25 minutes'
          FROM generate_series(1, :n) AS g
          RETURNING settlement_id, payment_id, last_event_id, trace_id, created_at
        ), events AS (
          INSERT INTO payment_events (event_id, payment_id, settlement_id, event_type, created,
                                      raw, http_headers, trace_id, topic, partition, "offset",
                                      received_at, processed_at, outcome)
          SELECT last_event_id, payment_id, settlement_id, 'payment_intent.succeeded',
                 created_at, convert_to('{"id": "' || last_event_id || '"}', 'UTF8'),
                 '{"stripe-signature": "**redacted**"}'::jsonb, trace_id, 'payments.events', 0,
                 row_number() OVER (), created_at, created_at, 'settled'
          FROM made RETURNING settlement_id
        ), attempts AS (
          INSERT INTO settlement_attempts (settlement_id, event_id, started_at, duration_ms,
                                           request, response_status, response_body, outcome)
          SELECT settlement_id, last_event_id, created_at, 40, '{"method": "POST"}'::jsonb,
                 201, '{"reference": "FIN"}', 'settled'
          FROM made RETURNING settlement_id
        )
        INSERT INTO settlement_audit (settlement_id, payment_id, at, action, actor, detail)
        SELECT settlement_id, payment_id, created_at, 'settled', 'finance', '{}'::jsonb FROM made
        """,
        SETTLEMENTS,
    ),
    (
        "dead_letters",
        """
        INSERT INTO dead_letters (pipeline, dlq_topic, dlq_partition, dlq_offset, original_topic,
                                  original_partition, original_offset, key, value, headers,
                                  trace_id, error_kind, error_class, error_message, attempts,
                                  first_failed_at, dead_at, status)
        SELECT p.name, p.name || '.dlq', 0, g, p.name || '.in', 0, g,
               convert_to('key-' || g, 'UTF8'), convert_to('{"n": ' || g || '}', 'UTF8'),
               jsonb_build_object('synapseops-source', 'demo-logs-' || g % 3),
               md5('dl' || g), 'fatal',
               (ARRAY['MappingFailed', 'TargetRejected', 'SchemaInvalid'])[1 + g % 3],
               'rule 3 (erp.total): to_float failed on ''abc''', 1 + g % 4,
               now() - g * interval '4 minutes', now() - g * interval '4 minutes',
               CASE WHEN g % 5 = 0 THEN 'replayed' ELSE 'dead' END
        FROM generate_series(1, :n) AS g
        CROSS JOIN LATERAL (SELECT (ARRAY['integration-delivery', 'payment-settlement',
                                          'crm-sync', 'aggregation-transform'])[1 + g % 4]
                                   AS name) AS p
        """,
        DEAD_LETTERS,
    ),
    (
        "crm_links",
        """
        INSERT INTO crm_links (mapping_id, salesforce_id, hubspot_id, match_value,
                               salesforce_values, hubspot_values, last_error, last_synced_at)
        SELECT :crm_mapping, '00Q' || lpad(g::text, 12, '0'), (100000 + g)::text,
               'person' || g || '@example.com',
               jsonb_build_object('FirstName', 'P' || g), jsonb_build_object('firstname', 'P' || g),
               CASE WHEN g % 50 = 0 THEN 'HubSpot answered 400' END,
               now() - g * interval '1 minute'
        FROM generate_series(1, :n) AS g
        """,
        CRM_LINKS,
    ),
    (
        "crm_conflicts",
        """
        INSERT INTO crm_conflicts (mapping_id, link_id, field, salesforce_value, hubspot_value,
                                   status, opened_at)
        SELECT :crm_mapping, id, 'Title', 'CEO ' || id, 'CTO ' || id,
               CASE WHEN id % 3 = 0 THEN 'resolved' ELSE 'open' END,
               now() - id * interval '3 minutes'
        FROM crm_links WHERE mapping_id = :crm_mapping ORDER BY id LIMIT :n
        """,
        CRM_CONFLICTS,
    ),
    (
        "crm_full_syncs",
        """
        INSERT INTO crm_full_syncs (mapping_id, dry_run, status, requested_by, total, done,
                                    planned, created_at, started_at, finished_at)
        SELECT :crm_mapping, g % 2 = 0, 'done', 'user:operator', 500, 500,
               '{"update": 3, "skip": 497}'::jsonb, now() - g * interval '1 hour',
               now() - g * interval '1 hour', now() - g * interval '1 hour'
        FROM generate_series(1, :n) AS g
        """,
        5,
    ),
    (
        "warehouse.events",
        """
        INSERT INTO warehouse.events (source, id, type, time, specversion, source_type,
                                      ingested_at, trace_id, tags, resource, attributes, topic,
                                      partition, "offset")
        SELECT (ARRAY[:source_a, :source_b, :source_c])[1 + g % 3], 'ev-' || g, 'log',
               now() - g * interval '600 milliseconds' - (g % 7) * interval '2 seconds'
                   - CASE WHEN g % 3 = 2 THEN interval '3 hours' ELSE interval '0' END,
               '1.0', 'otel', now() - g * interval '600 milliseconds', md5('w' || g),
               ARRAY['demo'], '{}'::jsonb, '{}'::jsonb, 'aggregation.canonical', 0, g
        FROM generate_series(1, :n) AS g
        """,
        WAREHOUSE_ROWS,
    ),
    (
        "aggregation_jobs",
        """
        INSERT INTO aggregation_jobs (id, source, kind, state, records_in, records_out,
                                      bytes_total, bytes_done, started_at, updated_at,
                                      finished_at)
        SELECT md5('job' || g)::uuid, :source_a, 'bulk',
               CASE WHEN g = 1 THEN 'running' ELSE 'succeeded' END, 1000, 1000, 10000,
               CASE WHEN g = 1 THEN 4000 ELSE 10000 END, now() - g * interval '30 minutes',
               now() - g * interval '29 minutes',
               CASE WHEN g = 1 THEN NULL ELSE now() - g * interval '29 minutes' END
        FROM generate_series(1, :n) AS g
        """,
        JOBS,
    ),
    (
        "notification_runs",
        """
        INSERT INTO notification_runs (id, workflow_id, version, trigger_kind, subject_id,
                                       dedup_key, trigger, state, step, waiting_on, outcome,
                                       created_at, updated_at, finished_at)
        SELECT 'run-demo-' || g, :workflow, 1, 'large_payment', 'pi_demo' || g, 'k' || g,
               jsonb_build_object('details', jsonb_build_object('payment_id', 'pi_demo' || g)),
               CASE WHEN g <= :pending THEN 'waiting' ELSE 'done' END, 0,
               CASE WHEN g <= :pending THEN 'approval' END,
               CASE WHEN g > :pending THEN 'approved' END,
               now() - g * interval '5 minutes', now() - g * interval '5 minutes',
               CASE WHEN g > :pending THEN now() - g * interval '4 minutes' END
        FROM generate_series(1, :n) AS g
        """,
        NOTIFICATION_RUNS,
    ),
    (
        "notification_approvals",
        """
        INSERT INTO notification_approvals (id, run_id, step, trigger_kind, question,
                                            payment_id, approvers, expires_at, on_expiry, state,
                                            answered_by, answered_at, created_at)
        SELECT 'ap-demo-' || g, 'run-demo-' || g, 0, 'large_payment',
               'Approve payment pi_demo' || g || ' of 25,000.00 USD?', 'pi_demo' || g,
               '{"roles": ["approver"], "principals": []}'::jsonb,
               now() + interval '1 day', 'reject',
               CASE WHEN g <= :pending THEN 'pending' ELSE 'approved' END,
               CASE WHEN g > :pending THEN 'user:approver' END,
               CASE WHEN g > :pending THEN now() - g * interval '4 minutes' END,
               now() - g * interval '5 minutes'
        FROM generate_series(1, :n) AS g
        """,
        APPROVALS,
    ),
]


def seed(api: httpx.Client, engine: sqlalchemy.Engine, sandbox: str) -> Seeded:
    made = _configure(api, sandbox)
    flow_a, flow_b = made["flow_ids"]
    source_a, source_b, source_c = made["sources"]
    params = {
        "flow_a": flow_a,
        "flow_b": flow_b,
        "crm_mapping": made["crm_mapping_id"],
        "source_a": source_a,
        "source_b": source_b,
        "source_c": source_c,
        "workflow": made["workflow_id"],
        "pending": 100,
    }
    counts = {}
    with engine.begin() as conn:
        for table, statement, n in _VOLUME:
            conn.execute(sqlalchemy.text(statement), {**params, "n": n})
            counts[table] = n
    return Seeded(
        flow_ids=made["flow_ids"],
        mapping_id=made["mapping_id"],
        crm_mapping_id=made["crm_mapping_id"],
        sources=made["sources"],
        counts=counts,
    )
