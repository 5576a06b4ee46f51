"""API Integration routes: connectors, credentials, mappings, flows, runs, connector webhooks.

:data:`INTEGRATION_ROUTERS` are the management routers, in one tuple for ``api/routes``; the
connector webhook ingress (:mod:`api.routes.integration.webhooks`) is a public router.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.routes.integration import connectors, credentials, flows, mappings, runs

INTEGRATION_ROUTERS: tuple[APIRouter, ...] = (
    connectors.router,
    credentials.router,
    mappings.router,
    flows.router,
    runs.router,
)
