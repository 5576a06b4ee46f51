"""The little worlds the browser tests build through the management API, as an admin's
machine would: a shop's webhook and an ERP's order API, flows between them, Shopify orders.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from tests.fixtures import SAMPLES


class Machine(Protocol):
    """What speaks the management API with the bootstrap token (:class:`Stack` does), and
    where the sandbox's outside systems answer."""

    @property
    def sandbox(self) -> str: ...

    def post(self, path: str, body: dict[str, Any]) -> Any: ...

    def get(self, path: str, **params: Any) -> Any: ...


ORDER = (SAMPLES / "shopify" / "order.json").read_bytes()


def shop_and_erp(stack: Machine, suffix: str) -> dict[str, Any]:
    """What an admin connected earlier: the shop's webhook, the ERP's order API."""
    secret = f"shpss_{uuid.uuid4().hex}"
    signing = stack.post(
        "/api/v1/credentials",
        {"name": f"shop-sign-{suffix}", "kind": "signing_secret", "secret": secret},
    )
    stack.post(
        "/api/v1/credentials",
        {"name": f"erp-token-{suffix}", "kind": "bearer", "secret": f"erp-{uuid.uuid4().hex}"},
    )
    shop = stack.post("/api/v1/connectors", {"name": f"shop-{suffix}", "protocol": "webhook"})
    erp = stack.post(
        "/api/v1/connectors",
        {"name": f"erp-{suffix}", "protocol": "rest", "base_url": stack.sandbox},
    )
    stack.post(
        "/api/v1/endpoints",
        {
            "connector_id": shop["id"],
            "name": "orders/create",
            "direction": "source",
            "signature_scheme": "shopify",
            "secret_credential_id": signing["id"],
        },
    )
    stack.post(
        "/api/v1/endpoints",
        {
            "connector_id": erp["id"],
            "name": "orders",
            "direction": "target",
            "method": "POST",
            "path": "/erp/api/orders",
        },
    )
    return {"shop": shop["name"], "erp": erp["name"], "secret": secret, "suffix": suffix}


def order(number: int) -> bytes:
    return ORDER.replace(b'"order_number": 1001', f'"order_number": {number}'.encode(), 1)


def broken_rules() -> dict[str, Any]:
    """The Shopify → ERP mapping with one rule reading a field Shopify never sends."""
    rules = json.loads((SAMPLES / "mappings" / "shopify_order_to_erp.json").read_text())
    for rule in rules["rules"]:
        if rule["target"] == "order_name":
            rule["source"] = "order.po_number"
    return dict(rules)


def flow_via_api(stack: Machine, world: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """A flow made by a machine (the bootstrap token), following the mapping's latest version."""
    mapping = stack.post("/api/v1/mappings", {"name": f"m-{world['suffix']}", "rules": rules})
    sources = stack.get("/api/v1/endpoints", direction="source")
    targets = stack.get("/api/v1/endpoints", direction="target")
    connectors = {c["id"]: c["name"] for c in stack.get("/api/v1/connectors")}
    source = next(e for e in sources if connectors[e["connector_id"]] == world["shop"])
    target = next(e for e in targets if connectors[e["connector_id"]] == world["erp"])
    credential = next(
        c for c in stack.get("/api/v1/credentials") if c["name"] == f"erp-token-{world['suffix']}"
    )
    flow = stack.post(
        "/api/v1/flows",
        {
            "name": f"flow-{world['suffix']}",
            "source_endpoint_id": source["id"],
            "target_endpoint_id": target["id"],
            "credential_id": credential["id"],
            "mapping_id": mapping["id"],
        },
    )
    return {"flow": flow, "mapping": mapping}
