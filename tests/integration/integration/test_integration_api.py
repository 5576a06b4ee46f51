"""API Integration management API over real HTTP, a real broker and a fresh migrated database.

Connectors, endpoints, credentials, versioned mappings, flows and runs through the real app
(``serving_in_thread``); runs are written the way the delivery pipeline writes them; re-run
commands are read back from ``integration.commands``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from cryptography.fernet import Fernet
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sinks.integration.tables import credentials, run_bodies, runs
from streams.mapping import load_payload
from synapseops.kafka import consumer_config
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.fixtures import GOLDEN, SAMPLES
from tests.integration.databases import fresh_database
from topics.registry import INTEGRATION_COMMANDS

TOKEN = f"itest-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = f"sk-live-{uuid.uuid4().hex}"
SHOPIFY_ORDER = SAMPLES / "shopify" / "order.json"


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_integration_api") as url:
        yield url


@pytest.fixture(scope="module")
def engine(database: str) -> Iterator[sqlalchemy.Engine]:
    engine = sqlalchemy.create_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def own_settings(settings: Settings, database: str) -> Settings:
    return settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(database)),
            "api": ApiSettings(token=SecretStr(TOKEN)),
            "credentials_key": SecretStr(Fernet.generate_key().decode()),
        }
    )


@pytest.fixture(scope="module")
def api(own_settings: Settings, kafka_bootstrap: str) -> Iterator[httpx.Client]:
    with (
        serving_in_thread(create_app(own_settings)) as url,
        httpx.Client(base_url=f"{url}/api/v1", headers=AUTH, timeout=15) as client,
    ):
        yield client


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def flow(api: httpx.Client) -> dict[str, Any]:
    """shopify orders/create → erp POST /orders through mapping v1, with a bearer credential."""
    shop = created(api.post("/connectors", json={"name": "shop", "protocol": "webhook"}))
    erp = created(
        api.post(
            "/connectors",
            json={"name": "erp", "protocol": "rest", "base_url": "http://127.0.0.1:1/erp"},
        )
    )
    secret = created(
        api.post(
            "/credentials",
            json={"name": "shop-hook", "kind": "signing_secret", "secret": "x-signing-secret"},
        )
    )
    source = created(
        api.post(
            "/endpoints",
            json={
                "connector_id": shop["id"],
                "name": "orders/create",
                "direction": "source",
                "signature_scheme": "shopify",
                "signature_header": "X-Shopify-Hmac-Sha256",
                "secret_credential_id": secret["id"],
            },
        )
    )
    target = created(
        api.post(
            "/endpoints",
            json={
                "connector_id": erp["id"],
                "name": "orders",
                "direction": "target",
                "method": "POST",
                "path": "/orders",
            },
        )
    )
    bearer = created(
        api.post("/credentials", json={"name": "erp-token", "kind": "bearer", "secret": SECRET})
    )
    mapping = created(
        api.post("/mappings", json={"name": "shop-to-erp", "rules": [{"target": "a", "const": 1}]})
    )
    return created(
        api.post(
            "/flows",
            json={
                "name": "shop-orders",
                "source_endpoint_id": source["id"],
                "target_endpoint_id": target["id"],
                "credential_id": bearer["id"],
                "mapping_id": mapping["id"],
            },
        )
    )


# ---- records ---------------------------------------------------------------------------


def test_every_route_needs_the_token(api: httpx.Client) -> None:
    for path in ("/connectors", "/credentials", "/mappings", "/flows", "/runs", "/flows/summary"):
        response = httpx.get(
            str(api.base_url).rstrip("/") + path, headers={"Authorization": "Bearer no"}
        )
        assert response.status_code == 401, path


def test_connector_endpoint_and_flow_crud(api: httpx.Client, flow: dict[str, Any]) -> None:
    assert flow["mapping_version"] == "latest" and flow["enabled"] is True
    dup = api.post("/connectors", json={"name": "shop", "protocol": "webhook"})
    assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
    assert (
        api.post("/connectors", json={"name": "Bad Name", "protocol": "webhook"}).status_code == 422
    )
    assert api.post("/connectors", json={"name": "x", "protocol": "smtp"}).status_code == 422
    # /webhooks/events/... and /webhooks/stripe belong to the platform's own ingress.
    reserved = api.post("/connectors", json={"name": "events", "protocol": "webhook"})
    assert reserved.status_code == 422 and "reserved" in reserved.text

    shop = next(c for c in api.get("/connectors").json() if c["name"] == "shop")
    patched = api.patch(f"/connectors/{shop['id']}", json={"config": {"shop": "demo"}}).json()
    assert patched["config"] == {"shop": "demo"} and patched["updated_at"] >= shop["updated_at"]

    sources = api.get("/endpoints", params={"direction": "source"}).json()
    assert [e["name"] for e in sources] == ["orders/create"]
    unsigned = api.post(
        "/endpoints",
        json={
            "connector_id": shop["id"],
            "name": "x",
            "direction": "source",
            "signature_scheme": "shopify",
        },
    )
    assert unsigned.status_code == 422

    # A flow must read from a source and write to a target.
    swapped = api.post(
        "/flows",
        json={
            "name": "swapped",
            "source_endpoint_id": flow["target_endpoint_id"],
            "target_endpoint_id": flow["source_endpoint_id"],
            "mapping_id": flow["mapping_id"],
        },
    )
    assert swapped.status_code == 422 and "not a source" in swapped.json()["detail"]
    unpinnable = api.patch(f"/flows/{flow['id']}", json={"mapping_version": 99})
    assert unpinnable.status_code == 422 and "no version 99" in unpinnable.json()["detail"]

    disabled = api.patch(f"/flows/{flow['id']}", json={"enabled": False, "mapping_version": 1})
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["mapping_version"]) == (False, 1)
    restored = api.patch(
        f"/flows/{flow['id']}", json={"enabled": True, "mapping_version": "latest"}
    )
    assert restored.json()["mapping_version"] == "latest"
    assert api.get(f"/flows/{flow['id']}").json() == restored.json()

    in_use = api.delete(f"/endpoints/{flow['source_endpoint_id']}")
    assert in_use.status_code == 409
    assert api.delete(f"/credentials/{flow['credential_id']}").status_code == 409
    assert api.get("/flows/999999").status_code == 404
    assert api.delete("/connectors/999999").status_code == 404


def test_credentials_are_never_returned_nor_logged(
    api: httpx.Client, engine: sqlalchemy.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    new_secret = f"rotated-{uuid.uuid4().hex}"
    with caplog.at_level(logging.DEBUG):
        made = api.post(
            "/credentials",
            json={
                "name": "crm-key",
                "kind": "api_key",
                "secret": SECRET,
                "header_name": "X-Crm-Key",
            },
        )
        bad = api.post("/credentials", json={"name": "crm-2", "kind": "api_key", "secret": SECRET})
        broken = api.post("/credentials", content=f'{{"secret": "{SECRET}"'.encode())
        rotated = api.post(f"/credentials/{made.json()['id']}/rotate", json={"secret": new_secret})
        listed = api.get("/credentials")
        one = api.get(f"/credentials/{made.json()['id']}")
    assert made.status_code == 201 and rotated.status_code == 200
    assert bad.status_code == 422 and broken.status_code == 422
    for response in (made, bad, broken, rotated, listed, one):
        assert SECRET not in response.text and new_secret not in response.text
        assert "ciphertext" not in response.text
    assert one.json()["secret"] == "**hidden**" and one.json()["rotated_at"] is not None
    assert one.json()["header_name"] == "X-Crm-Key"
    assert caplog.records, "the API logged nothing: the capture is not working"
    for record in caplog.records:
        text = json.dumps(record.__dict__, default=str)
        assert SECRET not in text and new_secret not in text
    with engine.connect() as conn:
        stored = conn.execute(
            sqlalchemy.select(credentials.c.ciphertext).where(credentials.c.name == "crm-key")
        ).scalar_one()
    assert SECRET.encode() not in stored and new_secret.encode() not in stored


# ---- mappings ---------------------------------------------------------------------------


def test_every_save_is_a_new_immutable_version(
    api: httpx.Client, engine: sqlalchemy.Engine
) -> None:
    v1_rules = (
        b'{"rules": [{"target": "fee", "const": 19.990},'
        b' {"target": "id", "const": 18446744073709551617}]}'
    )
    made = api.post(
        "/mappings",
        content=b'{"name": "versions", "created_by": "ana", "rules": ' + v1_rules + b"}",
        headers={"content-type": "application/json"},
    )
    mapping = created(made)
    assert mapping["latest_version"] == 1 and mapping["version"]["created_by"] == "ana"
    # Exact numbers out: neither a float nor a rounded big int.
    assert '"const":19.990' in made.text and "18446744073709551617" in made.text

    saved = api.post(
        f"/mappings/{mapping['id']}/versions", json={"rules": [{"target": "fee", "const": "x"}]}
    )
    assert created(saved)["version"] == 2
    versions = api.get(f"/mappings/{mapping['id']}/versions")
    assert [v["version"] for v in versions.json()] == [1, 2]
    v1 = api.get(f"/mappings/{mapping['id']}/versions/1")
    assert load_payload(v1.content)["rules"] == load_payload(v1_rules)
    assert api.get(f"/mappings/{mapping['id']}").json()["latest_version"] == 2
    assert api.get(f"/mappings/{mapping['id']}/versions/3").status_code == 404

    invalid = api.post(
        f"/mappings/{mapping['id']}/versions",
        json={
            "rules": [
                {"target": "a", "const": 1},
                {"target": "erp.total", "source": "t", "transforms": ["to_flaot"]},
            ]
        },
    )
    assert invalid.status_code == 422
    errors = invalid.json()["errors"]
    assert errors[0]["rule"] == "2" and errors[0]["target"] == "erp.total"
    assert "to_flaot" in errors[0]["message"]
    assert len(api.get(f"/mappings/{mapping['id']}/versions").json()) == 2  # nothing stored

    with pytest.raises(sqlalchemy.exc.IntegrityError, match="immutable"), engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE mapping_versions SET rules = '{}'::jsonb"))


def test_preview_maps_the_shopify_fixture_with_exact_money_and_big_ids(api: httpx.Client) -> None:
    rules = (GOLDEN / "shopify_order_to_erp.mapping.json").read_bytes()
    order = SHOPIFY_ORDER.read_bytes()
    response = api.post(
        "/mappings/preview",
        content=b'{"rules": ' + rules + b', "payload": ' + order + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = load_payload(response.content)
    expected = load_payload((GOLDEN / "shopify_order_to_erp.expected.json").read_bytes())
    assert body == {"output": expected, "errors": []}
    assert '"unit_price":"199.00"' in response.text

    big = order.replace(b'"id": 450789469', b'"id": 18446744073709551617', 1)
    assert big != order
    response = api.post(
        "/mappings/preview",
        content=b'{"rules": ' + rules + b', "payload": ' + big + b"}",
        headers={"content-type": "application/json"},
    )
    assert load_payload(response.content)["output"]["source_order_id"] == "18446744073709551617"


def test_preview_of_a_broken_rule_names_the_rule_and_the_value(api: httpx.Client) -> None:
    response = api.post(
        "/mappings/preview",
        content=(
            b'{"rules": [{"target": "id", "source": "order.id"},'
            b' {"target": "erp.total", "source": "order.total_price", "transforms": ["to_int"]}],'
            b' "payload": {"order": {"id": 1, "total_price": "409.94"}}}'
        ),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["output"] is None
    [error] = body["errors"]
    assert error["rule"] == "2" and error["target"] == "erp.total"
    assert error["message"].startswith("rule 2 (erp.total): to_int failed on '409.94'")
    assert error["source"] == "order.total_price"

    invalid = api.post(
        "/mappings/preview", json={"rules": {"rules": [{"target": "a"}]}, "payload": {}}
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["message"].startswith("rule 1 (a):")
    assert api.post("/mappings/preview", content=b"{not json").status_code == 422


# ---- runs ---------------------------------------------------------------------------


def insert_run(engine: sqlalchemy.Engine, flow_id: int, event: str, **values: Any) -> int:
    row = {"flow_id": flow_id, "source_event_id": event, "attempt": 1, "status": "succeeded"}
    row.update(values)
    with engine.begin() as conn:
        return int(
            conn.execute(sqlalchemy.insert(runs).values(row).returning(runs.c.id)).scalar_one()
        )


def read_commands(settings: Settings, start: dict[int, int], want: int) -> list[Any]:
    consumer = Consumer(consumer_config(settings.kafka, f"itest-{uuid.uuid4().hex}"))
    try:
        consumer.assign(
            [TopicPartition(INTEGRATION_COMMANDS.name, p, offset) for p, offset in start.items()]
        )
        found: list[Any] = []
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while len(found) < want and datetime.now(UTC) < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
        return found
    finally:
        consumer.close()


def end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings.kafka, f"itest-{uuid.uuid4().hex}"))
    try:
        topic = consumer.list_topics(INTEGRATION_COMMANDS.name, timeout=10).topics[
            INTEGRATION_COMMANDS.name
        ]
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(INTEGRATION_COMMANDS.name, p), timeout=10
            )[1]
            for p in topic.partitions
        }
    finally:
        consumer.close()


def test_runs_list_filters_and_one_run_with_its_bodies(
    api: httpx.Client, engine: sqlalchemy.Engine, flow: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        body_id = conn.execute(
            sqlalchemy.insert(run_bodies)
            .values(content=b'{"big": "body"}')
            .returning(run_bodies.c.id)
        ).scalar_one()
    run_id = insert_run(
        engine,
        flow["id"],
        "list-1",
        status="dead",
        request={
            "method": "POST",
            "url": "http://erp/orders",
            "headers": {"Authorization": "**hidden**"},
        },
        response={"body": {"error": "bad"}},
        response_status=422,
        failed_rule=None,
        error="erp said 422",
        body_ref=body_id,
    )
    insert_run(engine, flow["id"], "list-2", status="succeeded")
    dead = api.get("/runs", params={"flow_id": flow["id"], "status": "dead"}).json()
    assert run_id in [item["id"] for item in dead["items"]]
    assert all(item["status"] == "dead" for item in dead["items"])
    assert "request" not in dead["items"][0]
    one = api.get(f"/runs/{run_id}").json()
    assert one["request"]["headers"]["Authorization"] == "**hidden**"
    assert one["request_body"] == '{"big": "body"}' and one["request_body_bytes"] == 15
    assert one["response_status"] == 422 and one["response"] == {"body": {"error": "bad"}}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.get("/runs", params={"since": later}).json()["items"] == []
    assert api.get("/runs/999999").status_code == 404
    assert api.get("/runs", params={"status": "lost"}).status_code == 422


def test_rerun_commands_land_on_the_topic(
    api: httpx.Client, engine: sqlalchemy.Engine, flow: dict[str, Any], own_settings: Settings
) -> None:
    first = insert_run(engine, flow["id"], "evt-rerun-1", status="failed", trace_id="ab" * 16)
    insert_run(engine, flow["id"], "evt-rerun-1", status="dead", attempt=2)
    insert_run(engine, flow["id"], "evt-rerun-2", status="dead")
    insert_run(engine, flow["id"], "evt-rerun-3", status="succeeded")
    start = end_offsets(own_settings)

    one = api.post(f"/runs/{first}/rerun", json={"mapping": "pinned"})
    assert one.status_code == 202 and one.json()["published"] == 1
    dry = api.post("/runs/rerun", json={"flow_id": flow["id"], "status": "dead", "dry_run": True})
    assert dry.status_code == 202
    # evt-rerun-1 counts once (its latest attempt is dead); its failed attempt 1 is not re-run.
    dead_ids = dry.json()["run_ids"]
    assert dry.json()["published"] == 0 and first not in dead_ids
    bulk = api.post("/runs/rerun", json={"flow_id": flow["id"], "status": "dead"}).json()
    assert bulk["matched"] == bulk["published"] == len(dead_ids) >= 2

    messages = read_commands(own_settings, start, want=1 + bulk["published"])
    commands = [json.loads(m.value()) for m in messages]
    assert {m.key() for m in messages} == {str(flow["id"]).encode()}
    single = [c for c in commands if c["rerun_id"] == one.json()["rerun_id"]]
    assert single == [
        {
            "command": "rerun",
            "run_id": first,
            "mapping": "pinned",
            "rerun_id": one.json()["rerun_id"],
        }
    ]
    traceparent = dict(messages[commands.index(single[0])].headers() or [])["traceparent"]
    assert traceparent.decode().startswith("00-" + "ab" * 16 + "-")
    bulk_commands = sorted(c["run_id"] for c in commands if c["rerun_id"] == bulk["rerun_id"])
    assert bulk_commands == sorted(dead_ids)
    assert all(c["mapping"] == "latest" for c in commands if c["rerun_id"] == bulk["rerun_id"])

    assert api.post("/runs/999999/rerun").status_code == 404
    assert api.post("/runs/rerun", json={"dry_run": True}).status_code == 422


def test_summary_counts_active_flows_and_success_rates(
    api: httpx.Client, engine: sqlalchemy.Engine, flow: dict[str, Any]
) -> None:
    quiet = created(
        api.post(
            "/flows",
            json={
                "name": "quiet",
                "source_endpoint_id": flow["source_endpoint_id"],
                "target_endpoint_id": flow["target_endpoint_id"],
                "mapping_id": flow["mapping_id"],
                "enabled": False,
            },
        )
    )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.delete(runs).where(runs.c.flow_id == flow["id"]))
    for n, (status, age) in enumerate(
        [
            ("succeeded", timedelta(minutes=5)),
            ("succeeded", timedelta(minutes=10)),
            ("failed", timedelta(minutes=20)),
            ("running", timedelta(minutes=1)),
            ("succeeded", timedelta(hours=3)),
            ("dead", timedelta(hours=5)),
            ("succeeded", timedelta(days=2)),  # outside both windows
        ]
    ):
        insert_run(engine, flow["id"], f"sum-{n}", status=status, started_at=now - age)
    summary = api.get("/flows/summary").json()
    assert summary["active_flows"] == 1
    stats = {item["flow_id"]: item for item in summary["flows"]}
    assert stats[flow["id"]]["last_hour"] == {
        "runs": 4,
        "succeeded": 2,
        "failed": 1,
        "dead": 0,
        "running": 1,
        "success_rate": 0.6667,
    }
    assert stats[flow["id"]]["last_day"] == {
        "runs": 6,
        "succeeded": 3,
        "failed": 1,
        "dead": 1,
        "running": 1,
        "success_rate": 0.6,
    }
    assert stats[quiet["id"]]["enabled"] is False
    assert stats[quiet["id"]]["last_day"]["success_rate"] is None


def test_runs_list_answers_once_a_duplicate_run_exists(
    api: httpx.Client, engine: sqlalchemy.Engine, flow: dict[str, Any]
) -> None:
    run_id = insert_run(engine, flow["id"], f"dup-{uuid.uuid4().hex}", status="duplicate")
    listed = api.get("/runs", params={"flow_id": flow["id"]})
    assert listed.status_code == 200, listed.text
    assert run_id in [item["id"] for item in listed.json()["items"]]
    only = api.get("/runs", params={"status": "duplicate"})
    assert only.status_code == 200 and [item["id"] for item in only.json()["items"]] == [run_id]
    assert api.get(f"/runs/{run_id}").json()["status"] == "duplicate"


def test_outbound_urls_and_static_headers_are_checked_on_write(
    api: httpx.Client, flow: dict[str, Any]
) -> None:
    for base_url in ("file:///etc/passwd", "gopher://127.0.0.1:6379/_", "http://u:pw@erp.example"):
        made = api.post(
            "/connectors", json={"name": "bad-url", "protocol": "rest", "base_url": base_url}
        )
        assert made.status_code == 422, made.text
    good = api.post(
        "/connectors",
        json={"name": "guarded", "protocol": "rest", "base_url": "https://erp.example/api"},
    )
    assert good.status_code == 201, good.text
    connector_id = good.json()["id"]
    patched = api.patch(f"/connectors/{connector_id}", json={"base_url": "ftp://erp.example"})
    assert patched.status_code == 422
    hop = api.patch(
        f"/connectors/{connector_id}", json={"config": {"headers": {"Connection": "close"}}}
    )
    assert hop.status_code == 422 and "Connection" in hop.text
    for config, path in (
        ({"headers": {"Host": "169.254.169.254"}}, "/orders"),
        ({"headers": {"X-A": "1\r\nX-Injected: 1"}}, "/orders"),
        ({}, "http://169.254.169.254/latest/meta-data"),
    ):
        endpoint = api.post(
            "/endpoints",
            json={
                "connector_id": connector_id,
                "name": f"e-{uuid.uuid4().hex[:6]}",
                "direction": "target",
                "method": "POST",
                "path": path,
                "config": config,
            },
        )
        assert endpoint.status_code == 422, endpoint.text


def test_credentials_with_header_breaking_characters_are_refused(api: httpx.Client) -> None:
    for body in (
        {"name": "crlf", "kind": "bearer", "secret": "token-1234\r\nX-Injected: yes"},
        {"name": "nul", "kind": "api_key", "header_name": "X-Key", "secret": "key\x00-123456"},
        {"name": "bell", "kind": "basic", "username": "svc", "secret": "pass\x07word-1"},
        {"name": "short", "kind": "bearer", "secret": "abc"},
    ):
        answer = api.post("/credentials", json=body)
        assert answer.status_code == 422, answer.text
        assert body["secret"] not in answer.text
    made = api.post(
        "/credentials", json={"name": "rotating", "kind": "bearer", "secret": "good-token-1234"}
    )
    assert made.status_code == 201
    rotated = api.post(
        f"/credentials/{made.json()['id']}/rotate", json={"secret": "new-token\n-1234"}
    )
    assert rotated.status_code == 422 and "new-token" not in rotated.text
