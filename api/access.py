"""Which role each route needs, declared once per router and resolved per route (default-deny).

``api/routes/__init__.py`` names, for every router it hangs under ``/api/v1``, an
:class:`Access`: the role its reads (GET) need, the role its writes (every other method) need,
and exceptions by operation (``"POST /dead-letters/replay"``). :class:`RouteRoles` resolves
that into one role per concrete route of the app. A request whose route resolves to no role
(a route hung under ``/api/v1`` some other way, a write on a read-only router) is refused for
every principal, admin included: forgetting to declare a role closes the route, never opens it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from synapseops.principals import Role

READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Access:
    """The roles of one router's routes; ``None`` leaves that kind of route closed."""

    read: Role | None
    write: Role | None = None
    # "METHOD /path" as the router spells it (its prefix included) -> role
    exceptions: Mapping[str, Role] = field(default_factory=dict)

    def role(self, method: str, path: str) -> Role | None:
        exception = self.exceptions.get(f"{method} {path}")
        if exception is not None:
            return exception
        return self.read if method in READ_METHODS else self.write


@dataclass
class RouteRoles:
    """``(method, full path) -> role`` for the routes of declared routers, then per route."""

    declared: dict[tuple[str, str], Role] = field(default_factory=dict)
    # Paths served outside /api/v1 that still need a principal (OpenAPI outside dev).
    extra: dict[tuple[str, str], Role] = field(default_factory=dict)

    def declare(self, prefix: str, router: APIRouter, access: Access) -> None:
        for route in router.routes:
            if not isinstance(route, Route):
                continue
            for method in route.methods or ():
                role = access.role(method, route.path)
                if role is not None:
                    self.declared[(method, prefix + route.path)] = role
        unknown = set(access.exceptions) - {
            f"{method} {route.path}"
            for route in router.routes
            if isinstance(route, Route)
            for method in route.methods or ()
        }
        if unknown:
            raise ValueError(f"access exceptions name no route of the router: {sorted(unknown)}")

    def require(self, method: str, path: str, role: Role) -> None:
        self.extra[(method, path)] = role

    def lookup(self, method: str, path: str) -> Role | None:
        key_method = "GET" if method == "HEAD" else method
        return self.declared.get((key_method, path)) or self.extra.get((key_method, path))


@dataclass(frozen=True)
class Resolution:
    """What routing would do with a request: ``matched`` a route; the ``role`` it needs
    (None on a matched route: no role was declared, so it is closed)."""

    matched: bool
    role: Role | None


def resolve(routes: Iterable[BaseRoute], roles: RouteRoles, scope: Scope) -> Resolution:
    """Match ``scope`` the way the router will (first full match wins)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            path = route.path if isinstance(route, Route) else ""
            return Resolution(True, roles.lookup(scope["method"], path))
    return Resolution(False, None)


def annotate_openapi(schema: dict[str, Any], roles: RouteRoles) -> dict[str, Any]:
    """Write each operation's role into the document (``x-required-role`` and its text)."""
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            role = roles.lookup(method.upper(), path)
            if role is None or not isinstance(operation, dict):
                continue
            operation["x-required-role"] = role.value
            also = "" if role is Role.ADMIN else " (or `admin`)"
            note = f"Requires role `{role.value}`{also}."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
    return schema
