"""The routers of the API, assembled once.

Everything under ``/api/v1`` hangs off :data:`api_v1_router`, which carries the bearer-token
dependency itself: a route added there cannot forget authentication. Webhooks authenticate
by their own means (signatures), and ``/health`` and ``/metrics`` are open on purpose.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import TokenDep
from api.routes import (
    connector_webhooks,
    dead_letters,
    events,
    health,
    settlements,
    stripe_webhooks,
    webhooks,
)
from api.routes.integration import INTEGRATION_ROUTERS

api_v1_router = APIRouter(
    prefix="/api/v1",
    dependencies=[TokenDep],
    responses={401: {"description": "missing or wrong bearer token"}},
)
api_v1_router.include_router(events.router)
api_v1_router.include_router(dead_letters.router)
for integration_router in INTEGRATION_ROUTERS:
    api_v1_router.include_router(integration_router)
api_v1_router.include_router(settlements.router)

# connector_webhooks last: its /webhooks/{connector}/{endpoint} must not shadow the fixed
# /webhooks/events/{source} and /webhooks/stripe routes above it.
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    webhooks.router,
    stripe_webhooks.router,
    connector_webhooks.router,
)
