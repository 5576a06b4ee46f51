"""Who may do what, in-process: the role table, default-deny, 401 before the body, body caps,
the docs outside dev, and the approver contract. Named tokens against the real database are
in tests/integration/test_principals.py; here only the bootstrap token (no database) is used.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.access import Access, RouteRoles
from api.deps import PrincipalGuard
from api.main import create_app
from api.routes import V1_ROUTERS, route_roles
from synapseops.principals import (
    Principal,
    Role,
    bootstrap_principal,
    digest,
    mint_token,
    parse_token,
    secret_matches,
)
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.unit.test_api_app import RecordingProducer

TOKEN = "unit-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 2048


def settings(env: str = "dev") -> Settings:
    return Settings(
        env=env,  # type: ignore[arg-type]
        api=ApiSettings(token=SecretStr(TOKEN), max_body_bytes=LIMIT),
        database=DatabaseSettings(url=SecretStr("postgresql+psycopg2://nobody@127.0.0.1:1/x")),
    )


@pytest.fixture
def app() -> FastAPI:
    return create_app(settings(), producer=RecordingProducer())  # type: ignore[arg-type]


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


# ---- the role table ----------------------------------------------------------------------


def test_every_api_v1_operation_declares_a_role(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operations = [
        (method, path, op)
        for path, ops in paths.items()
        if path.startswith("/api/v1")
        for method, op in ops.items()
    ]
    assert len(operations) > 40
    for method, path, operation in operations:
        assert operation.get("x-required-role") in {r.value for r in Role}, (method, path)
        assert {"HTTPBearer": []} in operation["security"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/api/v1/events", Role.VIEWER),
        ("POST", "/api/v1/dead-letters/replay", Role.OPERATOR),
        ("POST", "/api/v1/dead-letters/{dead_letter_id}/discard", Role.OPERATOR),
        ("POST", "/api/v1/runs/{run_id}/rerun", Role.OPERATOR),
        ("POST", "/api/v1/runs/rerun", Role.OPERATOR),
        ("POST", "/api/v1/settlements/{settlement_id}/approve", Role.APPROVER),
        ("POST", "/api/v1/settlements/{settlement_id}/reject", Role.APPROVER),
        ("GET", "/api/v1/settlements", Role.VIEWER),
        ("POST", "/api/v1/connectors", Role.ADMIN),
        ("PATCH", "/api/v1/endpoints/{endpoint_id}", Role.ADMIN),
        ("GET", "/api/v1/credentials", Role.ADMIN),
        ("POST", "/api/v1/mappings", Role.ADMIN),
        ("POST", "/api/v1/mappings/preview", Role.VIEWER),
        ("POST", "/api/v1/flows", Role.ADMIN),
        ("POST", "/api/v1/tokens", Role.ADMIN),
        ("GET", "/api/v1/tokens", Role.ADMIN),
        ("HEAD", "/api/v1/events", Role.VIEWER),
    ],
)
def test_the_role_table(method: str, path: str, role: Role) -> None:
    assert route_roles().for_path(method, path) is role


def test_roles_imply_what_they_should() -> None:
    def holder(*roles: Role) -> Principal:
        return Principal(kind="token", name="t", roles=frozenset(roles))

    assert bootstrap_principal().may(Role.APPROVER) and bootstrap_principal().actor == (
        "token:bootstrap"
    )
    viewer, operator, approver = holder(Role.VIEWER), holder(Role.OPERATOR), holder(Role.APPROVER)
    assert viewer.may(Role.VIEWER) and not viewer.may(Role.OPERATOR)
    assert operator.may(Role.VIEWER) and not operator.may(Role.APPROVER)
    assert approver.may(Role.VIEWER) and not approver.may(Role.OPERATOR)
    assert not approver.may(Role.ADMIN) and holder(Role.OPERATOR, Role.APPROVER).may(Role.APPROVER)


def test_an_exception_naming_no_route_is_a_startup_error() -> None:
    router, _ = V1_ROUTERS[0]
    with pytest.raises(ValueError, match="name no route"):
        RouteRoles().declare("/api/v1", router, Access(read=Role.VIEWER, exceptions={
            "POST /nowhere": Role.VIEWER}))  # fmt: skip


def test_a_route_without_a_declared_role_is_closed_even_to_admin(app: FastAPI) -> None:
    # Hung under /api/v1 with the guard but without an entry in the table: nobody gets in.
    forgotten = APIRouter(prefix="/api/v1", dependencies=[PrincipalGuard])

    @forgotten.get("/forgotten")
    def read_forgotten() -> dict[str, str]:
        return {"reached": "yes"}

    # Not even behind the guard, but it reads a body: the middleware's receive closes it.
    @app.post("/api/v1/unguarded")
    async def unguarded(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    app.include_router(forgotten)
    # A read-only router's write is closed too.
    assert route_roles().for_path("POST", "/api/v1/events") is None
    with TestClient(app) as client:
        for method, path in (("GET", "/api/v1/forgotten"), ("POST", "/api/v1/unguarded")):
            response = client.request(method, path, headers=ADMIN, content=b"{}")
            assert response.status_code == 403, (path, response.text)
            assert "declares no role" in response.json()["detail"]
            assert client.request(method, path).status_code == 401
        # Not a route at all: an authenticated caller learns 404, an anonymous one 401.
        assert client.get("/api/v1/nothing-here", headers=ADMIN).status_code == 404
        assert client.get("/api/v1/nothing-here").status_code == 401


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer"),
        ("Bearer ", "must be 'Bearer"),
        ("Bearer wrong", "invalid bearer token"),
        ("Bearer sot_0123456789ab_" + "A" * 43, "invalid bearer token"),
    ],
)
def test_401_has_a_reason_and_the_challenge(
    client: TestClient, authorization: str | None, reason: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    # A well-formed named token needs the database: unreachable here, so 503, not a pass.
    response = client.get("/api/v1/tokens", headers=headers)
    if authorization and authorization.startswith("Bearer sot_"):
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "principals store" in response.json()["detail"]
        assert "127.0.0.1" not in response.text and "nobody" not in response.text
        return
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert reason in response.json()["detail"]


# ---- authentication before the body ------------------------------------------------------


def _call(app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
    """One request straight through the ASGI app, recording whether the body was read."""
    read: list[bytes] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read.append(body)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return sent[0]["status"], read


@pytest.mark.parametrize(
    "path",
    ["/api/v1/connectors", "/api/v1/credentials", "/api/v1/dead-letters/replay", "/api/v1/tokens"],
)
def test_401_comes_before_the_body_is_read(app: FastAPI, path: str) -> None:
    body = b'{"name": "x", "protocol": "webhook"}'
    status, read = _call(app, "POST", path, {}, body)
    assert (status, read) == (401, [])
    status, read = _call(app, "POST", path, {"Authorization": "Bearer nope"}, body)
    assert (status, read) == (401, [])


# ---- body caps on every route ------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/mappings/preview", "/api/v1/connectors", "/api/v1/credentials"]
)
def test_management_bodies_are_capped_with_a_reason(client: TestClient, path: str) -> None:
    big = b'{"pad": "' + b"x" * LIMIT + b'"}'
    declared = client.post(path, content=big, headers={**ADMIN, "Content-Type": "application/json"})
    assert declared.status_code == 413, declared.text
    assert f"limit of {LIMIT} bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(LIMIT // 256 + 2):
            yield b"x" * 256
        yield b'"}'

    streamed = client.post(
        path, content=chunks(), headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "exceeds the limit" in streamed.json()["detail"]


def test_a_decision_naming_an_actor_is_refused(client: TestClient) -> None:
    response = client.post(
        "/api/v1/settlements/stl_x/approve", json={"actor": "user:mallory"}, headers=ADMIN
    )
    assert response.status_code == 422
    assert "authenticated principal" in response.text


# ---- docs --------------------------------------------------------------------------------


def test_docs_are_public_in_dev_only() -> None:
    with TestClient(create_app(settings("dev"), producer=RecordingProducer())) as dev:  # type: ignore[arg-type]
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert dev.get(path).status_code == 200, path
    with TestClient(create_app(settings("prod"), producer=RecordingProducer())) as prod:  # type: ignore[arg-type]
        assert prod.get("/docs").status_code == 404
        assert prod.get("/redoc").status_code == 404
        anonymous = prod.get("/openapi.json")
        assert anonymous.status_code == 401 and "missing" in anonymous.json()["detail"]
        schema = prod.get("/openapi.json", headers=ADMIN)
        assert schema.status_code == 200 and "/api/v1/tokens" in schema.json()["paths"]
        assert prod.get("/health").status_code in {200, 503}  # open, whatever its answer


# ---- the token format ----------------------------------------------------------------------


def test_minted_tokens_parse_and_only_their_secret_matches() -> None:
    minted = mint_token()
    assert re.fullmatch(r"sot_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", minted.token)
    parsed = parse_token(minted.token)
    assert parsed is not None and parsed[0] == minted.token_id
    assert secret_matches(parsed[1], minted.secret_hash)
    assert not secret_matches(parsed[1][:-1] + "x", minted.secret_hash)
    assert minted.secret_hash == digest(parsed[1]) and parsed[1] not in minted.secret_hash.hex()
    assert mint_token().token != minted.token
    for garbage in ("", "sot_", "sot_xyz_abc", minted.token + "x", "Bearer " + minted.token):
        assert parse_token(garbage) is None
