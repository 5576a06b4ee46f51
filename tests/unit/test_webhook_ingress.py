"""One webhook ingress: every webhook route is a configured WebhookRoute run by api.webhooks."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from api import webhooks
from api.routes import PUBLIC_ROUTERS
from api.webhooks import WebhookRoute


def _webhook_endpoints() -> list[APIRoute]:
    return [
        route
        for router in PUBLIC_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.path.startswith("/webhooks")
    ]


def test_every_webhook_route_runs_the_one_ingress() -> None:
    endpoints = _webhook_endpoints()
    assert {route.path for route in endpoints} == {
        "/webhooks/events/{source}",
        "/webhooks/stripe",
        "/webhooks/{connector}/{endpoint:path}",
    }
    for route in endpoints:
        module = inspect.getmodule(route.endpoint)
        assert module is not None
        configured = [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, WebhookRoute) and cls is not WebhookRoute
        ]
        assert len(configured) == 1, f"{module.__name__} configures one WebhookRoute"
        source = inspect.getsource(route.endpoint)
        assert "accept(" in source, f"{route.path} runs api.webhooks.accept"
        # No route reads, verifies or publishes on its own.
        text = inspect.getsource(module)
        for step in ("publish_event(", "request.body()", "parse_json_body("):
            assert step not in text, f"{module.__name__} does {step} itself"


def test_the_ingress_steps_are_in_the_contracts_order() -> None:
    source = inspect.getsource(webhooks._accept)
    steps = [
        "route.prepare(",
        "request.body()",
        "route.verify(",
        "parse_json_body(",
        "publish_event(",
    ]
    positions = [source.index(step) for step in steps]
    assert positions == sorted(positions)
