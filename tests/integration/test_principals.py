"""Named API tokens with roles, over uvicorn against a fresh migrated database and the broker.

Tokens are made the ways a person makes them (``POST /api/v1/tokens`` with the bootstrap
token, ``synapseops tokens create`` in a real subprocess) and then used for real: each role
gets exactly the operations of the table in ``api/routes/__init__.py``, a revoked or expired
token is refused, and the clear token is stored nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sinks.principals.tables import principals
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics

pytestmark = pytest.mark.integration

BOOTSTRAP = f"itest-bootstrap-{uuid.uuid4().hex}"
CLI = Path(sys.executable).with_name("synapseops")


@pytest.fixture(scope="module")
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_principals") as url:
        yield url


@pytest.fixture(scope="module")
def base_url(settings: Settings, kafka_bootstrap: str, database: str) -> Iterator[str]:
    apply_topics(settings)
    served = settings.model_copy(
        update={
            "api": ApiSettings(token=SecretStr(BOOTSTRAP)),
            "database": DatabaseSettings(url=SecretStr(database)),
        }
    )
    with serving_in_thread(create_app(served)) as url:
        yield url


def call(base_url: str, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{base_url}{path}", headers=headers, timeout=35, **kwargs)


def make_token(base_url: str, name: str, *roles: str) -> dict[str, Any]:
    response = call(
        base_url, "POST", "/api/v1/tokens", BOOTSTRAP, json={"name": name, "roles": list(roles)}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
def tokens(base_url: str) -> dict[str, str]:
    return {
        role: make_token(base_url, f"matrix-{role}", role)["token"]
        for role in ("viewer", "operator", "approver", "admin")
    }


# (method, path, body, {role: expected status}); "anonymous" is no token at all.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/api/v1/events", None,
     {"viewer": 200, "operator": 200, "approver": 200, "admin": 200}),
    ("POST", "/api/v1/dead-letters/replay", {"ids": [999999], "dry_run": True},
     {"viewer": 403, "approver": 403, "operator": 200, "admin": 200}),
    ("POST", "/api/v1/dead-letters/discard", {"ids": [999999]},
     {"viewer": 403, "approver": 403, "operator": 200}),
    ("POST", "/api/v1/runs/999999/rerun", None,
     {"viewer": 403, "approver": 403, "operator": 404, "admin": 404}),
    ("POST", "/api/v1/settlements/stl_nope/approve", {"reason": "ok"},
     {"viewer": 403, "operator": 403, "approver": 404, "admin": 404}),
    ("POST", "/api/v1/settlements/stl_nope/reject", None, {"operator": 403, "approver": 404}),
    ("GET", "/api/v1/settlements", None, {"viewer": 200, "approver": 200}),
    ("POST", "/api/v1/connectors", {"name": "matrix-erp", "protocol": "rest"},
     {"viewer": 403, "operator": 403, "approver": 403, "admin": 201}),
    ("GET", "/api/v1/connectors", None, {"viewer": 200}),
    ("GET", "/api/v1/credentials", None, {"viewer": 403, "operator": 403, "admin": 200}),
    ("POST", "/api/v1/mappings", {"name": "m", "rules": []}, {"viewer": 403, "operator": 403}),
    ("GET", "/api/v1/flows", None, {"viewer": 200}),
    ("GET", "/api/v1/tokens", None,
     {"viewer": 403, "operator": 403, "approver": 403, "admin": 200}),
    ("POST", "/api/v1/tokens", {"name": "sneaky", "roles": ["admin"]},
     {"viewer": 403, "operator": 403, "approver": 403}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX)
def test_each_role_gets_exactly_its_operations(
    base_url: str,
    tokens: dict[str, str],
    method: str,
    path: str,
    body: Any,
    expected: dict[str, int],
) -> None:
    assert call(base_url, method, path, None, json=body).status_code == 401
    for role, status in expected.items():
        response = call(base_url, method, path, tokens[role], json=body)
        assert response.status_code == status, (role, method, path, response.text)
        if status == 403:
            detail = response.json()["detail"]
            assert "needs role" in detail and f"token:matrix-{role}" in detail


def test_a_token_can_hold_several_roles_and_is_recorded_as_itself(base_url: str) -> None:
    both = make_token(base_url, "ops-and-approvals", "operator", "approver")
    assert both["roles"] == ["approver", "operator"] and both["created_by"] == "token:bootstrap"
    replay = call(
        base_url,
        "POST",
        "/api/v1/dead-letters/replay",
        both["token"],
        json={"ids": [1], "dry_run": True},
    )
    assert replay.status_code == 200
    assert call(base_url, "POST", "/api/v1/settlements/x/approve", both["token"]).status_code == 404
    assert call(base_url, "GET", "/api/v1/credentials", both["token"]).status_code == 403


def test_revoked_and_expired_tokens_are_refused(
    base_url: str, database: str, tokens: dict[str, str]
) -> None:
    doomed = make_token(base_url, "doomed", "viewer")
    assert call(base_url, "GET", "/api/v1/events", doomed["token"]).status_code == 200
    revoked = call(base_url, "DELETE", f"/api/v1/tokens/{doomed['id']}", tokens["admin"])
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_by"] == "token:matrix-admin"
    refused = call(base_url, "GET", "/api/v1/events", doomed["token"])
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert call(base_url, "DELETE", f"/api/v1/tokens/{doomed['id']}", BOOTSTRAP).status_code == 404
    # The name is free again; the revoked row stays for the audit trail.
    again = make_token(base_url, "doomed", "viewer")
    listed = call(base_url, "GET", "/api/v1/tokens?include_revoked=true", BOOTSTRAP).json()
    assert [t["id"] for t in listed if t["name"] == "doomed"] == [doomed["id"], again["id"]]

    stale = make_token(base_url, "stale", "viewer")
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.begin() as conn:
            conn.execute(
                sqlalchemy.update(principals)
                .where(principals.c.token_id == stale["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    assert call(base_url, "GET", "/api/v1/events", stale["token"]).status_code == 401
    past = call(
        base_url,
        "POST",
        "/api/v1/tokens",
        BOOTSTRAP,
        json={"name": "past", "roles": ["viewer"], "expires_at": "2001-01-01T00:00:00Z"},
    )
    assert past.status_code == 422


def test_the_clear_token_is_stored_nowhere(base_url: str, database: str) -> None:
    made = make_token(base_url, "secret-keeper", "viewer")
    assert call(base_url, "GET", "/api/v1/events", made["token"]).status_code == 200
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as conn:
            dump = conn.execute(
                sqlalchemy.text("SELECT row_to_json(p)::text FROM principals p")
            ).scalars()
            text = "\n".join(dump)
            row = conn.execute(
                sqlalchemy.select(principals).where(principals.c.token_id == made["id"])
            ).one()
    finally:
        engine.dispose()
    secret = made["token"].split("_", 2)[2]
    assert made["token"] not in text and secret not in text
    assert row.last_used_at is not None and row.created_by == "token:bootstrap"
    one = call(base_url, "GET", f"/api/v1/tokens/{made['id']}", BOOTSTRAP).json()
    assert "token" not in one and "secret_hash" not in json.dumps(one)


def test_the_cli_creates_lists_and_revokes_tokens(base_url: str, database: str) -> None:
    env = {**os.environ, "SYNAPSEOPS_DATABASE_URL": database, "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), "tokens", *args], env=env, capture_output=True, text=True, timeout=60
        )

    created = cli("create", "cli-viewer", "--role", "viewer", "--json")
    assert created.returncode == 0, created.stderr
    made = json.loads(created.stdout)
    assert made["roles"] == ["viewer"] and made["created_by"].startswith("cli")
    assert call(base_url, "GET", "/api/v1/events", made["token"]).status_code == 200
    assert call(base_url, "POST", "/api/v1/connectors", made["token"], json={}).status_code == 403

    plain = cli("create", "cli-plain", "--role", "operator")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip().startswith("sot_") and "shown once" in plain.stderr

    listed = json.loads(cli("list", "--json").stdout)
    assert {"cli-viewer", "cli-plain"} <= {row["name"] for row in listed}
    assert all("token" not in row and "secret_hash" not in row for row in listed)
    assert cli("create", "cli-viewer", "--role", "viewer").returncode == 1  # name taken

    revoked = cli("revoke", "cli-viewer")
    assert revoked.returncode == 0 and made["id"] in revoked.stderr
    assert call(base_url, "GET", "/api/v1/events", made["token"]).status_code == 401
    assert cli("revoke", "cli-viewer").returncode == 1
    table = cli("list", "--all")
    assert table.returncode == 0 and "cli-viewer" in table.stdout
