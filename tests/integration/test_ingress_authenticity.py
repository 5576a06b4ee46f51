"""Ingress authenticity over uvicorn, the real broker and a fresh database (issue 8, item 9).

- a connector's webhook source must choose its signature scheme; ``none`` is said in every
  answer about the endpoint, and an endpoint nobody chose for takes nothing;
- the de-duplication id comes from signed content: a Shopify body replayed under a new
  ``X-Shopify-Webhook-Id`` is the same event; Standard Webhooks' signed ``webhook-id`` is it;
- ``/webhooks/events/{source}`` takes only allow-listed sources, each with its own secret;
- migration 0007 turns a webhook source's old implicit ``none`` into "not chosen".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from alembic import command
from pydantic import SecretStr

from api.ingress import body_digest_id
from api.main import create_app
from api.server import serving_in_thread
from sinks.integration.tables import connectors, endpoints
from sinks.migrate import alembic_config, upgrade
from synapseops.settings import ApiSettings, DatabaseSettings, IngressSettings, Settings, SourceAuth
from synapseops.signatures import sign_hmac_hex, sign_standard_webhooks
from tests.integration.databases import fresh_database
from tests.integration.integration.world import end_offsets, read_at
from topics.admin import apply_topics
from topics.registry import INBOUND_EVENTS, INTEGRATION_EVENTS

pytestmark = pytest.mark.integration

ADMIN = f"itest-admin-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
SHOP_SECRET = "shpss_itest_signing"
SW_SECRET = "whsec_" + base64.b64encode(b"itest-standard-webhooks-key-0001").decode()
GH_SECRET = "gh-itest-secret"
FEED_TOKEN = "feed-itest-token"


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    apply_topics(settings)
    sources = {
        "gh": SourceAuth(
            scheme="hmac_hex", secret=SecretStr(GH_SECRET), header="X-Hub-Signature-256"
        ),
        "feed": SourceAuth(scheme="token", secret=SecretStr(FEED_TOKEN), header="X-Feed-Token"),
    }
    with fresh_database(database_url, "t_ingress_auth") as url:
        served = settings.model_copy(
            update={
                "api": ApiSettings(token=SecretStr(ADMIN)),
                "database": DatabaseSettings(url=SecretStr(url)),
                "ingress": IngressSettings(sources=sources),
            }
        )
        engine = sqlalchemy.create_engine(url)
        with serving_in_thread(create_app(served)) as base:
            yield {"api": base, "engine": engine, "settings": settings}
        engine.dispose()


def api(world: dict[str, Any], method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method, f"{world['api']}/api/v1{path}", json=body, headers=AUTH, timeout=35
    )


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def webhook_connector(world: dict[str, Any], name: str) -> dict[str, Any]:
    return created(api(world, "POST", "/connectors", {"name": name, "protocol": "webhook"}))


def signing_secret(world: dict[str, Any], name: str, secret: str) -> int:
    body = {"name": name, "kind": "signing_secret", "secret": secret}
    return int(created(api(world, "POST", "/credentials", body))["id"])


def post(world: dict[str, Any], path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{world['api']}/webhooks/{path}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=35,
    )


def shopify_sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()).decode()


def test_a_webhook_source_must_choose_and_none_is_a_warning(world: dict[str, Any]) -> None:
    shop = webhook_connector(world, "choosy")
    unchosen = {"connector_id": shop["id"], "name": "orders/create", "direction": "source"}
    refused = api(world, "POST", "/endpoints", unchosen)
    assert refused.status_code == 422 and "must choose signature_scheme" in refused.text

    unsigned = created(api(world, "POST", "/endpoints", {**unchosen, "signature_scheme": "none"}))
    assert unsigned["signature_scheme"] == "none"
    assert any("unsigned deliveries" in w for w in unsigned["warnings"])
    for answer in (
        api(world, "GET", f"/endpoints/{unsigned['id']}").json(),
        next(e for e in api(world, "GET", "/endpoints").json() if e["id"] == unsigned["id"]),
        api(world, "PATCH", f"/endpoints/{unsigned['id']}", {"config": {"a": 1}}).json(),
    ):
        assert answer["warnings"] == unsigned["warnings"]

    secret = signing_secret(world, "choosy-signing", SHOP_SECRET)
    signed = {"connector_id": shop["id"], "name": "orders/paid", "direction": "source",
              "signature_scheme": "shopify", "secret_credential_id": secret}  # fmt: skip
    assert created(api(world, "POST", "/endpoints", signed))["warnings"] == []
    # A REST connector's sources are polled, not signed: no choice to make.
    rest = created(api(world, "POST", "/connectors", {"name": "polled", "protocol": "rest"}))
    polled = {"connector_id": rest["id"], "name": "changes", "direction": "source",
              "path": "/changes", "poll_interval_s": 60}  # fmt: skip
    assert created(api(world, "POST", "/endpoints", polled))["warnings"] == []


def test_an_endpoint_nobody_chose_a_scheme_for_takes_nothing(world: dict[str, Any]) -> None:
    shop = webhook_connector(world, "legacy")
    with world["engine"].begin() as conn:  # as migration 0007 leaves an old implicit 'none'
        conn.execute(
            sqlalchemy.insert(endpoints).values(
                connector_id=shop["id"], name="orders/create", direction="source"
            )
        )
    before = end_offsets(world["settings"], INTEGRATION_EVENTS.name)
    response = post(world, "legacy/orders/create", b'{"id": 1}')
    assert response.status_code == 401
    assert "no signature scheme chosen" in response.json()["detail"]
    assert end_offsets(world["settings"], INTEGRATION_EVENTS.name) == before


def test_a_replayed_shopify_body_under_a_new_delivery_id_is_the_same_event(
    world: dict[str, Any],
) -> None:
    shop = webhook_connector(world, "shop")
    secret = signing_secret(world, "shop-signing", SHOP_SECRET)
    created(api(world, "POST", "/endpoints", {
        "connector_id": shop["id"], "name": "orders/create", "direction": "source",
        "signature_scheme": "shopify", "secret_credential_id": secret}))  # fmt: skip
    body = json.dumps({"id": 450789469, "order_number": 1001, "at": uuid.uuid4().hex}).encode()
    signature = shopify_sign(body)
    before = end_offsets(world["settings"], INTEGRATION_EVENTS.name)
    first = post(world, "shop/orders/create", body, **{
        "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": "wh-1",
        "X-Entity-Key": "not-from-a-header"})  # fmt: skip
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["event_id"] == body_digest_id(body)
    # Someone who captured the delivery re-sends it with a fresh id: nothing new is published.
    replayed = post(world, "shop/orders/create", body, **{
        "X-Shopify-Hmac-Sha256": signature, "X-Shopify-Webhook-Id": "wh-forged"})  # fmt: skip
    assert replayed.status_code == 202 and replayed.json()["duplicate"] is True
    assert replayed.json()["event_id"] == accepted["event_id"]
    after = end_offsets(world["settings"], INTEGRATION_EVENTS.name)
    assert sum(after) - sum(before) == 1
    record = read_at(
        world["settings"], INTEGRATION_EVENTS.name, accepted["partition"], accepted["offset"]
    )
    headers = dict(record.headers)
    assert headers["synapseops-event-id"] == body_digest_id(body).encode()
    assert record.key == b"450789469"  # the signed body's id, not X-Entity-Key
    assert json.loads(headers["synapseops-http-headers"])["x-shopify-webhook-id"] == "wh-1"


def test_standard_webhooks_ids_are_the_signed_webhook_id(world: dict[str, Any]) -> None:
    hooks = webhook_connector(world, "svix")
    secret = signing_secret(world, "svix-signing", SW_SECRET)
    created(api(world, "POST", "/endpoints", {
        "connector_id": hooks["id"], "name": "invoice.paid", "direction": "source",
        "signature_scheme": "standard_webhooks", "secret_credential_id": secret}))  # fmt: skip
    body = b'{"type": "invoice.paid", "data": {"id": "in_1"}}'
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": sign_standard_webhooks(body, SW_SECRET, msg_id, stamp),
               "X-Event-Id": "unsigned-id"}  # fmt: skip
    response = post(world, "svix/invoice.paid", body, **headers)
    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == msg_id
    forged = post(world, "svix/invoice.paid", body, **{**headers, "webhook-id": "msg_other"})
    assert forged.status_code == 401


def test_generic_sources_are_allow_listed_each_with_its_secret(world: dict[str, Any]) -> None:
    settings = world["settings"]
    body = json.dumps({"id": "push-1", "ref": uuid.uuid4().hex}).encode()
    before = inbound_offsets(settings)
    unknown = post(world, "events/nobody", body, **{"X-Hub-Signature-256": "sha256=00"})
    assert unknown.status_code == 404 and "unknown source" in unknown.json()["detail"]
    wrong = post(world, "events/gh", body, **{"X-Hub-Signature-256": sign_hmac_hex(body, "x")})
    unsigned = post(world, "events/gh", body)
    no_token = post(world, "events/feed", body, **{"Idempotency-Key": "f-1"})
    bad_token = post(world, "events/feed", body, **{"X-Feed-Token": "guess"})
    for refused in (wrong, unsigned, no_token, bad_token):
        assert refused.status_code == 401, refused.text
        assert refused.json()["detail"]
    assert inbound_offsets(settings) == before

    signed = post(world, "events/gh", body, **{
        "X-Hub-Signature-256": sign_hmac_hex(body, GH_SECRET), "Idempotency-Key": "unsigned",
        "X-Entity-Key": "unsigned"})  # fmt: skip
    assert signed.status_code == 202, signed.text
    assert signed.json()["event_id"] == body_digest_id(body)  # only the body is signed
    record = read_at(
        settings, INBOUND_EVENTS.name, signed.json()["partition"], signed.json()["offset"]
    )
    assert record.key == b"push-1"

    token = post(
        world, "events/feed", body, **{"X-Feed-Token": FEED_TOKEN, "Idempotency-Key": "f-2"}
    )
    assert token.status_code == 202, token.text
    assert token.json()["event_id"] == "f-2"  # the whole request is the token holder's
    stored = read_at(
        settings, INBOUND_EVENTS.name, token.json()["partition"], token.json()["offset"]
    )
    assert FEED_TOKEN.encode() not in b"".join(value or b"" for _, value in stored.headers)
    assert sum(inbound_offsets(settings)) - sum(before) == 2


def inbound_offsets(settings: Settings) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    from synapseops.kafka import consumer_config

    consumer = Consumer(consumer_config(settings.kafka, f"t-marks-{uuid.uuid4().hex}"))
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(INBOUND_EVENTS.name, p), timeout=10)[1]
            for p in range(INBOUND_EVENTS.partitions)
        ]
    finally:
        consumer.close()


def test_migration_0007_makes_an_implicit_none_not_chosen(database_url: str) -> None:
    with fresh_database(database_url, "t_mig_0007", migrated=False) as url:
        upgrade(url, "0005")
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as conn:
                hook = conn.execute(
                    sqlalchemy.insert(connectors)
                    .values(name="old-shop", protocol="webhook")
                    .returning(connectors.c.id)
                ).scalar_one()
                rest = conn.execute(
                    sqlalchemy.insert(connectors)
                    .values(name="old-erp", protocol="rest")
                    .returning(connectors.c.id)
                ).scalar_one()
                for connector, direction in ((hook, "source"), (rest, "source"), (hook, "target")):
                    conn.execute(
                        sqlalchemy.text(
                            "INSERT INTO endpoints (connector_id, name, direction) "
                            "VALUES (:c, :n, :d)"
                        ),
                        {"c": connector, "n": f"e-{connector}-{direction}", "d": direction},
                    )
            upgrade(url, "0007")
            schemes = scheme_by_name(engine)
            assert schemes == {
                f"e-{hook}-source": None,
                f"e-{rest}-source": "none",
                f"e-{hook}-target": "none",
            }
            command.downgrade(alembic_config(url), "0005")
            assert set(scheme_by_name(engine).values()) == {"none"}
        finally:
            engine.dispose()


def scheme_by_name(engine: sqlalchemy.Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT name, signature_scheme FROM endpoints"))
        return {name: scheme for name, scheme in rows}
