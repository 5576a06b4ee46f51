"""``/api/v1/crm/platforms``: the Salesforce and HubSpot workspaces the sync talks to.

The token goes in once and never comes out (Fernet ciphertext, :mod:`sinks.cipher`; every
answer shows ``"token": "**hidden**"``; the body is read by :func:`api.bodies.exact_body`,
whose 422 never echoes the input). ``own_origin`` is how the platform names the integration's
own writes — the Salesforce API client id (``Sforce-Call-Options: client=…``), the HubSpot
app id — which the change feeds drop. ``POST …/{id}/test`` makes one cheap authenticated call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body
from api.deps import EngineDep, SettingsDep
from sinks.crm import store
from sinks.http_guard import check_url
from synapseops.errors import SynapseOpsError
from synapseops.redaction import HIDDEN

router = APIRouter(prefix="/crm/platforms", tags=["crm: platforms"])
Id = Annotated[int, Path(ge=1)]
NAME = r"^[a-z0-9](?:[a-z0-9_-]{0,62})$"


class PlatformCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    kind: Literal["salesforce", "hubspot"]
    base_url: str = Field(min_length=8, max_length=500, pattern=r"^https?://")
    workspace_id: str | None = Field(default=None, max_length=100)
    own_origin: str = Field(min_length=1, max_length=100)
    token: SecretStr = Field(min_length=16, max_length=4096)


class PlatformPublic(BaseModel):
    id: int
    name: str
    kind: str
    base_url: str
    workspace_id: str | None
    own_origin: str
    token: str = HIDDEN
    created_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    detail: dict[str, Any] | str


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_schema(PlatformCreate),
    responses={409: {"description": "name taken"}, 422: {"description": "invalid body"}},
)
async def create_platform(
    request: Request, engine: EngineDep, settings: SettingsDep
) -> PlatformPublic:
    body = await exact_body(request, PlatformCreate)
    check_url(body.base_url)  # the SSRF guard checks the address on every call
    values = body.model_dump(exclude={"token"})
    row = await run_in_threadpool(
        store.create_platform, engine, settings, values, body.token.get_secret_value()
    )
    return PlatformPublic.model_validate(row)


@router.get("")
def list_platforms(engine: EngineDep) -> list[PlatformPublic]:
    return [PlatformPublic.model_validate(r) for r in store.list_platforms(engine)]


@router.get("/{platform_id}", responses={404: {"description": "no such platform"}})
def get_platform(platform_id: Id, engine: EngineDep) -> PlatformPublic:
    return PlatformPublic.model_validate(store.get_platform(engine, platform_id))


@router.post("/{platform_id}/test", responses={404: {"description": "no such platform"}})
async def test_connection(
    platform_id: Id, engine: EngineDep, settings: SettingsDep
) -> ConnectionTest:
    """One authenticated call to the platform: ``ok`` and what it said, or why it failed."""
    access = await run_in_threadpool(store.open_platform, engine, settings, platform_id)
    client = store.client_for(access, settings)
    try:
        return ConnectionTest(ok=True, detail=await client.test())
    except SynapseOpsError as exc:
        return ConnectionTest(ok=False, detail=f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
