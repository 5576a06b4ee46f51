"""Authentication and authorisation of the management API, before any route runs.

A pure ASGI middleware in front of the app. For a guarded path (everything under ``/api/v1``;
``/openapi.json`` too outside dev) it

1. reads ``Authorization: Bearer <token>`` — the bootstrap ``SYNAPSEOPS_API_TOKEN`` (an admin,
   no database needed) or a named token (:mod:`sinks.principals.store`) — and answers 401 with the
   reason and ``WWW-Authenticate: Bearer`` when there is none that holds. It never calls
   ``receive``: a body sent without a valid token is not read, let alone parsed;
2. leaves the :class:`~synapseops.principals.Principal` in the scope for the routes
   (:data:`api.deps.PrincipalDep`: e.g. the approver of a settlement decision);
3. checks the role declared for the route the router picked (:mod:`api.access`) at the first
   of two moments: the app's first ``receive`` (FastAPI reads a body *before* it solves
   dependencies, so this is the moment for a route with a body) or the guard dependency of
   the ``/api/v1`` router (a route that never reads one). 403 with the role needed when the
   principal lacks it or the route has no role declared (default-deny); a path no route
   matches goes on to its 404/405.

The principals store unreadable → 503 with ``Retry-After`` (an outage is not a wrong token).
A request without ``Authorization`` may be a console user's: ``sessions`` (the console's
:class:`api.console.session.SessionAuth`) turns its session cookie and CSRF header into the
principal, and the same role table applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import sqlalchemy
from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import RouteRoles
from sinks.principals.store import authenticate_token
from synapseops.errors import DatabaseUnavailable
from synapseops.logging import get_logger
from synapseops.principals import Principal, bootstrap_principal, parse_token, same_secret

log = get_logger(__name__)

PRINCIPAL_SCOPE_KEY = "synapseops.principal"
V1_PREFIX = "/api/v1"
STORE_RETRY_AFTER_S = 5


ROLES_SCOPE_KEY = "synapseops.route_roles"


class Refused(HTTPException):
    """401/403/503 with the reason; an ``HTTPException`` so that, raised from ``receive``
    while FastAPI reads a body, it reaches the client as itself (FastAPI turns other
    exceptions there into a 400)."""

    def __init__(self, status: int, reason: str) -> None:
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        elif status == 503:
            headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        super().__init__(status, reason, headers=headers)
        self.reason = reason


def _authorization(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


async def authenticate(
    header: str | None, bootstrap_token: str, engine: sqlalchemy.Engine | None
) -> Principal:
    """The principal of an ``Authorization`` header value, or :class:`Refused` (401/503)."""
    if header is None:
        raise Refused(401, "missing Authorization: Bearer token")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "Authorization header must be 'Bearer <token>'")
    if same_secret(token, bootstrap_token):
        return bootstrap_principal()
    if parse_token(token) is None or engine is None:
        raise Refused(401, "invalid bearer token")
    try:
        principal = await asyncio.to_thread(authenticate_token, engine, token)
    except DatabaseUnavailable as exc:
        log.warning("principals store unavailable", extra={"error": type(exc).__name__})
        raise Refused(503, "the principals store is unavailable; try again") from exc
    if principal is None:
        raise Refused(401, "invalid bearer token (unknown, revoked or expired)")
    return principal


def authorize(principal: Principal, scope: Scope) -> None:
    """:class:`Refused` (403) unless ``principal`` holds the role of the route in ``scope``."""
    roles = scope.get(ROLES_SCOPE_KEY)
    method, path = scope["method"], scope["path"]
    role = roles.for_route(scope.get("route"), method) if isinstance(roles, RouteRoles) else None
    if role is None:
        raise Refused(403, f"{method} {path} declares no role, so it is closed to every principal")
    if not principal.may(role):
        held = ", ".join(sorted(held.value for held in principal.roles))
        raise Refused(
            403, f"{method} {path} needs role {role.value}; {principal.actor} holds {held}"
        )


class PrincipalMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        roles: RouteRoles,
        bootstrap_token: Callable[[], str],
        engine: Callable[[], sqlalchemy.Engine | None],
        sessions: Callable[[Scope], Awaitable[Principal | None]] | None = None,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.roles = roles
        self.bootstrap_token = bootstrap_token
        self.engine = engine

    def guards(self, path: str) -> bool:
        return (
            path == V1_PREFIX
            or path.startswith(V1_PREFIX + "/")
            or any(path == extra for _, extra in self.roles.extra)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            header = _authorization(scope)
            principal = await self.sessions(scope) if header is None and self.sessions else None
            if principal is None:
                principal = await authenticate(header, self.bootstrap_token(), self.engine())
            method = "GET" if scope["method"] == "HEAD" else scope["method"]
            extra = self.roles.extra.get((method, scope["path"]))
            if extra is not None and not principal.may(extra):
                raise Refused(403, f"{scope['path']} needs role {extra.value}")
        except Refused as refused:
            response = JSONResponse(
                {"detail": refused.reason}, refused.status_code, headers=refused.headers
            )
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        scope[ROLES_SCOPE_KEY] = self.roles
        if extra is not None:
            await self.app(scope, receive, send)
            return
        authorized = False

        async def authorized_receive() -> Message:
            # The router has picked the route by now (scope["route"]): check before any byte.
            nonlocal authorized
            if not authorized:
                authorize(principal, scope)
                authorized = True
            return await receive()

        await self.app(scope, authorized_receive, send)
