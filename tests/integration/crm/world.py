"""A CRM world for the integration tests: a fresh migrated database, the topics, a sandbox
(Salesforce- and HubSpot-shaped, a real HTTP server), two platforms and a Lead ⇄ Contact
mapping in the database, and helpers that talk to the sandbox over HTTP as a person would.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy
from cryptography.fernet import Fernet
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sandbox.harness import SandboxServer
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN, HUBSPOT_APP_ID
from sinks.crm import store
from streams.crm.model import CrmMappingSpec
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics

LEAD_FIELDS = [
    {"salesforce": "FirstName", "hubspot": "firstname"},
    {"salesforce": "LastName", "hubspot": "lastname"},
    {"salesforce": "Company", "hubspot": "company"},
    {"salesforce": "LeadSource", "hubspot": "hs_lead_source"},
    {"salesforce": "Title", "hubspot": "jobtitle", "policy": "manual"},
    {"salesforce": "Phone", "hubspot": "phone", "policy": "fill_if_empty"},
]


def lead_spec(**overrides: Any) -> CrmMappingSpec:
    return CrmMappingSpec.model_validate(
        {
            "salesforce_object": "Lead",
            "hubspot_object": "contacts",
            "match": {"salesforce": "Email", "hubspot": "email"},
            "fields": LEAD_FIELDS,
            **overrides,
        }
    )


@contextmanager
def crm_world(settings: Settings, database_url: str) -> Iterator[dict[str, Any]]:
    """Call inside a module-scoped fixture that also asks for ``kafka_bootstrap``."""
    key = Fernet.generate_key().decode()
    with fresh_database(database_url, "t_crm") as url:
        own = settings.model_copy(
            update={
                "database": DatabaseSettings(url=SecretStr(url)),
                "api": ApiSettings(token=SecretStr("t")),
                "credentials_key": SecretStr(key),
            }
        )
        engine = sqlalchemy.create_engine(url)
        # Mapping ids unlike any other test database's: crm.changes is shared by the session,
        # and a worker of a new group reads it from the start.
        with engine.begin() as conn:
            start = random.randrange(10**6, 10**9)
            conn.execute(sqlalchemy.text(f"ALTER SEQUENCE crm_mappings_id_seq RESTART {start}"))
        try:
            apply_topics(own)
            with SandboxServer() as sandbox, serving_in_thread(create_app(own)) as api:
                yield {
                    "settings": own,
                    "engine": engine,
                    "sandbox": sandbox,
                    "api": httpx.Client(
                        base_url=api, headers={"Authorization": "Bearer t"}, timeout=30
                    ),
                    "worker_env": {"SYNAPSEOPS_CREDENTIALS_KEY": key},
                }
        finally:
            engine.dispose()


def make_pair(world: dict[str, Any], spec: CrmMappingSpec, name: str) -> int:
    """Two platforms on the world's sandbox and a mapping between them; its id."""
    engine, settings, base = world["engine"], world["settings"], world["sandbox"].url
    sf = store.create_platform(
        engine,
        settings,
        {
            "name": f"sf-{name}",
            "kind": "salesforce",
            "base_url": f"{base}/salesforce",
            "own_origin": "synapseops",
        },
        DEFAULT_SALESFORCE_TOKEN,
    )
    hs = store.create_platform(
        engine,
        settings,
        {
            "name": f"hs-{name}",
            "kind": "hubspot",
            "base_url": f"{base}/hubspot",
            "own_origin": str(HUBSPOT_APP_ID),
        },
        DEFAULT_HUBSPOT_TOKEN,
    )
    mapping = store.create_mapping(engine, name, sf["id"], hs["id"], spec, poll_interval_s=0.5)
    return int(mapping["id"])


class People:
    """What a person does in either CRM, through the sandbox's control plane."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)

    def edit(self, platform: str, **body: Any) -> dict[str, Any]:
        answer = self.http.post(f"/_sandbox/{platform}/edits", json=body)
        answer.raise_for_status()
        return dict(answer.json())

    def records(self, platform: str, object_type: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"/_sandbox/{platform}/records", params={"object_type": object_type})
        answer.raise_for_status()
        return list(answer.json()["records"])

    def by_email(self, platform: str, object_type: str) -> dict[str, dict[str, Any]]:
        found = {}
        for record in self.records(platform, object_type):
            fields = record.get("properties", record)
            email = fields.get("Email") or fields.get("email")
            if email:
                found[str(email).lower()] = fields
        return found

    def writes(self, platform: str, actor: str | None = "integration") -> list[dict[str, Any]]:
        """The platform's writes log (every actor's with ``actor=None``)."""
        params = {"actor": actor} if actor else {}
        answer = self.http.get(f"/_sandbox/{platform}/writes", params=params)
        answer.raise_for_status()
        return list(answer.json()["writes"])


def wait_for(
    check: Callable[[], Any], within_s: float = 60.0, what: str = "", every_s: float = 0.3
) -> Any:
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"not within {within_s}s: {what} (last: {last!r})")


@contextmanager
def crm_worker(world: dict[str, Any], kafka_bootstrap: str, data_dir: Any) -> Iterator[Any]:
    """A real worker process running the crm-sync pipeline (its poller and runner too)."""
    from tests.integration.worker_process import WorkerProcess

    worker = WorkerProcess(
        kafka_bootstrap,
        world["settings"].database_url,
        data_dir,
        extra_env={**world["worker_env"], "SYNAPSEOPS_WORKER_PIPELINES": "crm-sync"},
    )
    worker.start()
    worker.wait_healthy()
    try:
        yield worker
    finally:
        worker.stop()
        print(worker.log_tail(6000))


@contextmanager
def synced_pair(
    settings: Settings, database_url: str, kafka_bootstrap: str, data_dir: Any, name: str
) -> Iterator[dict[str, Any]]:
    """A CRM world with a Lead ⇄ Contact pair named ``name-<random>`` and a worker syncing it:
    ``mapping_id``, ``worker`` and ``people`` added to the world."""
    with crm_world(settings, database_url) as world:
        world["mapping_id"] = make_pair(world, lead_spec(), f"{name}-{uuid.uuid4().hex[:6]}")
        with crm_worker(world, kafka_bootstrap, data_dir) as worker:
            world["worker"], world["people"] = worker, People(world["sandbox"].url)
            yield world
