"""``/api/v1/credentials``: API keys, bearer tokens, basic auth and webhook signing secrets.

The secret goes in once (create, rotate) and never comes out: it is stored as Fernet
ciphertext (:mod:`sinks.integration.credentials`) and every answer shows
``"secret": "**hidden**"``. The bodies are read by :func:`api.bodies.exact_body`, whose 422
never echoes the input. A secret must pass :func:`sinks.integration.credentials.check_secret`
(422 otherwise): long enough to be scrubbed from every text, no control or line-break
character, header-safe for the kinds that travel as header text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body
from api.deps import EngineDep, SettingsDep
from sinks.integration import store
from sinks.integration.credentials import HIDDEN, check_secret
from sinks.integration.tables import CONNECTOR_NAME_PATTERN, credentials

router = APIRouter(prefix="/credentials", tags=["integration: credentials"])

Kind = Literal["api_key", "bearer", "basic", "signing_secret"]
Id = Annotated[int, Path(ge=1)]
HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,200}$"


class CredentialCreate(BaseModel):
    """``secret`` is the key/token; for ``basic`` it is the password and ``username`` is
    required; ``api_key`` needs the ``header_name`` it travels in."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=CONNECTOR_NAME_PATTERN)
    kind: Kind
    secret: SecretStr = Field(min_length=1, max_length=8192)
    username: str | None = Field(default=None, min_length=1, max_length=200)
    header_name: str | None = Field(default=None, pattern=HEADER_PATTERN)

    @model_validator(mode="after")
    def _kind_needs(self) -> CredentialCreate:
        if self.kind == "api_key" and not self.header_name:
            raise ValueError("an api_key credential needs header_name (e.g. X-Api-Key)")
        if self.kind == "basic" and not self.username:
            raise ValueError("a basic credential needs username")
        check_secret(self.kind, self.secret.get_secret_value(), username=self.username)
        return self

    def stored_secret(self) -> str:
        secret = self.secret.get_secret_value()
        return f"{self.username}:{secret}" if self.kind == "basic" else secret


class CredentialRotate(BaseModel):
    """The new secret (for ``basic``: the new password, and optionally a new username)."""

    model_config = ConfigDict(extra="forbid")

    secret: SecretStr = Field(min_length=1, max_length=8192)
    username: str | None = Field(default=None, min_length=1, max_length=200)


class CredentialPublic(BaseModel):
    id: int
    name: str
    kind: Kind
    header_name: str | None
    # Always HIDDEN: the secret itself is never read back from storage.
    secret: str = HIDDEN
    created_at: datetime
    rotated_at: datetime | None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_schema(CredentialCreate),
    responses={409: {"description": "name taken"}, 422: {"description": "invalid body"}},
)
async def create_credential(
    request: Request, engine: EngineDep, settings: SettingsDep
) -> CredentialPublic:
    body = await exact_body(request, CredentialCreate)
    row = await run_in_threadpool(
        store.create_credential,
        engine,
        settings,
        name=body.name,
        kind=body.kind,
        secret=body.stored_secret(),
        header_name=body.header_name,
    )
    return CredentialPublic.model_validate(row)


@router.post(
    "/{credential_id}/rotate",
    openapi_extra=body_schema(CredentialRotate),
    responses={404: {"description": "no such credential"}},
)
async def rotate_credential(
    credential_id: Id, request: Request, engine: EngineDep, settings: SettingsDep
) -> CredentialPublic:
    body = await exact_body(request, CredentialRotate)
    current = await run_in_threadpool(store.get_row, engine, credentials, credential_id)
    secret = body.secret.get_secret_value()
    # A CredentialInvalid is a RecordError: 422 with the reason (never the secret).
    check_secret(str(current["kind"]), secret, username=body.username)
    if current["kind"] == "basic":
        username = body.username
        if username is None:
            old = await run_in_threadpool(store.load_credential, engine, settings, credential_id)
            username = old.secret.get_secret_value().split(":", 1)[0]
        secret = f"{username}:{secret}"
    row = await run_in_threadpool(store.rotate_credential, engine, settings, credential_id, secret)
    return CredentialPublic.model_validate(row)


@router.get("")
def list_credentials(engine: EngineDep) -> list[CredentialPublic]:
    return [CredentialPublic.model_validate(row) for row in store.list_rows(engine, credentials)]


@router.get("/{credential_id}", responses={404: {"description": "no such credential"}})
def get_credential(credential_id: Id, engine: EngineDep) -> CredentialPublic:
    return CredentialPublic.model_validate(store.get_row(engine, credentials, credential_id))


@router.delete(
    "/{credential_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"description": "no such credential"},
        409: {"description": "a flow or endpoint still uses it"},
    },
)
def delete_credential(credential_id: Id, engine: EngineDep) -> None:
    store.delete_row(engine, credentials, credential_id)
