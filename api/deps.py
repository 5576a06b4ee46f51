"""Dependencies of the routes, as ``Annotated`` aliases (FastAPI full-stack template style).

The shared resources are built once by the lifespan in ``api/main.py`` and kept on
``app.state``; these functions hand them to routes, so a route never builds a client itself.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import sqlalchemy
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synapseops.kafka import AsyncProducer
from synapseops.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_producer(request: Request) -> AsyncProducer:
    producer: AsyncProducer = request.app.state.producer
    return producer


def get_engine(request: Request) -> sqlalchemy.Engine:
    engine: sqlalchemy.Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
ProducerDep = Annotated[AsyncProducer, Depends(get_producer)]
EngineDep = Annotated[sqlalchemy.Engine, Depends(get_engine)]

# auto_error=False: we answer the 401 ourselves, with a reason and the challenge header.
_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <SYNAPSEOPS_API_TOKEN>`",
)


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=reason,
        headers={"WWW-Authenticate": "Bearer"},
    )


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison; an empty configured token matches nothing."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Guard of the whole ``/api/v1`` router: the bearer token must be the configured one."""
    if credentials is None:
        if request.headers.get("authorization"):
            raise _unauthorized("Authorization header must be 'Bearer <token>'")
        raise _unauthorized("missing Authorization: Bearer token")
    if not token_matches(credentials.credentials, settings.api.token.get_secret_value()):
        raise _unauthorized("invalid bearer token")


TokenDep = Depends(require_token)
