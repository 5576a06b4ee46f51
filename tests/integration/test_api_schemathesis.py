"""schemathesis over the app's own OpenAPI, served by uvicorn on the session's real broker and a
fresh migrated PostgreSQL database: with the admin token and without any token.

- with the bootstrap admin token: no operation answers 5xx, whatever schemathesis sends
  (bodies, paths, query strings generated from the schema, valid and invalid);
- without a token (or with the random ``Authorization`` values schemathesis makes up for the
  bearer scheme): every ``/api/v1`` operation answers 401 or 403 and nothing else, and no
  webhook answers 5xx.

Examples per operation and mode are ``SCHEMATHESIS_EXAMPLES`` (default 20): the module takes
about two minutes on the 2-core CI machine (40 examples: 2m50s, 0 failures). Derandomized,
so a failure repeats run after run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode

from api.main import create_app
from api.server import serving_in_thread
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics

pytestmark = pytest.mark.integration

TOKEN = f"itest-schemathesis-{uuid.uuid4().hex}"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "20"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def base_url(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[str]:
    apply_topics(settings)
    with fresh_database(database_url, "t_schemathesis") as url:
        served = settings.model_copy(
            update={
                "env": "dev",  # the schema is public in dev; outside dev it needs a token
                "api": ApiSettings(token=SecretStr(TOKEN)),
                "database": DatabaseSettings(url=SecretStr(url)),
            }
        )
        with serving_in_thread(create_app(served)) as base:
            yield base


def _operations() -> list[schemathesis.APIOperation]:
    # The document the app serves, built by the same factory (no server needed to list the
    # operations at collection time; test_the_served_document_is_this_one checks the served
    # one is the same). schemathesis' own pytest loader does not run under pytest 9 yet.
    document = create_app(Settings(env="dev")).openapi()
    loaded = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in loaded.get_all_operations()]


OPERATIONS = _operations()
IDS = [f"{operation.method.upper()} {operation.path}" for operation in OPERATIONS]


def cases(operation: schemathesis.APIOperation) -> st.SearchStrategy[schemathesis.Case]:
    """Valid and invalid requests (schemathesis' positive and negative modes)."""
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    try:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    except Exception:  # an operation without inputs has no invalid form
        pass
    return st.one_of(strategies)


def test_the_served_document_is_this_one(base_url: str) -> None:
    served = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    assert sorted(served["paths"]) == sorted({operation.path for operation in OPERATIONS})


@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_no_operation_answers_5xx_to_an_admin(
    operation: schemathesis.APIOperation, base_url: str
) -> None:
    @fuzz
    @given(case=cases(operation))
    def call(case: schemathesis.Case) -> None:
        response = case.call(
            base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        )
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )

    call()


@pytest.mark.parametrize("operation", OPERATIONS, ids=IDS)
def test_without_a_token_management_is_refused(
    operation: schemathesis.APIOperation, base_url: str
) -> None:
    @fuzz
    @given(case=cases(operation))
    def call(case: schemathesis.Case) -> None:
        # Whatever schemathesis put in Authorization (for the bearer scheme) is not the token.
        headers = {k: v for k, v in (case.headers or {}).items() if TOKEN not in str(v)}
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if operation.path.startswith("/api/v1"):
            assert response.status_code in (401, 403), f"{where}: {response.text[:300]}"
        else:
            assert response.status_code < 500, f"{where}: {response.text[:300]}"

    call()
