"""Source endpoints the worker could not run are refused on write (422, with the reasons),
over real HTTP with the product's app, a fresh database and the real broker. The same check
runs in the worker (tests/integration/integration/test_integration_sources.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

TOKEN = f"validation-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def api(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[httpx.Client]:
    with fresh_database(database_url, "t_endpoint_validation") as url:
        own = settings.model_copy(
            update={
                "database": DatabaseSettings(url=SecretStr(url)),
                "api": ApiSettings(token=SecretStr(TOKEN)),
            }
        )
        with (
            serving_in_thread(create_app(own)) as base,
            httpx.Client(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client,
        ):
            yield client


def connector(api: httpx.Client, protocol: str) -> int:
    name = f"{protocol}-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"name": name, "protocol": protocol}
    if protocol == "rest":
        body["base_url"] = "http://127.0.0.1:9"
    created = api.post("/connectors", json=body)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def source(api: httpx.Client, connector_id: int, **fields: Any) -> httpx.Response:
    body = {"connector_id": connector_id, "name": "feed", "direction": "source", **fields}
    return api.post("/endpoints", json=body)


def test_a_polled_source_the_poller_cannot_read_is_refused(api: httpx.Client) -> None:
    rest = connector(api, "rest")
    bad = source(api, rest, path="/changes", poll_interval_s=5, config={"params": 5})
    assert bad.status_code == 422 and "config.params" in bad.json()["detail"]
    path = source(api, rest, path="/changes", poll_interval_s=5, config={"items_path": "a["})
    assert path.status_code == 422 and "config.items_path" in path.json()["detail"]
    good = source(api, rest, path="/changes", poll_interval_s=5, config={"items_path": "changes"})
    assert good.status_code == 201, good.text
    # An update is checked as the endpoint it makes.
    broken = api.patch(f"/endpoints/{good.json()['id']}", json={"config": {"item_path": "id"}})
    assert broken.status_code == 422 and "config.item_path" in broken.json()["detail"]
    assert api.get(f"/endpoints/{good.json()['id']}").json()["config"] == {"items_path": "changes"}


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("^orders-.*", "regex subscription"),
        ("integration.events", "platform or internal topic"),
        ("__consumer_offsets", "platform or internal topic"),
    ],
)
def test_a_kafka_source_on_a_platform_internal_or_regex_topic_is_refused(
    api: httpx.Client, topic: str, reason: str
) -> None:
    refused = source(api, connector(api, "kafka"), kafka_topic=topic)
    assert refused.status_code == 422 and reason in refused.json()["detail"]


def test_a_kafka_source_on_a_users_topic_is_fine(api: httpx.Client) -> None:
    kafka = connector(api, "kafka")
    made = source(api, kafka, kafka_topic="shop.orders", config={"event_id_header": "ce_id"})
    assert made.status_code == 201, made.text
    moved = api.patch(f"/endpoints/{made.json()['id']}", json={"kafka_topic": "^shop.*"})
    assert moved.status_code == 422
