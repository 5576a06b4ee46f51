"""``/api/v1/connectors`` and ``/api/v1/endpoints``: the outside systems and their endpoints.

A connector is one outside system (``shopify``, ``erp``) reached by webhook, REST or Kafka; an
endpoint is one path or event on it, a ``source`` (``orders/create`` webhooks, a polled REST
path, a topic) or a ``target`` (``POST /orders``). Webhook sources name their signature scheme
and the ``signing_secret`` credential that verifies it.

Outbound settings are checked on write by :func:`check_outbound` (422 with the reason): a
``base_url`` is http(s) with a host and no ``user:password@``, a ``path`` is a path and never a
URL, and ``config.headers`` set no ``Host``/hop-by-hop header nor a control character (the
SSRF guard of :mod:`sinks.http_guard`; the addresses themselves are checked at call time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy
from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from api.deps import EngineDep, SettingsDep
from api.routes.integration.webhooks import endpoint_warnings, signature_choice_missing
from sinks.http_guard import check_outbound_config
from sinks.integration import store
from sinks.integration.tables import CONNECTOR_NAME_PATTERN, connectors, endpoints
from streams.integration.kafka_target import kafka_target_problems
from streams.integration.source_config import reserved_topics, source_endpoint_problems
from synapseops.settings import Settings

router = APIRouter(tags=["integration: connectors"])

Protocol = Literal["webhook", "rest", "kafka"]
Direction = Literal["source", "target"]
SignatureScheme = Literal["shopify", "standard_webhooks", "hmac_hex", "none"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ENDPOINT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-/]{0,127}$"
Id = Annotated[int, Path(ge=1)]


class ConnectorBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Protocol
    base_url: str | None = Field(default=None, max_length=2048)
    config: dict[str, Any] = Field(default_factory=dict)


class ConnectorCreate(ConnectorBase):
    name: str = Field(pattern=CONNECTOR_NAME_PATTERN)


def _not_null(model: BaseModel, *names: str) -> None:
    # PATCH {"config": null} would store JSON null in a NOT NULL column (found by schemathesis).
    for name in names:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


class ConnectorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: Protocol | None = None
    base_url: str | None = Field(default=None, max_length=2048)
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> ConnectorUpdate:
        _not_null(self, "protocol", "config")
        return self


class ConnectorPublic(ConnectorCreate):
    model_config = ConfigDict(extra="ignore")

    id: int
    created_at: datetime
    updated_at: datetime


class EndpointFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method | None = None
    path: str | None = Field(default=None, max_length=2048)
    # A webhook source must choose (None: not chosen, refused); 'none' only when said.
    signature_scheme: SignatureScheme | None = None
    signature_header: str | None = Field(default=None, max_length=200)
    secret_credential_id: int | None = Field(default=None, ge=1)
    poll_interval_s: int | None = Field(default=None, ge=1)
    cursor: Any = None
    kafka_topic: str | None = Field(default=None, max_length=249)
    config: dict[str, Any] = Field(default_factory=dict)


class EndpointCreate(EndpointFields):
    connector_id: int = Field(ge=1)
    name: str = Field(pattern=ENDPOINT_NAME_PATTERN)
    direction: Direction

    @model_validator(mode="after")
    def _signed_sources_have_a_secret(self) -> EndpointCreate:
        if self.signature_scheme not in (None, "none") and self.secret_credential_id is None:
            raise ValueError(
                f"signature_scheme {self.signature_scheme!r} needs secret_credential_id"
            )
        return self


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method | None = None
    path: str | None = None
    signature_scheme: SignatureScheme | None = None
    signature_header: str | None = None
    secret_credential_id: int | None = Field(default=None, ge=1)
    poll_interval_s: int | None = Field(default=None, ge=1)
    cursor: Any = None
    kafka_topic: str | None = None
    config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> EndpointUpdate:
        _not_null(self, "config")
        return self


class EndpointPublic(EndpointCreate):
    model_config = ConfigDict(extra="ignore")

    id: int
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def warnings(self) -> list[str]:
        return endpoint_warnings(self.direction, self.signature_scheme)


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "name taken, or still referenced"}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such record"}}


RESERVED_CONNECTOR_NAMES = frozenset({"events", "stripe"})


def check_outbound(
    *,
    base_url: str | None = None,
    path: str | None = None,
    config: dict[str, Any] | None = None,
) -> None:
    """The SSRF guard's write-time rules for a connector or endpoint body: an
    :class:`~synapseops.errors.OutboundConfigInvalid` (422) if broken."""
    check_outbound_config(base_url=base_url, path=path, config=config)


@router.post("/connectors", status_code=status.HTTP_201_CREATED, responses=_CONFLICT)
def create_connector(body: ConnectorCreate, engine: EngineDep) -> ConnectorPublic:
    if body.name in RESERVED_CONNECTOR_NAMES:
        # /webhooks/events/<source> is the generic ingress; a connector cannot take its path.
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"connector name {body.name!r} is reserved"
        )
    check_outbound(base_url=body.base_url, config=body.config)
    row = store.insert_row(engine, connectors, body.model_dump())
    return ConnectorPublic.model_validate(row)


@router.get("/connectors")
def list_connectors(engine: EngineDep) -> list[ConnectorPublic]:
    return [ConnectorPublic.model_validate(row) for row in store.list_rows(engine, connectors)]


@router.get("/connectors/{connector_id}", responses=_NOT_FOUND)
def get_connector(connector_id: Id, engine: EngineDep) -> ConnectorPublic:
    return ConnectorPublic.model_validate(store.get_row(engine, connectors, connector_id))


@router.patch("/connectors/{connector_id}", responses={**_NOT_FOUND, **_CONFLICT})
def update_connector(connector_id: Id, body: ConnectorUpdate, engine: EngineDep) -> ConnectorPublic:
    check_outbound(base_url=body.base_url, config=body.config)
    row = store.update_row(engine, connectors, connector_id, body.model_dump(exclude_unset=True))
    return ConnectorPublic.model_validate(row)


@router.delete(
    "/connectors/{connector_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"description": "a flow still uses one of its endpoints"}},
)
def delete_connector(connector_id: Id, engine: EngineDep) -> None:
    store.delete_row(engine, connectors, connector_id)


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "name taken, or the connector/credential does not exist"}},
)
def create_endpoint(
    body: EndpointCreate, engine: EngineDep, settings: SettingsDep
) -> EndpointPublic:
    missing = signature_choice_missing(
        engine, body.connector_id, body.direction, body.signature_scheme
    )
    if missing:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, missing)
    check_outbound(path=body.path, config=body.config)
    _refuse_unrunnable_source(engine, settings, body.model_dump())
    row = store.insert_row(engine, endpoints, body.model_dump())
    return EndpointPublic.model_validate(row)


@router.get("/endpoints")
def list_endpoints(
    engine: EngineDep,
    connector_id: Annotated[int | None, Query(ge=1)] = None,
    direction: Direction | None = None,
) -> list[EndpointPublic]:
    where = []
    if connector_id is not None:
        where.append(endpoints.c.connector_id == connector_id)
    if direction is not None:
        where.append(endpoints.c.direction == direction)
    return [EndpointPublic.model_validate(r) for r in store.list_rows(engine, endpoints, *where)]


@router.get("/endpoints/{endpoint_id}", responses=_NOT_FOUND)
def get_endpoint(endpoint_id: Id, engine: EngineDep) -> EndpointPublic:
    return EndpointPublic.model_validate(store.get_row(engine, endpoints, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", responses={**_NOT_FOUND, **_CONFLICT})
def update_endpoint(
    endpoint_id: Id, body: EndpointUpdate, engine: EngineDep, settings: SettingsDep
) -> EndpointPublic:
    check_outbound(path=body.path, config=body.config)
    current = store.get_row(engine, endpoints, endpoint_id)
    _refuse_unrunnable_source(engine, settings, {**current, **body.model_dump(exclude_unset=True)})
    row = store.update_row(engine, endpoints, endpoint_id, body.model_dump(exclude_unset=True))
    return EndpointPublic.model_validate(row)


def _refuse_unrunnable_source(
    engine: sqlalchemy.Engine, settings: Settings, fields: Mapping[str, Any]
) -> None:
    """422 with the problems the worker would skip this source endpoint, or refuse this Kafka
    target, for (the same checks it runs: streams/integration/source_config.py, kafka_target.py)."""
    found = store.list_rows(engine, connectors, connectors.c.id == fields["connector_id"])
    if found:
        topics = reserved_topics(settings)
        protocol = str(found[0]["protocol"])
        problems = source_endpoint_problems(protocol, fields, topics)
        if protocol == "kafka" and fields.get("direction") == "target":
            problems += kafka_target_problems(fields, topics)
        if problems:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(problems))


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"description": "a flow still uses it"}},
)
def delete_endpoint(endpoint_id: Id, engine: EngineDep) -> None:
    store.delete_row(engine, endpoints, endpoint_id)
