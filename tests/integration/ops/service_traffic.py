"""Traffic of CRM Automation and Data Aggregation for the ops tests, through public interfaces.

CRM: a Salesforce Lead ⇄ HubSpot Contact pair made through the management API on the stack's
sandbox (its ``Title`` ⇄ ``jobtitle`` field held for a person on conflict), people editing
either CRM through the sandbox's control plane, and sandbox faults on the CRMs' record
endpoints (the change feeds stay readable unless a fault names them).

Aggregation: OTLP/HTTP log exports to ``/v1/logs`` (stamped now, or as late as asked; one
export sent twice is a duplicate), a polled GitHub source on the sandbox's GitHub, and for
the failure paths a payload no TransformationLogic takes (on ``aggregation.raw``, as a
Kafka-topic producer would send it) and a record on the canonical topic that does not
decode (what the loader skips and counts).
"""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from typing import Any

import sqlalchemy
from confluent_kafka import Producer

from sandbox.github_traffic import AggregationDemo
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN, HUBSPOT_APP_ID
from sandbox.samples import SAMPLES
from streams.aggregation.raw import raw_headers
from synapseops.ids import new_traceparent
from synapseops.kafka import producer_config
from tests.integration.ops.traffic import StackTraffic, wait_until
from topics.registry import AGGREGATION_RAW, CANONICAL_EVENTS

LOGS_SOURCE = "ops-logs"
PAIR_SPEC: dict[str, Any] = {
    "salesforce_object": "Lead",
    "hubspot_object": "contacts",
    "match": {"salesforce": "Email", "hubspot": "email"},
    "fields": [
        {"salesforce": "FirstName", "hubspot": "firstname"},
        {"salesforce": "LastName", "hubspot": "lastname"},
        {"salesforce": "Company", "hubspot": "company"},
        {"salesforce": "Title", "hubspot": "jobtitle", "policy": "manual"},
    ],
    "directions": "both",
}
# HubSpot's record endpoints (reads and writes of the sync), and its change feed.
HUBSPOT_RECORDS = "/hubspot/crm/v3/objects"
HUBSPOT_FEED = "/hubspot/_events"


class CrmTraffic:
    """One Lead ⇄ Contact pair of the stack and the people editing it."""

    def __init__(self, traffic: StackTraffic) -> None:
        self.traffic = traffic
        self.sandbox = traffic.stack.sandbox_url
        self.mapping_id = 0

    def ensure_pair(self) -> int:
        """The pair (made once); its mapping id, unlike any other test database's (the
        ``crm.changes`` topic is the session's)."""
        if self.mapping_id:
            return self.mapping_id
        engine = sqlalchemy.create_engine(self.traffic.stack.database_url)
        with engine.begin() as conn:
            start = random.randrange(10**6, 10**9)
            conn.execute(sqlalchemy.text(f"ALTER SEQUENCE crm_mappings_id_seq RESTART {start}"))
        engine.dispose()
        suffix = uuid.uuid4().hex[:6]
        made = {}
        for kind, token, origin in (
            ("salesforce", DEFAULT_SALESFORCE_TOKEN, "synapseops"),
            ("hubspot", DEFAULT_HUBSPOT_TOKEN, str(HUBSPOT_APP_ID)),
        ):
            made[kind] = self.traffic.api(
                "POST",
                "/api/v1/crm/platforms",
                json={
                    "name": f"ops-{kind}-{suffix}",
                    "kind": kind,
                    "base_url": f"{self.sandbox}/{kind}",
                    "own_origin": origin,
                    "token": token,
                },
            )
        mapping = self.traffic.api(
            "POST",
            "/api/v1/crm/mappings",
            json={
                "name": f"ops-leads-{suffix}",
                "salesforce_platform_id": made["salesforce"]["id"],
                "hubspot_platform_id": made["hubspot"]["id"],
                "spec": PAIR_SPEC,
                "poll_interval_s": 0.5,
            },
        )
        self.mapping_id = int(mapping["id"])
        return self.mapping_id

    def edit(self, platform: str, **body: Any) -> dict[str, Any]:
        answer = self.traffic.http.post(f"{self.sandbox}/_sandbox/{platform}/edits", json=body)
        answer.raise_for_status()
        return dict(answer.json())

    def create(self, platform: str, email: str | None = None, title: str = "Buyer") -> str:
        """A new person on ``platform``; their e-mail."""
        email = email or f"ops.{uuid.uuid4().hex[:10]}@example.com"
        if platform == "salesforce":
            fields = {"FirstName": "Ada", "LastName": "Ops", "Company": "Acme", "Title": title}
            self.edit(platform, op="create", object_type="Lead", fields={**fields, "Email": email})
        else:
            fields = {"firstname": "Ada", "lastname": "Ops", "company": "Acme", "jobtitle": title}
            self.edit(
                platform, op="create", object_type="contacts", fields={**fields, "email": email}
            )
        return email

    def records(self, platform: str) -> dict[str, dict[str, Any]]:
        """``{e-mail: record}`` of the pair's object on ``platform``."""
        kind = "Lead" if platform == "salesforce" else "contacts"
        answer = self.traffic.http.get(
            f"{self.sandbox}/_sandbox/{platform}/records", params={"object_type": kind}
        )
        answer.raise_for_status()
        found = {}
        for record in answer.json()["records"]:
            fields = record.get("properties", record)
            email = fields.get("Email") or fields.get("email")
            if email:
                found[str(email).lower()] = {**fields, "_id": record.get("Id") or record["id"]}
        return found

    def wait_synced(self, emails: set[str], within_s: float = 90.0) -> None:
        wait_until(
            lambda: emails <= set(self.records("salesforce")) & set(self.records("hubspot")),
            f"{len(emails)} people on both CRMs",
            within_s,
        )

    def set_title(self, platform: str, email: str, title: str) -> None:
        record = self.records(platform)[email]
        kind, field = ("Lead", "Title") if platform == "salesforce" else ("contacts", "jobtitle")
        self.edit(platform, op="update", object_type=kind, id=record["_id"], fields={field: title})

    def conflicts(self) -> list[dict[str, Any]]:
        found = self.traffic.api(
            "GET", "/api/v1/crm/conflicts", params={"mapping_id": self.mapping_id}
        )
        return list(found)

    def conflict(self) -> None:
        """Both CRMs change the held field of one synced person before the sync can: HubSpot's
        records refuse (503) while the two edits land, so the pair fails, retries, and then
        meets both changes at once."""
        email = self.create("salesforce")
        self.wait_synced({email})
        self.traffic.set_fault("hubspot", error_rate=1.0, status=503, path_prefix=HUBSPOT_RECORDS)
        try:
            self.set_title("salesforce", email, "CEO")
            wait_until(lambda: self._injected("hubspot") >= 2, "the sync refused by HubSpot twice")
            self.set_title("hubspot", email, "CTO")
            time.sleep(2)  # the HubSpot feed reads the edit while the records still refuse
        finally:
            self.traffic.clear_faults()
        wait_until(lambda: len(self.conflicts()) >= 1, "a conflict held for a person")

    def _injected(self, target: str) -> int:
        faults = self.traffic.http.get(f"{self.sandbox}/_sandbox/faults").json()["faults"]
        return sum(int(f["injected"]) for f in faults if f["target"] == target)


