"""Dependencies of the routes, as ``Annotated`` aliases (FastAPI full-stack template style).

The shared resources are built once by the lifespan in ``api/main.py`` and kept on
``app.state``; these functions hand them to routes, so a route never builds a client itself.
They are ``async def`` because FastAPI runs a plain ``def`` dependency in its thread pool: two
thread hand-offs per request for an attribute read (a third of the Stripe ingress' CPU in
session 6's profile). An ``async def`` one is called on the event loop, where a read belongs.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import PRINCIPAL_SCOPE_KEY, authorize
from synapseops.kafka import AsyncProducer
from synapseops.principals import Principal
from synapseops.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_producer(request: Request) -> AsyncProducer:
    producer: AsyncProducer = request.app.state.producer
    return producer


async def get_engine(request: Request) -> sqlalchemy.Engine:
    engine: sqlalchemy.Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
ProducerDep = Annotated[AsyncProducer, Depends(get_producer)]
EngineDep = Annotated[sqlalchemy.Engine, Depends(get_engine)]

# Documents the scheme in OpenAPI; the check itself is api.auth.PrincipalMiddleware's, which
# runs before the body is read (FastAPI reads a body before it solves dependencies).
_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`: `SYNAPSEOPS_API_TOKEN` (admin) or a named "
    "token from `synapseops tokens create` / `POST /api/v1/tokens`",
)


def get_principal(
    request: Request,
    _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The principal the middleware authenticated, holding the route's role (checked here for
    routes that read no body). Without one (an app built without the middleware) the answer
    is 401: the guard fails closed."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    authorize(principal, request.scope)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
PrincipalGuard = Depends(get_principal)
