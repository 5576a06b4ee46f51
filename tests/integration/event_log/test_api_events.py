"""``/api/v1/events`` over real HTTP against a fresh, migrated PostgreSQL database.

Rows are written the way the worker writes them (``sinks.event_log.tables.inbound_events``); the
test owns its database, so counts and ordering are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sinks.event_log.tables import inbound_events
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

TOKEN = f"itest-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def events_database_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_api_events") as url:
        yield url


def _row(n: int, source: str) -> dict[str, object]:
    return {
        "event_id": f"evt_{n}",
        "source": source,
        "entity_key": f"order-{n}",
        "event_type": "orders/create" if n % 2 else None,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "topic": "synapseops.events.inbound",
        "partition": n % 6,
        "offset": 1000 + n,
        # Beyond 2^53: must come back exact, not through a float.
        "payload": {"id": n, "big": 18446744073709551617, "total_price": "409.94"},
        "headers": {"synapseops-source": source},
        "received_at": datetime(2026, 1, 1, 12, 0, n, tzinfo=UTC),
    }


@pytest.fixture(scope="module")
def base_url(settings: Settings, events_database_url: str) -> Iterator[str]:
    engine = sqlalchemy.create_engine(events_database_url)
    with engine.begin() as conn:
        conn.execute(
            sqlalchemy.insert(inbound_events),
            [_row(n, "shopify" if n <= 3 else "stripe") for n in range(1, 6)],
        )
    engine.dispose()
    own = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(events_database_url)),
            "api": ApiSettings(token=SecretStr(TOKEN)),
        }
    )
    with serving_in_thread(create_app(own)) as url:
        yield url


def test_lists_newest_first_with_every_column(base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/v1/events", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["event_id"] for item in body["items"]] == [f"evt_{n}" for n in (5, 4, 3, 2, 1)]
    assert body["next_before_id"] is None
    newest = body["items"][0]
    assert newest["source"] == "stripe"
    assert newest["entity_key"] == "order-5"
    assert newest["event_type"] == "orders/create"
    assert (newest["partition"], newest["offset"]) == (5, 1005)
    assert newest["payload"]["big"] == 18446744073709551617
    assert newest["headers"] == {"synapseops-source": "stripe"}
    assert newest["received_at"].startswith("2026-01-01T12:00:05")
    assert newest["stored_at"]


def test_filters_by_source_and_pages_with_before_id(base_url: str) -> None:
    first = httpx.get(
        f"{base_url}/api/v1/events", params={"source": "shopify", "limit": 2}, headers=AUTH
    ).json()
    assert [item["event_id"] for item in first["items"]] == ["evt_3", "evt_2"]
    assert first["next_before_id"] == first["items"][-1]["id"]
    second = httpx.get(
        f"{base_url}/api/v1/events",
        params={"source": "shopify", "limit": 2, "before_id": first["next_before_id"]},
        headers=AUTH,
    ).json()
    assert [item["event_id"] for item in second["items"]] == ["evt_1"]
    assert second["next_before_id"] is None


def test_one_row_by_id_or_404(base_url: str) -> None:
    listed = httpx.get(f"{base_url}/api/v1/events", params={"limit": 1}, headers=AUTH).json()
    row_id = listed["items"][0]["id"]
    one = httpx.get(f"{base_url}/api/v1/events/{row_id}", headers=AUTH)
    assert one.status_code == 200
    assert one.json() == listed["items"][0]
    missing = httpx.get(f"{base_url}/api/v1/events/{row_id + 1000}", headers=AUTH)
    assert missing.status_code == 404
    assert str(row_id + 1000) in missing.json()["detail"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"source": "Not A Slug"}, {"before_id": 0}]
)
def test_bad_query_parameters_are_422(base_url: str, params: dict[str, object]) -> None:
    response = httpx.get(f"{base_url}/api/v1/events", params=params, headers=AUTH)
    assert response.status_code == 422


def test_wrong_token_is_401_even_with_a_valid_query(base_url: str) -> None:
    response = httpx.get(
        f"{base_url}/api/v1/events", headers={"Authorization": "Bearer dev-token-change-me"}
    )
    assert response.status_code == 401
