"""Which role each route needs, declared once per router and resolved per route (default-deny).

``api/routes/__init__.py`` names, for every router it hangs under ``/api/v1``, an
:class:`Access`: the role its reads (GET) need, the role its writes (every other method) need,
and exceptions by operation (``"POST /dead-letters/replay"``). :class:`RouteRoles` resolves
that into one role per route object. A request whose matched route has no role (a route hung
under ``/api/v1`` some other way, a write on a read-only router) is refused for every
principal, admin included: forgetting to declare a role closes the route, never opens it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from starlette.routing import Route

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


def _routes(router: APIRouter) -> Iterator[Route]:
    """The router's own routes and those of routers included into it."""
    for route in router.routes:
        if isinstance(route, Route):
            yield route
        elif isinstance(getattr(route, "original_router", None), APIRouter):
            yield from _routes(route.original_router)  # type: ignore[attr-defined]


@dataclass
class RouteRoles:
    """The role of each declared route, by the route object the router matched (FastAPI puts
    it in ``scope["route"]``) and by ``(method, full path)`` for the OpenAPI document."""

    by_route: dict[int, tuple[Route, dict[str, Role]]] = field(default_factory=dict)
    by_path: dict[tuple[str, str], Role] = field(default_factory=dict)
    # Paths served outside /api/v1 that still need a principal (OpenAPI outside dev).
    extra: dict[tuple[str, str], Role] = field(default_factory=dict)

    def declare(self, prefix: str, router: APIRouter, access: Access) -> None:
        spelled: set[str] = set()
        for route in _routes(router):
            methods: dict[str, Role] = {}
            for method in route.methods or ():
                spelled.add(f"{method} {route.path}")
                role = access.role(method, route.path)
                if role is not None:
                    methods[method] = role
                    self.by_path[(method, prefix + route.path)] = role
            self.by_route[id(route)] = (route, methods)
        unknown = set(access.exceptions) - spelled
        if unknown:
            raise ValueError(f"access exceptions name no route of the router: {sorted(unknown)}")

    def require(self, method: str, path: str, role: Role) -> None:
        self.extra[(method, path)] = role

    def for_path(self, method: str, path: str) -> Role | None:
        key = ("GET" if method == "HEAD" else method, path)
        return self.by_path.get(key) or self.extra.get(key)

    def for_route(self, route: object, method: str) -> Role | None:
        """The role of the route the router picked; None: not declared (closed)."""
        entry = self.by_route.get(id(route))
        if entry is None or entry[0] is not route:
            return None
        return entry[1].get("GET" if method == "HEAD" else method)


def annotate_openapi(schema: dict[str, Any], roles: RouteRoles) -> dict[str, Any]:
    """Write each operation's role into the document (``x-required-role`` and its text)."""
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            role = roles.for_path(method.upper(), path)
            if role is None or not isinstance(operation, dict):
                continue
            operation["x-required-role"] = role.value
            also = "" if role is Role.ADMIN else " (or `admin`)"
            note = f"Requires role `{role.value}`{also}."
            operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
    return schema
