"""The demo's CRM part: a Salesforce Lead ⇄ HubSpot Contact pair on the sandbox, and people
editing both sides (for ``make demo`` and its steady traffic, :mod:`sandbox.traffic`).

The pair is made through the management API (two platforms with the sandbox's integration
tokens, one mapping: FirstName/LastName/Email/Company/LeadSource ⇄ firstname/lastname/email/
company/hs_lead_source, match key e-mail, both directions); the edits are a person's, through
the sandbox's control plane (``POST /_sandbox/<platform>/edits``), so they arrive at the
service only through the CRMs' own change feeds.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx

from sandbox import crm_seed
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN, HUBSPOT_APP_ID

DEMO_CRM_MAPPING = "demo-leads-contacts"
DEMO_CRM_SPEC: dict[str, Any] = {
    "salesforce_object": "Lead",
    "hubspot_object": "contacts",
    "match": {"salesforce": "Email", "hubspot": "email"},
    "fields": [
        {"salesforce": "FirstName", "hubspot": "firstname"},
        {"salesforce": "LastName", "hubspot": "lastname"},
        {"salesforce": "Company", "hubspot": "company"},
        {"salesforce": "LeadSource", "hubspot": "hs_lead_source"},
    ],
    "directions": "both",
}


class CrmDemo:
    """The demo's calls: the pair through the API, a person's edits through the sandbox."""

    def __init__(self, http: httpx.Client, api: str, auth: dict[str, str], sandbox: str) -> None:
        self.http, self.api, self.auth, self.sandbox = http, api, auth, sandbox

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.http.request(method, f"{self.api}{path}", json=body, headers=self.auth)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def ensure_pair(self) -> int:
        """The demo mapping's id, made (with its two platforms) on the first run."""
        for mapping in self._api("GET", "/api/v1/crm/mappings"):
            if mapping["name"] == DEMO_CRM_MAPPING:
                return int(mapping["id"])
        platforms = {p["name"]: p for p in self._api("GET", "/api/v1/crm/platforms")}
        made = {}
        for kind, token, origin in (
            ("salesforce", DEFAULT_SALESFORCE_TOKEN, "synapseops"),
            ("hubspot", DEFAULT_HUBSPOT_TOKEN, str(HUBSPOT_APP_ID)),
        ):
            name = f"demo-{kind}"
            made[kind] = platforms.get(name) or self._api(
                "POST",
                "/api/v1/crm/platforms",
                {
                    "name": name,
                    "kind": kind,
                    "base_url": f"{self.sandbox}/{kind}",
                    "own_origin": origin,
                    "token": token,
                },
            )
        mapping = self._api(
            "POST",
            "/api/v1/crm/mappings",
            {
                "name": DEMO_CRM_MAPPING,
                "salesforce_platform_id": made["salesforce"]["id"],
                "hubspot_platform_id": made["hubspot"]["id"],
                "spec": DEMO_CRM_SPEC,
            },
        )
        return int(mapping["id"])

    def _edit(self, platform: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(f"{self.sandbox}/_sandbox/{platform}/edits", json=body)
        answer.raise_for_status()
        return dict(answer.json())

    def create(self, platform: str, rng: random.Random) -> str:
        """A new person on ``platform`` (a Lead or a contact); their e-mail."""
        (person,) = crm_seed.people(1, rng.randrange(10**9), 10**6 + rng.randrange(10**8))
        email = f"demo.{uuid.uuid4().hex[:8]}.{person.email}"
        if platform == "salesforce":
            fields = {**person.salesforce("Lead"), "Email": email}
            body = {"op": "create", "object_type": "Lead", "fields": fields}
        else:
            fields = {**person.hubspot(), "email": email}
            body = {"op": "create", "object_type": "contacts", "fields": fields}
        self._edit(platform, body)
        return email

    def edit_one(self, platform: str, rng: random.Random) -> str | None:
        """A person renames a random record of ``platform``; what they did (None: no record)."""
        kind, field = (
            ("Lead", "FirstName") if platform == "salesforce" else ("contacts", "firstname")
        )
        records = self.records(platform, kind)
        if not records:
            return None
        record = rng.choice(records)
        record_id = record.get("Id") or record.get("id")
        name = rng.choice(crm_seed.FIRST_NAMES)
        self._edit(
            platform,
            {"op": "update", "object_type": kind, "id": record_id, "fields": {field: name}},
        )
        return f"{platform} {kind} {record_id}: {field} = {name}"

    def records(self, platform: str, kind: str) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"{self.sandbox}/_sandbox/{platform}/records", params={"object_type": kind}
        )
        answer.raise_for_status()
        return list(answer.json()["records"])

    def emails(self, platform: str) -> dict[str, dict[str, Any]]:
        kind = "Lead" if platform == "salesforce" else "contacts"
        found = {}
        for record in self.records(platform, kind):
            fields = record.get("properties", record)
            email = fields.get("Email") or fields.get("email")
            if email:
                found[str(email).lower()] = fields
        return found

    def synced(self, emails: set[str]) -> set[str]:
        """The e-mails present on both sides."""
        return emails & set(self.emails("salesforce")) & set(self.emails("hubspot"))

    def step(self, rng: random.Random) -> str:
        """One person's action on a random side: mostly an edit, sometimes a new person."""
        platform = rng.choice(("salesforce", "hubspot"))
        if rng.random() < 0.3:
            return f"{platform}: created {self.create(platform, rng)}"
        return self.edit_one(platform, rng) or f"{platform}: created {self.create(platform, rng)}"
