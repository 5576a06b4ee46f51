"""The routers of the API, assembled once, and the role each ``/api/v1`` route needs.

Everything under ``/api/v1`` is hung off :data:`api_v1_router` through :data:`V1_ROUTERS`,
which names each router's :class:`~api.access.Access`: the table below is the whole answer to
"who may do what". :class:`api.auth.PrincipalMiddleware` enforces it before a route runs (and
before a body is read); a route whose role is not declared here is closed to everyone.
Webhooks authenticate by their own means (signatures, source secrets), and ``/health`` and
``/metrics`` are open on purpose.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.access import Access, RouteRoles
from api.auth import V1_PREFIX
from api.deps import PrincipalGuard
from api.routes import dead_letters, health, tokens
from api.routes.aggregation import otlp as aggregation_otlp
from api.routes.aggregation import schema as aggregation_schema
from api.routes.aggregation import sources as aggregation_sources
from api.routes.aggregation import uploads as aggregation_uploads
from api.routes.crm import full_syncs as crm_full_syncs
from api.routes.crm import mappings as crm_mappings
from api.routes.crm import platforms as crm_platforms
from api.routes.crm import sync as crm_sync
from api.routes.event_log import events, webhooks
from api.routes.integration import (
    INTEGRATION_ROUTERS,
    connectors,
    credentials,
    flows,
    mappings,
    runs,
)
from api.routes.integration import webhooks as connector_webhooks
from api.routes.notifications import approvals as notification_approvals
from api.routes.notifications import channels as notification_channels
from api.routes.notifications import workflows as notification_workflows
from api.routes.payments import settlements, stripe_webhooks
from api.routes.views import lineage, overview
from synapseops.principals import Role

VIEWER, OPERATOR, APPROVER, ADMIN = Role.VIEWER, Role.OPERATOR, Role.APPROVER, Role.ADMIN

V1_ROUTERS: tuple[tuple[APIRouter, Access], ...] = (
    (events.router, Access(read=VIEWER)),
    # replay and discard
    (dead_letters.router, Access(read=VIEWER, write=OPERATOR)),
    (connectors.router, Access(read=VIEWER, write=ADMIN)),
    # which secrets exist (names, kinds) is the admins' business too
    (credentials.router, Access(read=ADMIN, write=ADMIN)),
    # preview runs rules on a sample and changes nothing
    (
        mappings.router,
        Access(read=VIEWER, write=ADMIN, exceptions={"POST /mappings/preview": VIEWER}),
    ),
    (flows.router, Access(read=VIEWER, write=ADMIN)),
    # re-run, one or many
    (runs.router, Access(read=VIEWER, write=OPERATOR)),
    # approve and reject
    (settlements.router, Access(read=VIEWER, write=APPROVER)),
    (tokens.router, Access(read=ADMIN, write=ADMIN)),
    (lineage.router, Access(read=VIEWER)),
    (overview.router, Access(read=VIEWER)),
    # the approval inbox: an approver answers (then the approval's own roles/principals)
    (notification_approvals.router, Access(read=VIEWER, write=APPROVER)),
    # channel secrets and test messages are the admins' business; reads show no secret
    (notification_channels.router, Access(read=VIEWER, write=ADMIN)),
    # a dry run and a preview render a sample and change nothing
    (
        notification_workflows.router,
        Access(
            read=VIEWER,
            write=ADMIN,
            exceptions={
                "POST /notification-workflows/{workflow_id}/dry-run": VIEWER,
                "POST /notification-workflows/preview": VIEWER,
            },
        ),
    ),
    (notification_workflows.runs_router, Access(read=VIEWER)),
    # data sources: admins configure; operators pause/resume; a test changes nothing
    (
        aggregation_sources.router,
        Access(
            read=VIEWER,
            write=ADMIN,
            exceptions={
                "POST /aggregation/sources/{name}/test": VIEWER,
                "POST /aggregation/sources/{name}/pause": OPERATOR,
                "POST /aggregation/sources/{name}/resume": OPERATOR,
            },
        ),
    ),
    (aggregation_schema.router, Access(read=VIEWER)),
    # bulk uploads into a bulk source
    (aggregation_uploads.router, Access(read=VIEWER, write=OPERATOR)),
    # CRM: a connection test makes one call; previews map samples and change nothing
    (
        crm_platforms.router,
        Access(
            read=VIEWER,
            write=ADMIN,
            exceptions={"POST /crm/platforms/{platform_id}/test": OPERATOR},
        ),
    ),
    (
        crm_mappings.router,
        Access(
            read=VIEWER,
            write=ADMIN,
            exceptions={
                "POST /crm/mappings/preview": VIEWER,
                "POST /crm/mappings/{mapping_id}/preview": VIEWER,
            },
        ),
    ),
    # resolve a held conflict; start, cancel a full sync
    (crm_sync.router, Access(read=VIEWER, write=OPERATOR)),
    (crm_full_syncs.router, Access(read=VIEWER, write=OPERATOR)),
)

api_v1_router = APIRouter(
    prefix=V1_PREFIX,
    # Fails closed should the middleware be missing, and documents the bearer scheme.
    dependencies=[PrincipalGuard],
    responses={
        401: {"description": "missing or wrong bearer token"},
        403: {"description": "the token lacks the role this operation needs"},
    },
)
# A router hung under /api/v1 without an entry above (a new integration router, say) is
# still served, with no role declared: closed until the table names one.
_UNDECLARED = tuple(
    router for router in INTEGRATION_ROUTERS if all(router is not r for r, _ in V1_ROUTERS)
)
for _router in (*(router for router, _ in V1_ROUTERS), *_UNDECLARED):
    api_v1_router.include_router(_router)


def route_roles() -> RouteRoles:
    """A fresh ``(method, path) -> role`` table of every declared ``/api/v1`` route."""
    roles = RouteRoles()
    for router, access in V1_ROUTERS:
        roles.declare(V1_PREFIX, router, access)
    return roles


# connector_webhooks last: its /webhooks/{connector}/{endpoint} must not shadow the fixed
# /webhooks/events/{source} and /webhooks/stripe routes above it.
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    webhooks.router,
    stripe_webhooks.router,
    connector_webhooks.router,
    # OTLP/HTTP logs: a source's ingest token or an operator's API token (checked there)
    aggregation_otlp.router,
)
