"""The API of these tests: served over real HTTP against a fresh migrated database and the
session's broker, with the platform's topics in place (as `synapseops up` leaves them: the
broker creates no topic on its own, and a fresh CI broker has none of this service's yet)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics

TOKEN = f"itest-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_api_aggregation") as url:
        yield url


@pytest.fixture(scope="module")
def base_url(settings: Settings, api_database: str, kafka_bootstrap: str) -> Iterator[str]:
    own = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(api_database)),
            "api": ApiSettings(token=SecretStr(TOKEN)),
        }
    )
    apply_topics(own)
    with serving_in_thread(create_app(own)) as url:
        yield url