class AggregationTraffic:
    """OTLP logs, a polled GitHub source and the failure paths of the module doc."""

    def __init__(self, traffic: StackTraffic) -> None:
        self.traffic = traffic
        self.demo = AggregationDemo(traffic.stack.settings, traffic.http)
        self._export = json.loads((SAMPLES / "otel" / "logs.json").read_text())
        self._source_made = False

    def logs_export(self, count: int = 1, late_s: float = 0.0) -> dict[str, Any]:
        """An OTLP export of ``count`` log records (the public example, each made unique),
        whose events happened ``late_s`` before now."""
        export = copy.deepcopy(self._export)
        scope = export["resourceLogs"][0]["scopeLogs"][0]
        template = scope["logRecords"][0]
        stamp = str(time.time_ns() - int(late_s * 1e9))
        records = []
        for _ in range(count):
            record = copy.deepcopy(template)
            record["timeUnixNano"] = stamp
            record["observedTimeUnixNano"] = stamp
            record["attributes"].append(
                {"key": "ops.id", "value": {"stringValue": uuid.uuid4().hex}}
            )
            records.append(record)
        scope["logRecords"] = records
        return export

    def send_logs(self, export: dict[str, Any]) -> None:
        if not self._source_made:
            self.traffic.api(
                "POST",
                "/api/v1/aggregation/sources",
                json={"name": LOGS_SOURCE, "kind": "stream", "logic": "otel"},
            )
            self._source_made = True
        answer = self.traffic.http.post(
            f"{self.traffic.stack.api_url}/v1/logs",
            json=export,
            headers=self.traffic.demo.auth | {"X-SynapseOps-Source": LOGS_SOURCE},
        )
        assert answer.status_code == 200 and answer.json() == {}, answer.text

    def poll_github(self, new_events: int) -> None:
        """The demo's GitHub source (polled every 5 s) and ``new_events`` more on its repo."""
        self.demo.ensure_sources()
        self.demo.add_github_events(new_events).raise_for_status()

    def poison_payload(self) -> None:
        """A payload the GitHub logic cannot read, on ``aggregation.raw``: a dead letter."""
        headers = raw_headers(
            source="ops-poison",
            logic="github",
            source_type="stream",
            event_id=f"poison-{uuid.uuid4().hex}",
            event_type="PushEvent",
            traceparent=new_traceparent(),
        )
        self._produce(AGGREGATION_RAW.name, b"this is not a GitHub event", headers)

    def undecodable_canonical(self) -> None:
        """Bytes on the canonical topic that are no Avro canonical event."""
        self._produce(CANONICAL_EVENTS.name, b"\x00\x00\x00\x00\x01not avro", [])

    def _produce(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        producer = Producer(producer_config(self.traffic.stack.kafka))
        producer.produce(topic, value, key=uuid.uuid4().hex.encode(), headers=headers)
        assert producer.flush(30) == 0
