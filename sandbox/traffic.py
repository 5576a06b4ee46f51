"""Sample traffic for the demo: real public payloads through the real ingress of three services.

The demo's outside senders (Stripe, Shopify, any webhook source), simulated like the rest of
the outside world in ``sandbox/``: ``synapseops demo`` sends one burst and ``synapseops
traffic`` (:func:`run_traffic`) a steady stream, both over real HTTP to the running API.

- generic events (``samples/{github,otel,shopify,stripe}``) → ``/webhooks/events/<source>`` →
  the event-log pipeline → ``inbound_events``;
- Stripe ``payment_intent.succeeded`` events, each for a new payment, signed like Stripe does
  → ``/webhooks/stripe`` → the payment-settlement pipeline → the sandbox finance ledger;
- Shopify orders, signed with Shopify's HMAC → ``/webhooks/demo-shop/orders/create`` → the
  integration-delivery pipeline → the sandbox ERP (the flow is created through the management
  API on first use).

Every delivery has a fresh id; each burst sends one delivery twice to show it is absorbed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.crm_demo import CrmDemo
from sandbox.github_traffic import AggregationDemo
from sandbox.samples import SAMPLES
from synapseops.ids import new_id, new_traceparent
from synapseops.logging import configure_logging, get_logger
from synapseops.settings import Settings
from synapseops.signatures import (
    DEFAULT_HMAC_HEADER,
    sign_hmac_hex,
    sign_standard_webhooks,
    sign_stripe,
)

GENERIC_SOURCES = ("github", "otel", "shopify", "stripe")
DEMO_SHOP = "demo-shop"
DEMO_ERP = "demo-erp"
# Demo data: the shop's webhook signing secret (a dev-only value, like the dev API token).
DEMO_SHOP_SECRET = "shpss_synapseops_demo"


@dataclass(frozen=True)
class Sample:
    source: str
    event_type: str
    entity_key: str
    body: bytes


def _entity_of(source: str, payload: dict[str, Any]) -> str:
    if source == "stripe":
        obj = payload.get("data", {}).get("object", {})
        return str(obj.get("payment_intent") or obj.get("id"))
    if source == "github":
        return str(payload.get("repository", {}).get("full_name", "github"))
    if source == "shopify":
        return f"order-{payload.get('order', payload).get('id')}"
    return source


def load_samples(folder: Path = SAMPLES) -> list[Sample]:
    samples = []
    for source in GENERIC_SOURCES:
        for path in sorted((folder / source).rglob("*.json")):
            payload = json.loads(path.read_bytes())
            event_type = str(payload.get("type") or path.stem)
            samples.append(
                Sample(source, event_type, _entity_of(source, payload), path.read_bytes())
            )
    if not samples:
        raise FileNotFoundError(f"no sample payloads under {folder}")
    return samples


class DemoClient:
    """The demo's HTTP calls to the running API (and the sandbox)."""

    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self.settings = settings
        self.http = client
        self.api = settings.api.url
        self.auth = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
        self._shopify_order = json.loads((SAMPLES / "shopify" / "order.json").read_text())
        self._stripe_event = json.loads(
            (SAMPLES / "stripe" / "events" / "payment_intent.succeeded.json").read_text()
        )
        self.crm = CrmDemo(client, self.api, self.auth, settings.sandbox.url)

    # ---- generic ingress -----------------------------------------------------------------

    def send_generic(self, event_id: str, sample: Sample) -> httpx.Response:
        return self.http.post(
            f"{self.api}/webhooks/events/{sample.source}",
            content=sample.body,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": event_id,
                "X-Entity-Key": sample.entity_key,
                "X-Event-Type": sample.event_type,
                "traceparent": new_traceparent(),
                **self._source_auth(sample.source, sample.body),
            },
        )

    def _source_auth(self, source: str, body: bytes) -> dict[str, str]:
        """What proves the request is ``source``'s (SYNAPSEOPS_INGRESS_SOURCES)."""
        auth = self.settings.ingress.sources.get(source)
        if auth is None or not auth.secrets:
            return {}
        secret = auth.secrets[0]
        if auth.scheme == "token":
            if auth.header:
                return {auth.header: secret}
            return {"Authorization": f"Bearer {secret}"}
        if auth.scheme == "hmac_hex":
            return {auth.header or DEFAULT_HMAC_HEADER: sign_hmac_hex(body, secret)}
        msg_id, stamp = new_id("msg"), int(time.time())
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_standard_webhooks(body, secret, msg_id, stamp),
        }

    # ---- Stripe --------------------------------------------------------------------------

    def stripe_event(self, amount: int) -> tuple[str, bytes]:
        """A ``payment_intent.succeeded`` for a new payment: (payment intent id, raw body)."""
        event = json.loads(json.dumps(self._stripe_event))
        payment = f"pi_demo{new_id('')[1:25]}"
        event["id"] = f"evt_demo{new_id('')[1:25]}"
        event["created"] = int(time.time())
        intent = event["data"]["object"]
        intent.update({"id": payment, "amount": amount, "amount_received": amount})
        return payment, json.dumps(event).encode()

    def send_stripe(self, body: bytes) -> httpx.Response:
        secret = self.settings.stripe.secrets[0]
        return self.http.post(
            f"{self.api}/webhooks/stripe",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign_stripe(body, secret),
            },
        )

    # ---- Shopify through an integration flow ------------------------------------------------

    def ensure_flow(self) -> None:
        """Create the demo's Shopify → ERP flow through the management API, once."""
        existing = self._get("/api/v1/connectors")
        if any(row["name"] == DEMO_SHOP for row in existing):
            return
        signing = self._post(
            "/api/v1/credentials",
            {"name": "demo-shop-signing", "kind": "signing_secret", "secret": DEMO_SHOP_SECRET},
        )
        erp_key = self._post(
            "/api/v1/credentials",
            {"name": "demo-erp-token", "kind": "bearer", "secret": new_id("erp")},
        )
        shop = self._post("/api/v1/connectors", {"name": DEMO_SHOP, "protocol": "webhook"})
        erp = self._post(
            "/api/v1/connectors",
            {"name": DEMO_ERP, "protocol": "rest", "base_url": self.settings.sandbox.url},
        )
        source = self._post(
            "/api/v1/endpoints",
            {"connector_id": shop["id"], "name": "orders/create", "direction": "source",
             "signature_scheme": "shopify", "secret_credential_id": signing["id"]},
        )  # fmt: skip
        target = self._post(
            "/api/v1/endpoints",
            {"connector_id": erp["id"], "name": "orders", "direction": "target",
             "method": "POST", "path": "/erp/api/orders"},
        )  # fmt: skip
        rules = json.loads((SAMPLES / "mappings" / "shopify_order_to_erp.json").read_text())
        mapping = self._post("/api/v1/mappings", {"name": "demo-shopify-to-erp", "rules": rules})
        self._post(
            "/api/v1/flows",
            {"name": "demo-shopify-orders", "source_endpoint_id": source["id"],
             "target_endpoint_id": target["id"], "credential_id": erp_key["id"],
             "mapping_id": mapping["id"]},
        )  # fmt: skip

    def ensure_notifications(self) -> int:
        """The demo's channels and workflows (:mod:`sandbox.demo_notifications`), once."""
        from sandbox.demo_notifications import ensure_notifications

        box = self.settings.sandbox
        return ensure_notifications(self, box.url, box.host, box.smtp_port)

    def shopify_order(self, number: int) -> bytes:
        order = json.loads(json.dumps(self._shopify_order))
        order["order"]["order_number"] = number
        order["order"]["name"] = f"#{number}"
        return json.dumps(order).encode()

    def send_shopify(self, body: bytes, delivery_id: str) -> httpx.Response:
        signature = base64.b64encode(
            hmac.new(DEMO_SHOP_SECRET.encode(), body, hashlib.sha256).digest()
        ).decode()
        return self.http.post(
            f"{self.api}/webhooks/{DEMO_SHOP}/orders/create",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Hmac-Sha256": signature,
                "X-Shopify-Webhook-Id": delivery_id,
                "X-Shopify-Topic": "orders/create",
            },
        )

    # ---- reads ------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.api}{path}", params=params, headers=self.auth)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(f"{self.api}{path}", json=body, headers=self.auth)
        if response.status_code >= 400:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text}")
        return response.json()

    def stored_events(self, event_ids: set[str]) -> list[dict[str, Any]]:
        rows = self._get("/api/v1/events", limit=500)["items"]
        return [row for row in rows if row["event_id"] in event_ids]

    def settlements(self, payments: set[str]) -> list[dict[str, Any]]:
        rows = self._get("/api/v1/settlements", limit=500)
        items = rows["items"] if isinstance(rows, dict) else rows
        return [row for row in items if row["payment_id"] in payments]

    def erp_orders(self, numbers: set[int]) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.settings.sandbox.url}/erp/api/orders", headers={"Authorization": "Bearer demo"}
        )
        response.raise_for_status()
        wanted = {f"shopify-{n}" for n in numbers}
        return [o for o in response.json()["orders"] if o["external_id"] in wanted]


