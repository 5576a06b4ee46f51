"""The API Integration service's management routers, in one tuple for ``api/routes``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import connectors, credentials, flows, mappings, runs

INTEGRATION_ROUTERS: tuple[APIRouter, ...] = (
    connectors.router,
    credentials.router,
    mappings.router,
    flows.router,
    runs.router,
)
