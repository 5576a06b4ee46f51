"""CRM Automation figures: records synced per second per direction, with the platforms' rate
limits on and off.

``python -m bench crm [--records N]``

For each direction (Salesforce → HubSpot, HubSpot → Salesforce) and each setting of the
sandbox's limits (HubSpot 100 requests / 10 s per app, on; off), ``--records`` people (default
3,000) are seeded on one side only and their change events are handed to the sync's batch
handler in process, 500 at a time — as the road hands a partition's batch — against a
throwaway database and an in-process sandbox over real HTTP. Each record is read on both sides
(batch reads, a match-key lookup) and created on the other side (HubSpot batch upsert ≤ 100,
Salesforce collections ≤ 200). Prints records/s, the platform calls made and the 429s waited
out; asserts only that every record arrived once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import sqlalchemy
from cryptography.fernet import Fernet
from pydantic import SecretStr

from sandbox.harness import SandboxServer
from streams.crm.events import CrmChange, link_key
from streams.crm.sync import CrmSync
from streams.road import RoadRecord
from synapseops.settings import DatabaseSettings, Settings
from tests.integration.crm.world import lead_spec, make_pair
from tests.integration.databases import fresh_database

BATCH = 500


async def _sync(
    settings: Settings, engine: sqlalchemy.Engine, records: list[RoadRecord]
) -> tuple[float, int]:
    sync = CrmSync(settings, engine, None)
    started = time.perf_counter()
    try:
        for start in range(0, len(records), BATCH):
            answers = await sync.handle(records[start : start + BATCH])
            failed = [a for a in answers if isinstance(a, BaseException)]
            assert not failed, str(failed[0])[:300]
        waited = sum(c.target.rate_limited for c in sync.clients._clients.values())
    finally:
        await sync.aclose()
    return time.perf_counter() - started, waited


def _row(settings: Settings, source: str, count: int, limits: bool) -> str:
    key = Fernet.generate_key().decode()
    with fresh_database(settings.database_url, "b_crm") as url, SandboxServer() as sandbox:
        own = settings.model_copy(
            update={
                "database": DatabaseSettings(url=SecretStr(url)),
                "credentials_key": SecretStr(key),
            }
        )
        engine = sqlalchemy.create_engine(url)
        try:
            world: dict[str, Any] = {"engine": engine, "settings": own, "sandbox": sandbox}
            mapping_id = make_pair(world, lead_spec(), f"bench-{uuid.uuid4().hex[:6]}")
            httpx.put(
                f"{sandbox.url}/_sandbox/limits",
                json={"hubspot": {"enabled": limits}, "salesforce": {"enabled": limits}},
                timeout=10,
            ).raise_for_status()
            kind = "Lead" if source == "salesforce" else "contacts"
            body = {source: {kind: count}, "seed": 5}
            ids = httpx.post(f"{sandbox.url}/_sandbox/crm/seed", json=body, timeout=60).json()
            records = [
                RoadRecord(
                    "crm.changes",
                    0,
                    offset,
                    None,
                    link_key(mapping_id, None, source, record_id),
                    CrmChange(mapping_id, source, kind, record_id, "upsert", offset).encode(),
                    [],
                )
                for offset, record_id in enumerate(ids["ids"][source][kind])
            ]
            seconds, waited = asyncio.run(_sync(own, engine, records))
            target = "hubspot" if source == "salesforce" else "salesforce"
            made = httpx.get(
                f"{sandbox.url}/_sandbox/{target}/writes",
                params={"actor": "integration"},
                timeout=60,
            ).json()["writes"]
            assert len(made) == count, f"{len(made)} of {count} written"
            calls = len({w["request_seq"] for w in made})
        finally:
            engine.dispose()
    way = f"{source} → {'hubspot' if source == 'salesforce' else 'salesforce'}"
    return (
        f"{way:<26} limits {'on ' if limits else 'off'}  {count / seconds:8.1f} records/s  "
        f"({count} in {seconds:.1f}s, {calls} write calls, {waited} 429s waited out)"
    )


def run(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench crm")
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args(list(argv))
    # the in-process sandbox listens on a free port of 127.0.0.1 (as in the tests)
    os.environ.setdefault("SYNAPSEOPS_HTTP_ALLOWED_HOSTS", "127.0.0.1")
    settings = Settings()
    for source in ("salesforce", "hubspot"):
        for limits in (True, False):
            sys.stdout.write(_row(settings, source, args.records, limits) + "\n")
            sys.stdout.flush()
