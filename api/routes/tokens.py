"""``/api/v1/tokens``: named API tokens with roles (admin only; ``synapseops tokens`` alike).

``POST`` answers the clear token once, in ``token`` (with ``Cache-Control: no-store``); the
store keeps only its digest, so a lost token is revoked and replaced, never shown again.
Revocation keeps the row (``revoked_at``, ``revoked_by``) for the audit trail. The bootstrap
``SYNAPSEOPS_API_TOKEN`` is configuration, not a row: it is neither listed nor revocable here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import EngineDep, PrincipalDep
from sinks.principals import store
from synapseops.principals import NAME_PATTERN, Role

router = APIRouter(prefix="/tokens", tags=["tokens"])

TOKEN_ID_PATTERN = r"^[0-9a-f]{12}$"
TokenId = Annotated[str, Path(pattern=TOKEN_ID_PATTERN, description="the token's public id")]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="unique among live tokens")
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    expires_at: datetime | None = Field(default=None, description="none: until revoked")

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. 2030-01-31T00:00:00Z)")
        if value <= datetime.now(UTC):
            raise ValueError("expires_at is in the past")
        return value


class TokenPublic(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(validation_alias="token_id")
    name: str
    roles: list[Role]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class TokenCreated(TokenPublic):
    token: str = Field(description="the token itself: shown this once, stored nowhere")


_NOT_FOUND: dict[int | str, dict[str, str]] = {404: {"description": "no such (live) token"}}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "a live token has this name"}},
)
def create_token(
    body: TokenCreate, engine: EngineDep, principal: PrincipalDep, response: Response
) -> TokenCreated:
    row, minted = store.create_token(
        engine,
        name=body.name,
        roles=body.roles,
        created_by=principal.actor,
        expires_at=body.expires_at,
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated.model_validate({**row, "token": minted.token})


@router.get("")
def list_tokens(engine: EngineDep, include_revoked: bool = False) -> list[TokenPublic]:
    rows = store.list_tokens(engine, include_revoked=include_revoked)
    return [TokenPublic.model_validate(row) for row in rows]


@router.get("/{token_id}", responses=_NOT_FOUND)
def get_token(token_id: TokenId, engine: EngineDep) -> TokenPublic:
    return TokenPublic.model_validate(store.get_token(engine, token_id))


@router.delete("/{token_id}", responses=_NOT_FOUND, summary="Revoke a token (the row stays)")
def revoke_token(token_id: TokenId, engine: EngineDep, principal: PrincipalDep) -> TokenPublic:
    row = store.revoke_token(engine, token_id, by=principal.actor, by_name=False)
    return TokenPublic.model_validate(row)
