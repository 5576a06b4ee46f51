"""Authentication and authorisation of the management API, before any route runs.

A pure ASGI middleware in front of the app. For a guarded path (everything under ``/api/v1``;
``/openapi.json`` too outside dev) it

1. reads ``Authorization: Bearer <token>`` — the bootstrap ``SYNAPSEOPS_API_TOKEN`` (an admin,
   no database needed) or a named token (:mod:`sinks.principals`) — and answers 401 with the
   reason and ``WWW-Authenticate: Bearer`` when there is none that holds. It never calls
   ``receive``: a body sent without a valid token is not read, let alone parsed;
2. finds the route the router will pick and the role declared for it
   (:mod:`api.access`); 403 with the role needed when the principal lacks it, or when the
   route has no role declared (default-deny); an unmatched path goes on to its 404/405;
3. leaves the :class:`~synapseops.principals.Principal` in the scope for the routes
   (:data:`api.deps.PrincipalDep`: e.g. the approver of a settlement decision).

The principals store unreadable → 503 with ``Retry-After`` (an outage is not a wrong token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import sqlalchemy
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access import RouteRoles, resolve
from sinks.principals import authenticate_token
from synapseops.errors import DatabaseUnavailable
from synapseops.logging import get_logger
from synapseops.principals import Principal, bootstrap_principal, parse_token, same_secret

log = get_logger(__name__)

PRINCIPAL_SCOPE_KEY = "synapseops.principal"
V1_PREFIX = "/api/v1"
STORE_RETRY_AFTER_S = 5


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
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


class PrincipalMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        roles: RouteRoles,
        routes: Callable[[], Iterable[BaseRoute]],
        bootstrap_token: Callable[[], str],
        engine: Callable[[], sqlalchemy.Engine | None],
        guard_openapi: bool,
        openapi_path: str = "/openapi.json",
    ) -> None:
        self.app = app
        self.roles = roles
        self.routes = routes
        self.bootstrap_token = bootstrap_token
        self.engine = engine
        self.guarded_paths = {openapi_path} if guard_openapi else set()

    def guards(self, path: str) -> bool:
        return path == V1_PREFIX or path.startswith(V1_PREFIX + "/") or path in self.guarded_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal = await authenticate(
                _authorization(scope), self.bootstrap_token(), self.engine()
            )
            self.authorize(principal, scope)
        except Refused as refused:
            await self.refuse(refused, scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    def authorize(self, principal: Principal, scope: Scope) -> None:
        resolution = resolve(self.routes(), self.roles, scope)
        if not resolution.matched:
            return  # the router answers 404/405 to an authenticated caller
        method, path = scope["method"], scope["path"]
        if resolution.role is None:
            raise Refused(
                403, f"{method} {path} declares no role, so it is closed to every principal"
            )
        if not principal.may(resolution.role):
            held = ", ".join(sorted(role.value for role in principal.roles))
            raise Refused(
                403,
                f"{method} {path} needs role {resolution.role.value}; {principal.actor} "
                f"holds {held}",
            )

    async def refuse(self, refused: Refused, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        if refused.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        elif refused.status == 503:
            headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        response = JSONResponse({"detail": refused.reason}, refused.status, headers=headers)
        await response(scope, receive, send)