def generic_deliveries(samples: list[Sample], rounds: int) -> Iterator[tuple[str, Sample]]:
    """``(event_id, sample)`` pairs: every sample once per round, then one duplicate."""
    first: tuple[str, Sample] | None = None
    for _ in range(rounds):
        for sample in samples:
            event_id = new_id(f"demo-{sample.source}")
            first = first or (event_id, sample)
            yield event_id, sample
    if first is not None:
        yield first


def order_numbers() -> Iterator[int]:
    """Order numbers unlikely to clash with an earlier demo run's (the ERP refuses repeats)."""
    return itertools.count(int(time.time() * 10) % 10**9 * 10)


# Above the USD approval threshold (SYNAPSEOPS_PAYMENTS_APPROVAL_THRESHOLDS): the payment waits
# for an approver and its large_payment trigger fills the inbox and the sandbox's #approvals.
LARGE_PAYMENT = 1_250_000
ORDINARY_PAYMENTS = (1999, 4500, 12000, 250000)
LARGE_EVERY_S = 60.0


class StripeAmounts:
    """The demo's charge amounts: a large payment first, then one about every ``every_s``
    seconds, ordinary ones between. A user sees the notification service at work within
    the first minute of ``make demo`` (a 5% chance per payment left the first minutes of
    many demos without one)."""

    def __init__(
        self,
        rng: random.Random,
        every_s: float = LARGE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rng, self.every_s, self.clock = rng, every_s, clock
        self.next_large: float | None = None

    def next(self) -> int:
        now = self.clock()
        if self.next_large is None or now >= self.next_large:
            self.next_large = now + self.every_s
            return LARGE_PAYMENT
        return self.rng.choice(ORDINARY_PAYMENTS)


# The console's demo logins (dev only, like the dev API token): (name, role, password).
DEMO_CONSOLE_USERS = (
    ("admin", "admin", "demo-admin-pass"),
    ("operator", "operator", "demo-operator-pass"),
    ("approver", "approver", "demo-approver-pass"),
    ("viewer", "viewer", "demo-viewer-pass"),
)


def run_traffic(settings: Settings, rate: float) -> None:
    """Send sample traffic to the running API until SIGTERM / Ctrl-C; ``rate`` per second.

    Counts every delivery in ``synapseops_demo_traffic_total{kind,status}`` on
    ``SYNAPSEOPS_DEMO_TRAFFIC_HOST:PORT``.
    """
    from prometheus_client import Counter, start_http_server

    configure_logging("traffic", settings.log_level)
    log = get_logger("synapseops.traffic")
    sent = Counter("synapseops_demo_traffic_total", "Demo deliveries sent", ["kind", "status"])
    start_http_server(settings.demo.traffic_port, addr=settings.demo.traffic_host)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    samples = load_samples()
    numbers = order_numbers()
    rng = random.Random()
    amounts = StripeAmounts(rng)
    with httpx.Client(timeout=15.0) as http:
        client = DemoClient(settings, http)
        client.ensure_flow()
        aggregation = AggregationDemo(settings, http)
        aggregation.ensure_sources()
        client.crm.ensure_pair()
        tick = 0
        kinds = ("generic", "stripe", "shopify", "otel", "github", "crm")
        while not stopping:
            kind = kinds[tick % len(kinds)]
            try:
                if kind == "crm":  # a person edits Salesforce or HubSpot; the sync follows
                    log.info("crm edit", extra={"did": client.crm.step(rng)})
                    response = None
                elif kind == "generic":
                    sample = samples[tick % len(samples)]
                    response = client.send_generic(new_id(f"demo-{sample.source}"), sample)
                elif kind == "stripe":
                    response = client.send_stripe(client.stripe_event(amounts.next())[1])
                elif kind == "otel":
                    response = aggregation.send_logs()
                elif kind == "github":
                    response = aggregation.add_github_events()
                else:
                    number = next(numbers)
                    response = client.send_shopify(client.shopify_order(number), f"demo-{number}")
                sent.labels(kind, "edited" if response is None else str(response.status_code)).inc()
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                sent.labels(kind, "unreachable").inc()
                log.warning("the API did not answer", extra={"kind": kind, "error": str(exc)})
            tick += 1
            time.sleep(1.0 / rate)
    log.info("traffic stopped", extra={"ticks": tick})
