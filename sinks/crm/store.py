"""The CRM service's configuration: platforms (credential encrypted), field mappings with
their two sync states, and the change-feed cursors the poller keeps.

Blocking SQLAlchemy calls (the API's plain ``def`` routes run them in a threadpool, the
worker through ``asyncio.to_thread``); rows are plain dicts and never carry the credential's
ciphertext. A unique name taken → :class:`RecordConflict`; no such row →
:class:`RecordNotFound`; other database failures → the error tree (:func:`database_errors`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update

from sinks.cipher import cipher_for
from sinks.crm.client import CrmClient, PlatformAccess
from sinks.crm.tables import SIDES, crm_mappings, crm_platforms, crm_sync_states
from sinks.db import database_errors
from streams.crm.model import CompiledCrmMapping, CrmMappingSpec, compile_crm_mapping
from synapseops.errors import RecordConflict, RecordInvalid, RecordNotFound
from synapseops.redaction import remember
from synapseops.settings import Settings

_PLATFORM_PUBLIC = [c for c in crm_platforms.c if c.name != "credential_ciphertext"]


def _insert(conn: sqlalchemy.Connection, statement: Any, what: str) -> dict[str, Any]:
    try:
        with conn.begin_nested():
            return dict(conn.execute(statement).mappings().one())
    except sa_exc.IntegrityError as exc:
        raise RecordConflict(f"{what}: {str(exc.orig).splitlines()[0]}") from exc


def create_platform(
    engine: sqlalchemy.Engine, settings: Settings, values: Mapping[str, Any], token: str
) -> dict[str, Any]:
    remember(token)
    row = {**values, "credential_ciphertext": cipher_for(settings).encrypt(token)}
    statement = sqlalchemy.insert(crm_platforms).values(row).returning(*_PLATFORM_PUBLIC)
    with database_errors("create crm platform"), engine.begin() as conn:
        return _insert(conn, statement, "create crm platform")


def list_platforms(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    with database_errors("list crm platforms"), engine.connect() as conn:
        rows = conn.execute(select(*_PLATFORM_PUBLIC).order_by(crm_platforms.c.id)).mappings()
        return [dict(r) for r in rows]


def get_platform(engine: sqlalchemy.Engine, platform_id: int) -> dict[str, Any]:
    statement = select(*_PLATFORM_PUBLIC).where(crm_platforms.c.id == platform_id)
    with database_errors("read crm platform"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no CRM platform with id {platform_id}")
    return dict(row)


def open_platform(
    engine: sqlalchemy.Engine, settings: Settings, platform_id: int
) -> PlatformAccess:
    statement = select(crm_platforms).where(crm_platforms.c.id == platform_id)
    with database_errors("open crm platform"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no CRM platform with id {platform_id}")
    token = cipher_for(settings).decrypt(row["credential_ciphertext"])
    remember(token)
    return PlatformAccess(
        id=int(row["id"]),
        name=str(row["name"]),
        kind=str(row["kind"]),
        base_url=str(row["base_url"]),
        token=SecretStr(token),
        own_origin=str(row["own_origin"]),
    )


def client_for(access: PlatformAccess, settings: Settings) -> CrmClient:
    from sinks.crm.hubspot import HubSpotClient
    from sinks.crm.salesforce import SalesforceClient

    if access.kind == "salesforce":
        return SalesforceClient(access, settings)
    return HubSpotClient(access, settings)


class PlatformClients:
    """One client per platform for a process (opened on first use, closed together)."""

    def __init__(self, settings: Settings, engine: sqlalchemy.Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._clients: dict[int, CrmClient] = {}

    async def get(self, platform_id: int) -> CrmClient:
        found = self._clients.get(platform_id)
        if found is None:
            access = await asyncio.to_thread(open_platform, self.engine, self.settings, platform_id)
            found = self._clients[platform_id] = client_for(access, self.settings)
        return found

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def create_mapping(
    engine: sqlalchemy.Engine,
    name: str,
    salesforce_platform_id: int,
    hubspot_platform_id: int,
    spec: CrmMappingSpec,
    poll_interval_s: float = 2.0,
) -> dict[str, Any]:
    """The mapping and its two sync states (cursors empty: the feeds are read from the oldest
    change they keep)."""
    with database_errors("create crm mapping"), engine.begin() as conn:
        kinds = dict(
            conn.execute(
                select(crm_platforms.c.id, crm_platforms.c.kind).where(
                    crm_platforms.c.id.in_([salesforce_platform_id, hubspot_platform_id])
                )
            ).all()
        )
        if kinds.get(salesforce_platform_id) != "salesforce":
            raise RecordInvalid(f"platform {salesforce_platform_id} is not a Salesforce platform")
        if kinds.get(hubspot_platform_id) != "hubspot":
            raise RecordInvalid(f"platform {hubspot_platform_id} is not a HubSpot platform")
        statement = (
            sqlalchemy.insert(crm_mappings)
            .values(
                name=name,
                salesforce_platform_id=salesforce_platform_id,
                hubspot_platform_id=hubspot_platform_id,
                spec=spec.model_dump(mode="json"),
                poll_interval_s=poll_interval_s,
            )
            .returning(*crm_mappings.c)
        )
        row = _insert(conn, statement, "create crm mapping")
        conn.execute(
            sqlalchemy.insert(crm_sync_states),
            [{"mapping_id": row["id"], "side": side} for side in SIDES],
        )
    return row


def list_mappings(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    with database_errors("list crm mappings"), engine.connect() as conn:
        rows = conn.execute(select(crm_mappings).order_by(crm_mappings.c.id)).mappings()
        return [dict(r) for r in rows]


def get_mapping(engine: sqlalchemy.Engine, mapping_id: int) -> dict[str, Any]:
    with database_errors("read crm mapping"), engine.connect() as conn:
        row = (
            conn.execute(select(crm_mappings).where(crm_mappings.c.id == mapping_id))
            .mappings()
            .one_or_none()
        )
    if row is None:
        raise RecordNotFound(f"no CRM mapping with id {mapping_id}")
    return dict(row)


def compiled(row: Mapping[str, Any]) -> CompiledCrmMapping:
    return compile_crm_mapping(int(row["id"]), dict(row["spec"]))


def feed_states(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    """Every sync state of an enabled mapping, with what polling it needs."""
    statement = (
        select(
            crm_sync_states.c.id,
            crm_sync_states.c.side,
            crm_sync_states.c.cursor,
            crm_mappings.c.id.label("mapping_id"),
            crm_mappings.c.name.label("mapping"),
            crm_mappings.c.spec,
            crm_mappings.c.poll_interval_s,
            crm_mappings.c.salesforce_platform_id,
            crm_mappings.c.hubspot_platform_id,
        )
        .join(crm_mappings, crm_mappings.c.id == crm_sync_states.c.mapping_id)
        .where(crm_mappings.c.enabled.is_(True))
        .order_by(crm_sync_states.c.id)
    )
    with database_errors("list crm feeds"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def save_cursor(engine: sqlalchemy.Engine, state_id: int, cursor: str, read: int, own: int) -> None:
    statement = (
        update(crm_sync_states)
        .where(crm_sync_states.c.id == state_id)
        .values(
            cursor=cursor,
            last_polled_at=func.now(),
            read_count=crm_sync_states.c.read_count + read,
            own_skipped=crm_sync_states.c.own_skipped + own,
        )
    )
    with database_errors("save crm cursor"), engine.begin() as conn:
        conn.execute(statement)
